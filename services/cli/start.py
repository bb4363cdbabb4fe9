"""`supervisor start`: lock, recovery prompt, then the supervisor loop.

Foreground by default (Ctrl-C stops cleanly). `--detach` re-runs this command
in a new session in the background, with the recovery decision already made,
and returns once `endpoints.json` says the service is ready.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.cli.exits import EXIT_FAILURE, EXIT_OK

__all__ = ["start"]

_DETACH_READY_TIMEOUT_S = 30.0


def _say(text: str) -> None:
    print(text, flush=True)


def _load_overrides(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _check_overrides(overrides: dict[str, Any]) -> str | None:
    """What is wrong with a --config file, in words, or None."""
    from pydantic import ValidationError

    from config import load_settings
    from protocol.envelopes import describe_validation_error

    try:
        load_settings(overrides)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def _fork_server_enabled(overrides: dict[str, Any]) -> bool:
    """The `fork_server` setting, read without importing the settings models.

    This runs before the heavy imports on purpose: the fork server then warms
    up while this process imports the supervisor.
    """
    spec = importlib.util.find_spec("config")
    default = True
    if spec is not None and spec.submodule_search_locations:
        defaults = Path(next(iter(spec.submodule_search_locations))) / "defaults.toml"
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            default = (
                tomllib.loads(defaults.read_text(encoding="utf-8"))
                .get("supervisor", {})
                .get("fork_server", True)
            )
    return bool(overrides.get("supervisor", {}).get("fork_server", default))


def _decide_session(paths: Any, options: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Pick the session id: resume an interrupted one, or start a new one."""
    from services.session.recovery import inspect_previous, new_session_id

    previous = inspect_previous(paths)
    flags: dict[str, Any] = {"fresh": bool(options.fresh), "recovered": False}
    if previous is None or not previous.interrupted:
        return new_session_id(paths), flags
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
    resume = not options.fresh
    if not options.fresh and not options.resume and sys.stdin.isatty():
        answer = input("Continue from last session? [Y/n] ").strip().lower()
        resume = answer not in {"n", "no"}
    if resume:
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
    from services.runtime.lock import AlreadyRunning, SupervisorLock, read_lock_pid

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
        fork_server = None
        if _fork_server_enabled(overrides):
            from services.runtime.forkserver import ForkServer

            # It imports for ~0.3 s: start it now, so it warms up while this
            # process imports the supervisor and checks for an interrupted session.
            fork_server = ForkServer.start(cwd=paths.project)
        # Checked after the fork server started: the check imports the
        # settings models, which is exactly what the fork server should overlap.
        problem = _check_overrides(overrides) if overrides else None
        if problem:
            if fork_server is not None:
                fork_server.close()
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
    from services.runtime.logs import RotatingLineFile, configure_supervisor_logging
    from services.runtime.transport import choose_transport, plan_endpoints

    settings = load_settings(overrides)
    log_file = RotatingLineFile(
        paths.logs_dir / "supervisor.log",
        max_bytes=settings.logging.max_bytes,
        backups=settings.logging.backups,
    )
    configure_supervisor_logging(log_file, sys.stderr, verbose=options.verbose)
    session_id, flags = _decide_session(paths, options)
    transport = choose_transport(paths.run_dir, options.transport)
    if transport == "tcp" and options.transport != "tcp":
        _say("The project path is too long for ipc sockets; using tcp on 127.0.0.1")
    worker_options = {
        "supervisor_pid": os.getpid(),
        "interval_s": options.interval,
        **flags,
    }
    supervisor = Supervisor(
        paths,
        settings,
        plan_endpoints(paths.run_dir, transport),
        session_id=session_id,
        worker_settings=overrides,
        worker_options=worker_options,
        fork_server=fork_server,
    )
    supervisor.install_signal_handlers()
    began = datetime.now(UTC)

    def on_ready() -> None:
        from services.store.aside import recovery_notes

        _say(
            f"Writers Factory session service ready for {paths.project} "
            f"(session {session_id}, pid {os.getpid()}). Ctrl-C or `supervisor stop` stops it."
        )
        for note in recovery_notes(paths.session_dir, began):
            _say(note)

    supervisor.on_ready = on_ready
    code = supervisor.run()
    _say("Stopped cleanly.")
    return code


def _detach(paths: Any, options: argparse.Namespace) -> int:
    """Start a background supervisor and wait until it is ready."""
    from services.runtime.lock import read_lock_pid

    # The prompt (if any) happens here, in the foreground, before detaching.
    argv = [sys.executable, "-m", "supervisor", "start", "--project", str(paths.project)]
    decision = "--fresh" if options.fresh else "--resume" if options.resume else None
    if decision is None and sys.stdin.isatty():
        from services.session.recovery import inspect_previous

        previous = inspect_previous(paths)
        if previous is not None and previous.interrupted:
            _decide_session(paths, options)  # prints the notice and asks
            decision = "--fresh" if options.fresh else "--resume"
    if decision:
        argv.append(decision)
    if options.interval is not None:
        argv += ["--interval", str(options.interval)]
    if options.transport:
        argv += ["--transport", options.transport]
    if options.config:
        argv += ["--config", str(options.config.resolve())]
    paths.endpoints.unlink(missing_ok=True)  # the lock is free: any endpoints.json is stale
    began = datetime.now(UTC)
    console = (paths.logs_dir / "console.log").open("ab")
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    child = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=console,
        start_new_session=True,
        cwd=paths.project,
        env=env,
    )
    console.close()
    deadline = time.monotonic() + _DETACH_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if paths.endpoints.exists() and read_lock_pid(paths.lock) == child.pid:
            _say(f"Writers Factory session service running for {paths.project} (pid {child.pid})")
            from services.store.aside import recovery_notes

            for note in recovery_notes(paths.session_dir, began):
                _say(note)
            return EXIT_OK
        if child.poll() is not None:
            tail = (paths.logs_dir / "console.log").read_text(errors="replace").splitlines()[-5:]
            print("supervisor: the service did not start:\n  " + "\n  ".join(tail), file=sys.stderr)
            return EXIT_FAILURE
        time.sleep(0.02)
    print(
        "supervisor: the service did not become ready within "
        f"{_DETACH_READY_TIMEOUT_S:g} s; see .session/logs/",
        file=sys.stderr,
    )
    return EXIT_FAILURE
