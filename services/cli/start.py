"""`supervisor start`: lock, recovery prompt, then the supervisor loop.

Foreground by default (Ctrl-C stops cleanly). `--detach` re-runs this command
in a new session in the background, with the recovery decision already made,
and returns once `endpoints.json` says the service is ready.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.cli.exits import ExitCode
from services.cli.output import WaitNotice, print_json

__all__ = ["start"]

EXIT_OK, EXIT_FAILURE = ExitCode.OK, ExitCode.FAILURE
_to_stderr = False
"""With `--json`, stdout holds only the JSON document: sentences go to stderr."""


def _say(text: str) -> None:
    print(text, flush=True, file=sys.stderr if _to_stderr else sys.stdout)


def _load_overrides(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _check_overrides(overrides: dict[str, Any]) -> tuple[str | None, Any]:
    """The settings (defaults.toml through `config`, then --config), or what is wrong."""
    from pydantic import ValidationError

    from config import load_settings
    from protocol.envelopes import describe_validation_error

    try:
        return None, load_settings(overrides)
    except ValidationError as exc:
        return describe_validation_error(exc), None


def _announce(previous: Any) -> None:
    """Tell the writer the previous session was interrupted, and what changed since."""
    saved = (
        previous.last_save_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        if previous.last_save_at
        else "never"
    )
    _say(f"⚠️  Previous session {previous.session_id} was interrupted")
    _say(f"   Last saved: {saved}")
    _say(f"   Duration: {previous.duration_minutes:.0f} minutes")
    if previous.files_changed:
        shown = previous.files_changed[:10]
        more = len(previous.files_changed) - len(shown)
        _say(
            "   Files changed since the last save: "
            + ", ".join(shown)
            + (f" (+{more} more)" if more else "")
        )
    else:
        _say("   No files in manuscript/, reference/, planning/ or output/ changed since then")


def _wants_resume(options: argparse.Namespace) -> bool:
    """`--resume`/`--fresh` decide; otherwise ask on a terminal, and resume elsewhere."""
    if options.fresh:
        return False
    if not options.resume and sys.stdin.isatty():
        prompt = "Continue from last session? [Y/n] "
        if _to_stderr:  # keep stdout for the JSON document
            sys.stderr.write(prompt)
            sys.stderr.flush()
            prompt = ""
        answer = input(prompt).strip().lower()
        return answer not in {"n", "no"}
    return True


def _decide_session(paths: Any, options: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Pick the session id: resume an interrupted one, or start a new one."""
    from services.session.recovery import inspect_previous, new_session_id

    previous = inspect_previous(paths)
    flags: dict[str, Any] = {"fresh": bool(options.fresh), "recovered": False}
    if previous is None or not previous.interrupted:
        return new_session_id(paths), flags
    _announce(previous)
    if _wants_resume(options):
        _say(f"   Resuming session {previous.session_id}")
        flags["recovered"] = True
        return previous.session_id, flags
    _say("   Starting a fresh session; the interrupted one stays in the history")
    flags["fresh"] = True
    return new_session_id(paths), flags


class _Refused(Exception):
    """`start` cannot go on; the message is for the writer (exit 1)."""


def _prepare(options: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The project's paths (folders created 0700) and the --config overrides."""
    from services.runtime.paths import ProjectPaths
    from services.store.fileops import ensure_private_dir

    project: Path = options.project.expanduser()
    if not project.exists():
        project.mkdir(parents=True)
        _say(f"Created project folder {project.resolve()}")
    if not project.is_dir():
        raise _Refused(f"{project} is not a folder")
    paths = ProjectPaths.of(project)
    for folder in (paths.session_dir, paths.run_dir, paths.logs_dir):
        ensure_private_dir(folder)
    try:
        overrides = _load_overrides(options.config)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _Refused(f"cannot read --config: {exc}") from None
    return paths, overrides


def start(options: argparse.Namespace) -> int:
    """Run `supervisor start`; returns the exit code."""
    global _to_stderr  # noqa: PLW0603 - one command per process: set once, before any output
    from services.runtime.lock import AlreadyRunning, SupervisorLock, read_lock_pid

    _to_stderr = bool(options.json)

    try:
        paths, overrides = _prepare(options)
    except _Refused as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    lock = SupervisorLock(paths.lock)
    if options.detach:
        if lock.is_held_elsewhere():
            print(f"supervisor: already running (pid {read_lock_pid(paths.lock)})", file=sys.stderr)
            return EXIT_FAILURE
        return _detach(paths, options)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        paths.endpoints.unlink(missing_ok=True)  # left by a supervisor that crashed
        from protocol.names import WorkerName
        from services.runtime.children import become_subreaper
        from services.runtime.forkserver import ForkServer

        # Started first (forked by `supervisor.py` once the imports it shares with
        # the workers are done, when it could tell the project from the command
        # line), so it imports the workers' own modules while this process reads
        # the settings, imports the supervisor and checks for an interrupted
        # session. When the settings turn it off, it is closed.
        early = getattr(options, "early_fork_server", None)
        launched = early.take(paths.project) if early is not None else None
        fork_server: Any = (
            ForkServer(*launched) if launched is not None else ForkServer.start(cwd=paths.project)
        )
        problem, settings = _check_overrides(overrides)
        if problem or settings is None or not settings.supervisor.fork_server:
            fork_server.close()
            fork_server = None
        elif become_subreaper():  # the hosts it forks are adopted by this process
            # One host per worker, forked once the server's imports are done while
            # this process still starts up: the start's forks cost no round trip.
            fork_server.prefork(len(WorkerName))
        if problem:
            print(f"supervisor: --config {options.config}: {problem}", file=sys.stderr)
            return EXIT_FAILURE
        return _run(paths, options, overrides, fork_server)
    finally:
        lock.release()


def _run(
    paths: Any, options: argparse.Namespace, overrides: dict[str, Any], fork_server: Any
) -> int:
    from config import load_settings
    from services.runtime.arbiter import Supervisor
    from services.runtime.forklaunch import imports_done
    from services.runtime.logs import RotatingLineFile, configure_supervisor_logging
    from services.runtime.transport import TransportUnavailable, service_endpoints

    settings = load_settings(overrides)
    log_file = RotatingLineFile(
        paths.logs_dir / "supervisor.log",
        max_bytes=settings.logging.max_bytes,
        backups=settings.logging.backups,
    )
    configure_supervisor_logging(log_file, sys.stderr, verbose=options.verbose)
    session_id, flags = _decide_session(paths, options)
    worker_options = {
        "supervisor_pid": os.getpid(),
        "interval_s": options.interval,
        **flags,
    }
    began = datetime.now(UTC)

    def on_ready() -> None:
        from services.store.aside import recovery_notes

        if options.json:
            print_json(_ready_document(paths, os.getpid(), resumed=bool(flags["recovered"])))
        else:
            _say(
                f"Writers Factory session service ready for {paths.project} "
                f"(session {session_id}, pid {os.getpid()}). Ctrl-C or `supervisor stop` stops it."
            )
            for note in recovery_notes(paths.session_dir, began):
                _say(note)

    try:
        # The sockets' private folder and, over tcp, the CURVE keys: both
        # removed when the service stops (docs/protocol.md section 2.1).
        with service_endpoints(paths, options.transport) as endpoints:
            supervisor = Supervisor(
                paths,
                settings,
                endpoints,
                session_id=session_id,
                worker_settings=overrides,
                worker_options=worker_options,
                fork_server=fork_server,
            )
            supervisor.install_signal_handlers()
            supervisor.on_ready = on_ready
            imports_done()  # the collector was off for the imports (forklaunch)
            code = supervisor.run()
    except TransportUnavailable as exc:
        if fork_server is not None:
            fork_server.close()
        print(f"supervisor: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    _say("Stopped cleanly.")
    return code


def _ready_document(paths: Any, pid: int, *, resumed: bool) -> dict[str, Any]:
    """What `start --json` prints once ready: pid, endpoints, session, resumed or fresh."""
    from protocol.codec import loads_exact

    endpoints: dict[str, Any] = loads_exact(paths.endpoints.read_bytes())
    return {
        "running": True,
        "supervisor_pid": pid,
        "project": str(paths.project.resolve()),
        "session_id": endpoints.get("session_id"),
        "resumed": resumed,
        "fresh": not resumed,
        "endpoints": {"command": endpoints.get("command"), "events": endpoints.get("events")},
        "endpoints_file": str(paths.endpoints),
        "console_log": str(paths.logs_dir / "console.log"),
    }


def _open_console_log(path: Path) -> tuple[int, int]:
    """`logs/console.log` opened for appending, 0600 even if an older one was 0644;
    the descriptor and the offset where this start's lines begin."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd, os.fstat(fd).st_size


def _lines_since(path: Path, offset: int, *, limit: int = 8) -> list[str]:
    """This start's lines of console.log, never an earlier run's."""
    with path.open("rb") as reader:
        reader.seek(offset)
        text = reader.read().decode("utf-8", errors="replace")
    return text.splitlines()[-limit:]


def _detach(paths: Any, options: argparse.Namespace) -> int:
    """Start a background supervisor and wait until it is ready."""
    from services.runtime.lock import read_lock_pid

    began = datetime.now(UTC)
    from services.session.recovery import inspect_previous

    # The prompt (if any) happens here, in the foreground, before detaching.
    argv = [sys.executable, "-m", "supervisor", "start", "--project", str(paths.project)]
    previous = inspect_previous(paths)
    interrupted = previous is not None and previous.interrupted
    decision = "--fresh" if options.fresh else "--resume" if options.resume else None
    if decision is None and interrupted and sys.stdin.isatty():
        _announce(previous)
        decision = "--resume" if _wants_resume(options) else "--fresh"
    if decision:
        argv.append(decision)
    if options.interval is not None:
        argv += ["--interval", str(options.interval)]
    if options.transport:
        argv += ["--transport", options.transport]
    if options.config:
        argv += ["--config", str(options.config.resolve())]
    paths.endpoints.unlink(missing_ok=True)  # the lock is free: any endpoints.json is stale
    console_path = paths.logs_dir / "console.log"
    console, offset = _open_console_log(console_path)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            start_new_session=True,
            cwd=paths.project,
            env=env,
        )
    finally:
        os.close(console)
    from config import default_value

    ready_timeout_s = float(default_value("cli", "detach_ready_timeout_s"))
    deadline = time.monotonic() + ready_timeout_s
    waiting = f"Waiting for the workers of pid {child.pid} to be ready (endpoints.json)"
    with WaitNotice(waiting) as notice:
        while time.monotonic() < deadline:
            if paths.endpoints.exists() and read_lock_pid(paths.lock) == child.pid:
                break
            if child.poll() is not None:
                return _explain_exit(paths, child.pid, console_path, offset)
            notice.tick()
            time.sleep(0.02)
        else:
            print(
                "supervisor: the service did not become ready within "
                f"{ready_timeout_s:g} s; see `supervisor logs` and {console_path}",
                file=sys.stderr,
            )
            return EXIT_FAILURE
    resumed = decision == "--resume" or (decision is None and interrupted)
    resumed_id = previous.session_id if resumed and previous else None
    _announce_detached(paths, options, child.pid, resumed_id=resumed_id, began=began)
    return EXIT_OK


def _announce_detached(
    paths: Any, options: argparse.Namespace, pid: int, *, resumed_id: str | None, began: datetime
) -> None:
    """Say that the background service is ready, and what start-up moved aside or rebuilt."""
    from services.store.aside import recovery_notes

    if options.json:
        print_json(_ready_document(paths, pid, resumed=resumed_id is not None))
        return
    how = f"resumed session {resumed_id}" if resumed_id else "new session"
    _say(f"Writers Factory session service running for {paths.project} (pid {pid}, {how})")
    for note in recovery_notes(paths.session_dir, began):
        _say(note)


def _explain_exit(paths: Any, child_pid: int, console_path: Path, offset: int) -> int:
    """The background supervisor exited before it was ready: say why, in its own words.

    The loser of a start race says who won, not what console.log held before.
    """
    from services.runtime.lock import SupervisorLock, read_lock_pid

    winner = read_lock_pid(paths.lock)
    if (
        winner is not None
        and winner != child_pid
        and SupervisorLock(paths.lock).is_held_elsewhere()
    ):
        print(f"supervisor: already running (pid {winner})", file=sys.stderr)
        return EXIT_FAILURE
    from services.cli.failures import disk_is_full

    own = [line for line in _lines_since(console_path, offset) if line.strip()]
    if not own and disk_is_full(paths.session_dir):
        print(
            f"supervisor: the disk holding {paths.project} is full: the service could not "
            "write its files; free some space and start again (nothing acknowledged is lost)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    detail = "\n  ".join(own) if own else "(it printed nothing)"
    print(f"supervisor: the service did not start:\n  {detail}", file=sys.stderr)
    return EXIT_FAILURE
