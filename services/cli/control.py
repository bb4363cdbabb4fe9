"""`supervisor stop` and `supervisor status`: talk to a running service."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from protocol.base import age_text
from services.cli.exits import ExitCode
from services.cli.output import WaitNotice, print_json

__all__ = ["query", "running_pid", "status", "status_command", "stop", "stop_command"]


def running_pid(project: Path) -> int | None:
    """The pid of the supervisor serving `project`, or None when nothing does."""
    from services.runtime.lock import SupervisorLock, read_lock_pid
    from services.runtime.paths import ProjectPaths

    paths = ProjectPaths.of(project)
    if not SupervisorLock(paths.lock).is_held_elsewhere():
        return None
    return read_lock_pid(paths.lock)


def query(
    project: Path, op: str, args: dict[str, Any] | None = None, *, timeout_s: float | None = None
) -> Any:
    """Send one request to the running service; the reply's result, or raise."""
    if timeout_s is None:
        from config import default_value

        timeout_s = float(default_value("cli", "query_timeout_s"))
    import zmq

    from protocol.client import ClientError, apply_curve, curve_options
    from protocol.envelopes import EndpointsFile, OkReply, decode_reply, encode_request
    from services.runtime.paths import ProjectPaths
    from services.store import read_document

    outcome = read_document(ProjectPaths.of(project).endpoints, EndpointsFile)
    if outcome.value is None:
        raise ConnectionError("the service is starting or stopping (no endpoints.json)")
    try:
        keys = curve_options(outcome.value)  # over tcp: the keys of this run
    except ClientError as exc:
        raise ConnectionError(str(exc)) from None
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        apply_curve(sock, keys)
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


def stop(project: Path, *, timeout_s: float, as_json: bool = False) -> int:
    """Ask the supervisor to stop (SIGTERM) and wait until it released its lock."""
    pid = running_pid(project)
    if pid is None:
        if as_json:
            print_json({"stopped": False, "running": False, "project": str(project.resolve())})
        print(f"supervisor: not running for {project.resolve()}", file=sys.stderr)
        return ExitCode.NOT_RUNNING
    started = time.monotonic()

    def stopped() -> int:
        waited = round(time.monotonic() - started, 3)
        if as_json:
            print_json({"stopped": True, "supervisor_pid": pid, "waited_s": waited})
        else:
            print(f"Stopped (pid {pid}).")
        return ExitCode.OK

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:  # it stopped between the check and the signal
        return stopped()
    deadline = started + timeout_s
    what = f"Waiting for the supervisor (pid {pid}) to save and stop its workers"
    with WaitNotice(what) as notice:
        while time.monotonic() < deadline:
            if running_pid(project) is None:
                break
            notice.tick()
            time.sleep(0.02)
        else:
            pid_left = pid
            if as_json:
                print_json({"stopped": False, "supervisor_pid": pid_left, "waited_s": timeout_s})
            print(
                f"supervisor: pid {pid_left} did not stop within {timeout_s:g} s; its workers "
                f"stop with it, so `kill -9 {pid_left}` is safe (nothing acknowledged is lost)",
                file=sys.stderr,
            )
            return ExitCode.FAILURE
    return stopped()


def status(project: Path, *, as_json: bool) -> int:
    """Print the workers' table (or JSON); exit 3 when nothing runs, 4 when a worker failed."""
    pid = running_pid(project)
    if pid is None:
        if as_json:
            print_json({"running": False, "project": str(project.resolve())})
        else:
            print(f"Not running for {project.resolve()}.")
        return ExitCode.NOT_RUNNING
    try:
        result = query(project, "supervisor.status")
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        if as_json:
            print_json({"running": True, "supervisor_pid": pid, "error": str(exc)})
        else:
            print(f"Supervisor pid {pid} is running but did not answer: {exc}")
        return ExitCode.FAILURE
    failed = [w["name"] for w in result["workers"] if w["state"] == "failed"]
    code = ExitCode.WORKER_FAILED if failed else ExitCode.OK
    if as_json:
        print_json({"running": True, **result})
        return code
    print(f"Session {result['session_id']} - supervisor pid {result.get('supervisor_pid', pid)}")
    print(f"{'worker':<18} {'state':<9} {'pid':>7} {'restarts':>8} {'uptime':>7}  last exit")
    for worker in result["workers"]:
        uptime_s = worker.get("uptime_s")
        uptime = "-" if uptime_s is None else age_text(uptime_s)
        print(
            f"{worker['name']:<18} {worker['state']:<9} {worker['pid'] or '-':>7} "
            f"{worker['restarts']:>8} {uptime:>7}  {worker.get('last_exit') or '-'}"
        )
    for name in failed:
        print(f"{name} has failed: `supervisor restart {name}` brings it back.")
    return code


def stop_command(options: argparse.Namespace) -> int:
    """`supervisor stop`."""
    return stop(options.project, timeout_s=options.timeout, as_json=options.json)


def status_command(options: argparse.Namespace) -> int:
    """`supervisor status`."""
    return status(options.project, as_json=options.json)
