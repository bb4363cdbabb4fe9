"""`supervisor stop` and `supervisor status`: talk to a running service."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from services.cli.exits import EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK

__all__ = ["query", "status", "stop"]


def _running_pid(project: Path) -> int | None:
    from services.runtime.lock import SupervisorLock, read_lock_pid
    from services.runtime.paths import ProjectPaths

    paths = ProjectPaths.of(project)
    if not SupervisorLock(paths.lock).is_held_elsewhere():
        return None
    return read_lock_pid(paths.lock)


def query(
    project: Path, op: str, args: dict[str, Any] | None = None, *, timeout_s: float = 3.0
) -> Any:
    """Send one request to the running service; the reply's result, or raise."""
    import zmq

    from protocol.envelopes import EndpointsFile, OkReply, decode_reply, encode_request
    from services.runtime.paths import ProjectPaths
    from services.store import read_document

    outcome = read_document(ProjectPaths.of(project).endpoints, EndpointsFile)
    if outcome.value is None:
        raise ConnectionError("the service is starting or stopping (no endpoints.json)")
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(outcome.value.command)
        sock.send(encode_request(f"cli-{os.getpid()}-{time.monotonic_ns()}", op, args))
        if not sock.poll(int(timeout_s * 1000)):
            raise TimeoutError(f"no reply to {op} within {timeout_s:g} s")
        reply = decode_reply(sock.recv())
    finally:
        sock.close()
    if isinstance(reply, OkReply):
        return reply.result
    raise RuntimeError(f"{reply.error.code.value}: {reply.error.message}")


def stop(project: Path, *, timeout_s: float) -> int:
    """Ask the supervisor to stop (SIGTERM) and wait until it released its lock."""
    pid = _running_pid(project)
    if pid is None:
        print(f"supervisor: not running for {project.resolve()}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:  # it stopped between the check and the signal
        print(f"Stopped (pid {pid}).")
        return EXIT_OK
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _running_pid(project) is None:
            print(f"Stopped (pid {pid}).")
            return EXIT_OK
        time.sleep(0.02)
    print(
        f"supervisor: pid {pid} did not stop within {timeout_s:g} s; its workers stop "
        f"with it, so `kill -9 {pid}` is safe (nothing acknowledged is lost)",
        file=sys.stderr,
    )
    return EXIT_FAILURE


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def status(project: Path, *, as_json: bool) -> int:
    """Print the workers' table (or JSON); exit 3 when nothing runs."""
    from protocol.codec import dumps_pretty

    pid = _running_pid(project)
    if pid is None:
        if as_json:
            sys.stdout.write(
                dumps_pretty({"running": False, "project": str(project.resolve())}).decode()
            )
        else:
            print(f"Not running for {project.resolve()}.")
        return EXIT_NOT_RUNNING
    try:
        result = query(project, "supervisor.status")
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        if as_json:
            sys.stdout.write(
                dumps_pretty({"running": True, "supervisor_pid": pid, "error": str(exc)}).decode()
            )
        else:
            print(f"Supervisor pid {pid} is running but did not answer: {exc}")
        return EXIT_FAILURE
    if as_json:
        sys.stdout.write(dumps_pretty({"running": True, **result}).decode())
        return EXIT_OK
    print(f"Session {result['session_id']} - supervisor pid {result.get('supervisor_pid', pid)}")
    print(f"{'worker':<18} {'state':<9} {'pid':>7} {'restarts':>8} {'uptime':>7}  last exit")
    for worker in result["workers"]:
        uptime = _age(worker.get("uptime_s"))
        print(
            f"{worker['name']:<18} {worker['state']:<9} {worker['pid'] or '-':>7} "
            f"{worker['restarts']:>8} {uptime:>7}  {worker.get('last_exit') or '-'}"
        )
    return EXIT_OK
