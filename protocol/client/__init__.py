"""The reference Python client: the one part of `protocol/` that does I/O.

It speaks the public contract (docs/protocol.md) and nothing more, so a
client in another language can be written from the same page and behave alike:

* `find_endpoints` / `ensure_service` (`_discovery`) - discovery through
  `.session/run/endpoints.json`, starting `supervisor start --detach` if asked.
* `ServiceClient` (`_transport`) - one DEALER socket for requests (ids are
  idempotency keys, re-sent unchanged after a timeout) and `EventStream`s
  (`_events`), SUB sockets whose sequence numbers are checked, so a missed
  event is counted instead of silently lost.
* `Mirror` (`_mirror`) - a view of the session, costs and workers that
  converges whatever events are lost (re-reads on a gap in `seq`).
* `Session` (`_session`) and `CostTracker` (`_costs`) - the seed's two APIs
  on top, asyncio, sharing their plumbing through `_seed_api`.

Import everything from `protocol.client`; the `_modules` are private. It
depends on the pure modules and never the reverse: nothing else in `protocol/`
imports it. Use one client from one event loop; it is not thread-safe.
"""

from protocol.client._costs import CostCallback, CostTracker
from protocol.client._curve import apply_curve, curve_options
from protocol.client._defaults import (
    DEFAULT_REQUEST_TIMEOUT_S,
    DEFAULT_RETRIES,
    DEFAULT_START_TIMEOUT_S,
)
from protocol.client._defaults import ENDPOINTS_POLL_S as ENDPOINTS_POLL_S
from protocol.client._defaults import START_OUTPUT_TAIL_BYTES as START_OUTPUT_TAIL_BYTES
from protocol.client._discovery import endpoints_path, ensure_service, find_endpoints
from protocol.client._errors import ClientClosed, ClientError, ServiceError, ServiceUnavailable
from protocol.client._events import EventStream
from protocol.client._mirror import Mirror, MirroredView
from protocol.client._session import SaveCallback, SaveFailedCallback, Session
from protocol.client._transport import ServiceClient

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "DEFAULT_START_TIMEOUT_S",
    "ClientClosed",
    "ClientError",
    "CostCallback",
    "CostTracker",
    "EventStream",
    "Mirror",
    "MirroredView",
    "SaveCallback",
    "SaveFailedCallback",
    "ServiceClient",
    "ServiceError",
    "ServiceUnavailable",
    "Session",
    "apply_curve",
    "curve_options",
    "endpoints_path",
    "ensure_service",
    "find_endpoints",
]
