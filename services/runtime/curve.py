"""CURVE keys for the public sockets over tcp, and the check of the client's key.

Over tcp every local user can open a connection to 127.0.0.1, so the public
sockets are CURVE servers: a peer without the client key pair cannot finish
the handshake, and the service reads nothing it sends. Keys are made anew at
every start. The server's secret key stays in this process; the server's
public key and the client key pair go to 0600 files in `.session/run/` (a
0700 folder), named in endpoints.json, so only the owner's clients read them.

CURVE alone would admit any client key from a peer that knew the server's
public key; a ZAP handler (pyzmq's authenticator thread) admits only ours.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import zmq

from protocol.envelopes import CurveKeyFiles

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

__all__ = ["KEY_FILE_MODE", "ServerCurve", "curve_available"]

KEY_FILE_MODE = 0o600

SERVER_PUBLIC_FILE = "curve-server.public"
CLIENT_PUBLIC_FILE = "curve-client.public"
CLIENT_SECRET_FILE = "curve-client.secret"  # noqa: S105 - a file name, not a secret


def curve_available() -> bool:
    """Whether this libzmq was built with CURVE (pyzmq's wheels are)."""
    return bool(zmq.has("curve"))


def _write_key(path: Path, key: bytes) -> None:
    # A file left by an earlier run is replaced, never written through: it
    # could be a link planted to make us write elsewhere.
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, KEY_FILE_MODE)
    try:
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


class _OurClientOnly:
    """ZAP credentials check: the one client public key of this run."""

    def __init__(self, client_public: bytes) -> None:
        self._client_public = client_public

    def callback(self, domain: str, key: bytes) -> bool:
        """True for our client key (Z85), whatever the domain."""
        return key == self._client_public


@dataclass
class ServerCurve:
    """The keys of one run and the authenticator that admits only our client."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    files: CurveKeyFiles
    _authenticator: ThreadAuthenticator | None = None

    @classmethod
    def issue(cls, run_dir: Path) -> ServerCurve:
        """Make the keys of this run and write the three public-facing files 0600."""
        server_public, server_secret = zmq.curve_keypair()
        client_public, client_secret = zmq.curve_keypair()
        files = CurveKeyFiles(
            server_public_key_file=str(run_dir / SERVER_PUBLIC_FILE),
            client_public_key_file=str(run_dir / CLIENT_PUBLIC_FILE),
            client_secret_key_file=str(run_dir / CLIENT_SECRET_FILE),
        )
        _write_key(Path(files.server_public_key_file), server_public)
        _write_key(Path(files.client_public_key_file), client_public)
        _write_key(Path(files.client_secret_key_file), client_secret)
        return cls(server_public, server_secret, client_public, files)

    def socket_options(self) -> dict[str, int | bytes]:
        """Options that make a socket a CURVE server (set before bind)."""
        return {"CURVE_SERVER": 1, "CURVE_SECRETKEY": self.server_secret}

    def start_checking(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        """Admit only our client key on every CURVE socket of `context` (a ZAP thread)."""
        # Imported here: it pulls zmq.asyncio (~5 ms), which an ipc start never needs.
        from zmq.auth.thread import ThreadAuthenticator

        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve_callback(
            domain="*", credentials_provider=_OurClientOnly(self.client_public)
        )
        self._authenticator = authenticator

    def close(self) -> None:
        """Stop the check and remove the key files (a clean stop)."""
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        for name in (
            self.files.server_public_key_file,
            self.files.client_public_key_file,
            self.files.client_secret_key_file,
        ):
            with contextlib.suppress(OSError):
                Path(name).unlink()
