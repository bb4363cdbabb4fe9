"""The client's timing and size constants, in one place."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "DEFAULT_START_TIMEOUT_S",
    "ENDPOINTS_POLL_S",
    "START_OUTPUT_TAIL_BYTES",
]

DEFAULT_REQUEST_TIMEOUT_S: Final = 5.0
"""How long one attempt of a request waits for its reply before re-sending."""
DEFAULT_RETRIES: Final = 3
"""Re-sends after the first attempt (so 4 attempts in all) before giving up."""
DEFAULT_START_TIMEOUT_S: Final = 10.0
"""How long `ensure_service` waits for a service it started to become ready."""
ENDPOINTS_POLL_S: Final = 0.05
"""How often `ensure_service` looks for endpoints.json while a start is under way."""
START_OUTPUT_TAIL_BYTES: Final = 4096
"""How much of a failed `supervisor start`'s output is quoted in the error."""
