"""Who can reach the service's sockets: the private runtime folder and CURVE over tcp."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import zmq

from protocol.client import ServiceClient
from services.runtime.paths import ProjectPaths
from services.runtime.privatedir import is_private_dir, private_runtime_dir
from services.runtime.transport import plan_endpoints
from tests.service import RunningService, running_service

# Reaches one socket as another user and says what happened, with the standard
# library only (that user may not be able to read our virtualenv).
_PROBE = r"""
import json, socket, sys
endpoint, key_file = sys.argv[1], sys.argv[2]
out = {}
try:
    if endpoint.startswith("ipc://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(2)
        sock.connect(endpoint[len("ipc://"):])
    else:
        host, port = endpoint[len("tcp://"):].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=2)
    out["link"] = "reachable"
except OSError as exc:
    out["link"] = "refused: " + type(exc).__name__
try:
    open(key_file).read()
    out["key"] = "readable"
except OSError as exc:
    out["key"] = "refused: " + type(exc).__name__
print(json.dumps(out))
"""


def _python_for_nobody() -> str | None:
    """An interpreter the `nobody` user may run (ours may sit in root's 0700 home)."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return None
    for candidate in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run(
            ["runuser", "-u", "nobody", "--", candidate, "-c", "pass"],  # noqa: S607
            capture_output=True,
            check=False,
            timeout=30,
        )
        if probe.returncode == 0:
            return candidate
    return None


def _backend_endpoint(service: RunningService) -> str:
    """The workers' link, as the supervisor logged it (it is in no public file)."""
    log = service.project / ".session" / "logs" / "supervisor.log"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the line may land just after endpoints.json
        for line in reversed(log.read_text().splitlines()):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == "supervisor.ready":
                    return str(record["backend"])
        time.sleep(0.05)
    raise AssertionError("supervisor.ready not logged")


def _no_reply(sock: zmq.Socket[bytes], frames: list[bytes], wait_ms: int) -> bool:
    """True when the service answers nothing; a send that cannot even be queued counts.

    A refused handshake may leave the socket without a pipe, and a DEALER
    with no pipe blocks on send.
    """
    sock.setsockopt(zmq.SNDTIMEO, wait_ms)
    try:
        sock.send_multipart(frames)
    except zmq.Again:
        return True
    return sock.poll(wait_ms) == 0


def test_private_folder_keeps_socket_paths_short(tmp_path: Path) -> None:
    """A project path far over the unix socket limit still gets short ipc sockets, 0700."""
    deep = tmp_path / ("chapter-" * 30) / "novel"
    folder = private_runtime_dir(ProjectPaths.of(deep).project)
    endpoints = plan_endpoints(folder, "ipc")
    assert endpoints.transport == "ipc"
    assert all(
        len(e.encode()) - len("ipc://") <= 100
        for e in (endpoints.command, endpoints.events, endpoints.backend)
    )
    assert is_private_dir(folder)
    assert private_runtime_dir(ProjectPaths.of(deep).project) == folder  # stable across runs
    folder.rmdir()


def test_folder_another_user_could_enter_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pre-made `wf-<uid>` that is open to others or a symlink is skipped for a fresh 0700 one."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"wf-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    folder = private_runtime_dir(tmp_path / "project")
    assert planted not in folder.parents
    assert is_private_dir(folder)
    planted.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    planted.symlink_to(elsewhere)
    second = private_runtime_dir(tmp_path / "project")
    assert planted not in second.parents
    assert not any(elsewhere.iterdir())


def test_folder_that_cannot_hold_sockets_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where unix sockets cannot be bound (FUSE, network shares), a fresh private folder is used."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    usual = tmp_path / f"wf-{os.getuid()}"
    bind = socket.socket.bind

    def refuse_under_usual(sock: socket.socket, address: object) -> None:
        # Under `usual/` only: a fresh `wf-XXXX` folder may begin with the uid too.
        if isinstance(address, str) and address.startswith(f"{usual}{os.sep}"):
            raise OSError(errno.ENOSYS, "Function not implemented")
        bind(sock, address)

    monkeypatch.setattr(socket.socket, "bind", refuse_under_usual)
    folder = private_runtime_dir(tmp_path / "project")
    assert usual not in folder.parents
    assert folder.parent == tmp_path
    assert is_private_dir(folder)


def test_runtime_folder_follows_xdg_runtime_dir_and_is_removed_on_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sockets go to $XDG_RUNTIME_DIR (named in endpoints.json) and the folder goes on stop."""
    runtime = Path(tempfile.mkdtemp(prefix="xdg-"))  # short, as /run/user/UID is
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        with running_service(tmp_path / "novel") as service:
            folder = Path(service.endpoints["runtime_dir"])
            assert folder.parent == runtime / "writers-factory"
            assert service.endpoints["command"] == f"ipc://{folder / 'command.sock'}"
            assert is_private_dir(folder)
            assert service.request("supervisor.status")["ok"] is True
            digest = hashlib.sha256(str(service.project.resolve()).encode()).hexdigest()[:16]
            assert folder.name == digest  # as docs/protocol.md section 2.1 tells clients
            assert not list(service.project.rglob("*.sock"))  # nothing in the project
        assert not folder.exists()
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


def test_other_user_cannot_reach_the_workers_link_over_tcp(tmp_path: Path) -> None:
    """With --transport tcp, `nobody` can neither connect to the workers' link nor read the keys."""
    python = _python_for_nobody()
    if python is None:
        pytest.skip("needs root and runuser, and a python the nobody user may run (CI has them)")
    with running_service(tmp_path / "novel", "--transport", "tcp") as service:
        backend = _backend_endpoint(service)
        key_file = service.endpoints["curve"]["client_secret_key_file"]
        probe = subprocess.run(
            ["runuser", "-u", "nobody", "--", python, "-c", _PROBE, backend, key_file],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            cwd="/",
        )
        seen = json.loads(probe.stdout)
        assert seen["link"].startswith("refused"), (backend, seen)
        assert seen["key"].startswith("refused"), seen
        assert service.request("supervisor.status")["ok"] is True


def test_client_without_the_keys_is_refused_over_tcp(tmp_path: Path) -> None:
    """Over tcp a socket without our client key gets no reply and no event; with it, both."""
    with running_service(tmp_path / "novel", "--transport", "tcp") as service:
        endpoints = service.endpoints
        assert endpoints["transport"] == "tcp"
        assert endpoints["command"].startswith("tcp://127.0.0.1:")
        request = json.dumps({"v": 1, "id": "k1", "op": "supervisor.status", "args": {}}).encode()
        context = service.context

        bare = context.socket(zmq.DEALER)
        bare.setsockopt(zmq.LINGER, 0)
        bare.connect(endpoints["command"])
        stranger = context.socket(zmq.DEALER)  # knows the server key, not the client key
        stranger.setsockopt(zmq.LINGER, 0)
        public, secret = zmq.curve_keypair()
        stranger.setsockopt(zmq.CURVE_SERVERKEY, service.curve_options()[zmq.CURVE_SERVERKEY])
        stranger.setsockopt(zmq.CURVE_PUBLICKEY, public)
        stranger.setsockopt(zmq.CURVE_SECRETKEY, secret)
        stranger.connect(endpoints["command"])
        listener = context.socket(zmq.SUB)
        listener.setsockopt(zmq.LINGER, 0)
        listener.setsockopt(zmq.SUBSCRIBE, b"")
        listener.connect(endpoints["events"])
        try:
            assert _no_reply(bare, [b"", request], 1000)
            assert _no_reply(stranger, [b"", request], 500)
            changed = service.request("session.set_stage", {"stage": "writing"})
            assert changed["ok"] is True
            assert service.request("session.save")["ok"] is True
            assert listener.poll(500) == 0
            assert service.request("supervisor.status")["ok"] is True  # the keyed socket
        finally:
            for sock in (bare, stranger, listener):
                sock.close(linger=0)


def test_reference_client_uses_the_keys_over_tcp(tmp_path: Path) -> None:
    """The Python client reads the key files named in endpoints.json: requests and events work."""
    with running_service(tmp_path / "novel", "--transport", "tcp") as service:

        async def exchange() -> tuple[str, str]:
            client = await ServiceClient.connect(service.project, start=False)
            try:
                stream = client.subscribe("session.")
                status = await client.request("supervisor.status", timeout_s=5)
                heard = asyncio.ensure_future(stream.__anext__())
                # Change the stage until the stream hears a save: the first may
                # beat the subscription's own handshake (the usual slow joiner).
                for turn in range(50):
                    stage = ("writing", "creation")[turn % 2]  # a change is saved at once
                    await client.request("session.set_stage", {"stage": stage}, timeout_s=5)
                    done, _ = await asyncio.wait({heard}, timeout=0.2)
                    if done:
                        return str(status["session_id"]), heard.result().topic
                heard.cancel()
                raise AssertionError("no event reached the keyed subscriber")
            finally:
                await client.close()

        session_id, topic = asyncio.run(exchange())
        assert session_id == service.endpoints["session_id"]
        assert topic == "session.saved"
