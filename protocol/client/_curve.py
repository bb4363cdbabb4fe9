"""The CURVE keys a client needs for a service on tcp (docs/protocol.md section 2.2).

endpoints.json names three 0600 files, each one key as Z85 text; a socket
given all three before `connect` passes the service's handshake, any other
gets no reply at all. Over ipc there is nothing to read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zmq

from protocol.client._errors import ServiceUnavailable
from protocol.envelopes import EndpointsFile

__all__ = ["apply_curve", "curve_options"]

_Z85_KEY_CHARS = 40


def _read_key(path: str) -> bytes:
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ServiceUnavailable(f"cannot read the service's CURVE key {path}: {exc}") from None
    if len(key) != _Z85_KEY_CHARS:
        raise ServiceUnavailable(
            f"{path} is not a CURVE key ({_Z85_KEY_CHARS} characters of Z85 text expected)"
        )
    return key


def curve_options(endpoints: EndpointsFile) -> dict[int, bytes]:
    """Socket options for `endpoints`: the three keys over tcp, none over ipc.

    Raises `ServiceUnavailable` when a named key file cannot be read (a
    service of another user, or one that just stopped).
    """
    files = endpoints.curve
    if files is None:
        return {}
    return {
        zmq.CURVE_SERVERKEY: _read_key(files.server_public_key_file),
        zmq.CURVE_PUBLICKEY: _read_key(files.client_public_key_file),
        zmq.CURVE_SECRETKEY: _read_key(files.client_secret_key_file),
    }


def apply_curve(sock: zmq.Socket[Any], options: dict[int, bytes]) -> None:
    """Set `options` on `sock`; call before `connect` (they apply to new connections)."""
    for option, value in options.items():
        sock.setsockopt(option, value)
