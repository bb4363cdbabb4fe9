"""The Python conformance runner: plays the case files against a live service.

It uses plain pyzmq and nothing of the project's client, so it checks the
service the way any other client sees it. One `Runner` serves one service
(its command and events endpoints); cases marked `"service": "fresh"` need a
service of their own and are handed to another `Runner` by the caller.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import zmq

from protocol.conformance.matching import MatchContext, build, dumps_exact, loads_exact, mismatches

__all__ = [
    "CaseFailed",
    "Runner",
    "case_names",
    "curve_keys",
    "load_case",
    "read_endpoints",
    "schema_problem",
]

REPLY_TIMEOUT_S = 15.0
EVENT_TIMEOUT_S = 5.0
WORKER_TIMEOUT_S = 20.0


class CaseFailed(AssertionError):
    """A case whose replies or events were not what the case file says."""


def case_names() -> list[str]:
    """Every case shipped with the package, sorted."""
    folder = resources.files("protocol.conformance") / "cases"
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )


def load_case(name: str) -> dict[str, Any]:
    """One case file, parsed with exact numbers."""
    text = (resources.files("protocol.conformance") / "cases" / f"{name}.json").read_bytes()
    case: dict[str, Any] = loads_exact(text)
    return case


@cache
def _validator(name: str) -> Any:
    import jsonschema

    text = (resources.files("protocol") / "schemas" / f"{name}.schema.json").read_text("utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


def schema_problem(name: str, value: Any) -> str | None:
    """None when `value` matches `protocol/schemas/<name>.schema.json`, else the first error."""
    error = next(iter(_validator(name).iter_errors(value)), None)
    return None if error is None else f"{list(error.absolute_path)}: {error.message}"


@dataclass
class _CaseState:
    """What one case has sent and seen so far."""

    prefix: str
    results: dict[str, Any] = field(default_factory=dict)
    killed: set[int] = field(default_factory=set)

    def id_of(self, label: str) -> str:
        return f"{self.prefix}-{label}"

    def context(self) -> MatchContext:
        return MatchContext(self.id_of, self.results, schema_problem)


class Runner:
    """Runs cases against the service whose endpoints it is given."""

    def __init__(
        self,
        command: str,
        events: str,
        *,
        curve: dict[str, str] | None = None,
        context: zmq.Context[Any] | None = None,
        restart: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._context = context or zmq.Context.instance()
        self._run = secrets.token_hex(4)
        self._restart = restart
        """Kills the whole service tree with SIGKILL and starts it again; its new endpoints."""
        self.events: list[dict[str, Any]] = []
        """Every event received, in order."""
        self.seq_problems: list[str] = []
        self._last_seq: dict[str, int] = {}
        self._parked: dict[str, dict[str, Any]] = {}
        self._joined = False
        self._connect(command, events, curve)

    def _connect(self, command: str, events: str, curve: dict[str, str] | None) -> None:
        self._command_endpoint = command
        self._curve = curve_keys(curve)
        self._sub = self._context.socket(zmq.SUB)
        self._secure(self._sub)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.RCVHWM, 0)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(events)
        self._dealer = self._new_dealer()

    def _new_dealer(self, *, secure: bool = True) -> zmq.Socket[Any]:
        sock: zmq.Socket[Any] = self._context.socket(zmq.DEALER)
        if secure:
            self._secure(sock)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self._command_endpoint)
        return sock

    @classmethod
    def for_project(
        cls, project: Path, *, restart: Callable[[], dict[str, Any]] | None = None
    ) -> Runner:
        """A runner for the service that `<project>/.session/run/endpoints.json` names."""
        endpoints = read_endpoints(project)
        return cls(
            endpoints["command"], endpoints["events"], curve=endpoints.get("curve"), restart=restart
        )

    def _secure(self, sock: zmq.Socket[Any]) -> None:
        """Set the CURVE client keys (tcp), before `connect` as ZeroMQ requires."""
        if self._curve is not None:
            server, public, secret = self._curve
            sock.setsockopt(zmq.CURVE_SERVERKEY, server)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)

    def close(self) -> None:
        """Close both sockets."""
        self._sub.close(linger=0)
        self._dealer.close(linger=0)

    # -- events ---------------------------------------------------------------

    def _drain(self, wait_s: float = 0.0) -> None:
        deadline = time.monotonic() + wait_s
        while self._sub.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            topic, body = self._sub.recv_multipart()
            event = loads_exact(body)
            if event.get("topic") != topic.decode("utf-8"):
                self.seq_problems.append(f"topic frame {topic!r} differs from the envelope's")
            source, seq = event.get("source"), event.get("seq")
            last = self._last_seq.get(source)
            if last is not None and seq != last + 1:
                self.seq_problems.append(f"{source}: seq {seq} after {last}")
            self._last_seq[source] = seq
            self.events.append(event)
            deadline = time.monotonic()  # got one: keep draining without waiting

    def join(self) -> None:
        """Wait until our subscription reaches the service (an event we caused arrives)."""
        deadline = time.monotonic() + 10
        while not self._joined:
            mark = len(self.events)
            # Re-set the screen it has (a change of nothing, but a revision) and save:
            # a session.saved that changes nothing a user sees.
            screen = self._request_ok("session.get")["current_state"]["screen"]
            self._request_ok("session.set_screen", {"screen": screen})
            self._request_ok("session.save")
            self._drain(0.2)
            self._joined = any(e["topic"] == "session.saved" for e in self.events[mark:])
            if time.monotonic() > deadline:
                raise CaseFailed("no event reached the runner's SUB socket within 10 s")

    def _await_events(self, wanted: list[Any], mark: int, state: _CaseState) -> None:
        ctx = state.context()
        position = mark
        for expected in wanted:
            deadline = time.monotonic() + EVENT_TIMEOUT_S
            while True:
                found = next(
                    (
                        i
                        for i in range(position, len(self.events))
                        if not mismatches(expected, self.events[i], ctx)
                    ),
                    None,
                )
                if found is not None:
                    position = found + 1
                    break
                if time.monotonic() > deadline:
                    seen = [f"{e['topic']}#{e['seq']}" for e in self.events[mark:]]
                    raise CaseFailed(
                        f"no event matching {json.dumps(expected, default=str)}; saw {seen}"
                    )
                self._drain(0.05)

    # -- requests -------------------------------------------------------------

    def _send(self, frames: list[bytes]) -> None:
        self._dealer.send_multipart([b"", *frames])

    def _reply(self, wanted: str | None) -> dict[str, Any]:
        """The next reply with id `wanted` (or "" for an unreadable request; None: any)."""
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            for rid in list(self._parked):
                if wanted is None or rid in (wanted, ""):
                    return self._parked.pop(rid)
            left = deadline - time.monotonic()
            if left <= 0 or not self._dealer.poll(int(left * 1000)):
                raise CaseFailed(f"no reply to {wanted!r} within {REPLY_TIMEOUT_S} s")
            frames = self._dealer.recv_multipart()
            if len(frames) != 2 or frames[0] != b"":
                raise CaseFailed(
                    f"a reply must be an empty frame then one JSON frame, got {len(frames)} frames"
                )
            reply = loads_exact(frames[1])
            self._parked[str(reply.get("id"))] = reply

    def _request_ok(self, op: str, args: dict[str, Any] | None = None) -> Any:
        rid = f"cf-{self._run}-{secrets.token_hex(6)}"
        frame = {"v": 1, "id": rid, "op": op, "args": args or {}}
        self._send([dumps_exact(frame)])
        reply = self._reply(rid)
        if reply.get("ok") is not True:
            raise CaseFailed(f"{op} {args} failed: {reply.get('error')}")
        return reply["result"]

    def worker(self, name: str) -> dict[str, Any]:
        """One worker's entry in `supervisor.status`."""
        workers = self._request_ok("supervisor.status")["workers"]
        entry: dict[str, Any] = next(w for w in workers if w["name"] == name)
        return entry

    # -- cases ----------------------------------------------------------------

    def run_case(self, case: dict[str, Any]) -> None:
        """Play one case; `CaseFailed` says which step differed and how."""
        self.join()
        state = _CaseState(prefix=f"cf-{self._run}-{case['name']}-{secrets.token_hex(3)}")
        self._dealer.close(linger=0)
        self._dealer, self._parked = self._new_dealer(), {}
        try:
            for number, setup in enumerate(case.get("setup", []), 1):
                try:
                    self._request_ok(setup["op"], setup.get("args"))
                except CaseFailed as exc:
                    raise CaseFailed(f"{case['name']}: setup {number}: {exc}") from None
            for number, step in enumerate(case["steps"], 1):
                try:
                    self._step(step, number, state)
                except CaseFailed as exc:
                    raise CaseFailed(f"{case['name']}: step {number}: {exc}") from None
            self._drain()
            if self.seq_problems:
                problems, self.seq_problems = self.seq_problems, []
                raise CaseFailed(f"{case['name']}: seq did not rise by one: {problems}")
        finally:
            for teardown in case.get("teardown", []):
                with contextlib.suppress(CaseFailed):
                    self._request_ok(teardown["op"], teardown.get("args"))

    def _step(self, step: dict[str, Any], number: int, state: _CaseState) -> None:
        self._drain()
        mark = len(self.events)
        label = str(step.get("id", f"step{number}"))
        if "action" in step:
            self._action(step, state)
        elif step.get("unauthenticated"):
            self._unanswered(step, label, state)
        elif "await" in step:
            label = str(step["await"])
            self._check_reply(step, label, state)
        else:
            self._send(list(self._frames(step, label, state)))
            if not step.get("no_wait"):
                self._check_reply(step, label, state)
        self._await_events(step.get("events", []), mark, state)

    def _frames(self, step: dict[str, Any], label: str, state: _CaseState) -> Iterator[bytes]:
        parts = step.get("frames", [step])
        for part in parts:
            if "request" in part:
                request = part["request"]
                frame = {
                    "v": 1,
                    "id": state.id_of(label),
                    "op": request["op"],
                    "args": request.get("args", {}),
                }
                yield dumps_exact(build(frame, state.id_of))
            elif "frame" in part:
                yield dumps_exact(build(part["frame"], state.id_of))
            elif "frame_text" in part:
                yield str(part["frame_text"]).encode("utf-8")
            elif "frame_text_template" in part:
                yield (
                    str(part["frame_text_template"])
                    .replace("$ID", state.id_of(label))
                    .encode("utf-8")
                )
            elif "frame_base64" in part:
                yield base64.b64decode(part["frame_base64"])
            else:
                raise CaseFailed(
                    f"a step needs request, frame, frame_text or frame_base64: {sorted(part)}"
                )

    def _check_reply(self, step: dict[str, Any], label: str, state: _CaseState) -> None:
        expect = dict(step.get("expect", {"ok": True}))
        expected_id = expect.pop("id", {"$id": label})
        ctx = state.context()
        wanted = expected_id if isinstance(expected_id, str) else None
        if isinstance(expected_id, dict) and set(expected_id) == {"$id"}:
            wanted = state.id_of(str(expected_id["$id"]))
        reply = self._reply(wanted)
        if "result" in reply:  # the first reply under a label is the one `$same_as` means
            state.results.setdefault(label, reply["result"])
        problems = mismatches({"v": 1, "id": expected_id, **expect}, reply, ctx)
        if problems:
            shown = dumps_exact(reply).decode("utf-8")
            raise CaseFailed("; ".join(problems) + f"\n  reply: {shown[:600]}")

    def _unanswered(self, step: dict[str, Any], label: str, state: _CaseState) -> None:
        """Send without the CURVE keys: no reply may come within `no_reply_within_ms`."""
        sock = self._new_dealer(secure=False)
        try:
            sock.send_multipart([b"", *self._frames(step, label, state)])
            if sock.poll(int(step.get("no_reply_within_ms", 1000))):
                reply = sock.recv_multipart()[-1][:200]
                raise CaseFailed(f"a client without the CURVE keys got a reply: {reply!r}")
        finally:
            sock.close(linger=0)

    def _crash_and_restart(self) -> None:
        if self._restart is None:
            raise CaseFailed("this case needs a runner that can restart the service")
        self._sub.close(linger=0)  # first: over ipc it would reconnect to the new service
        endpoints = self._restart()
        self._dealer.close(linger=0)
        self._parked, self._last_seq, self._joined = {}, {}, False
        self._connect(endpoints["command"], endpoints["events"], endpoints.get("curve"))
        self.join()

    def _action(self, step: dict[str, Any], state: _CaseState) -> None:
        if step["action"] == "crash_and_restart":
            self._crash_and_restart()
            return
        action, name = step["action"], step["worker"]
        if action in ("kill_worker", "stop_worker"):
            pid = self.worker(name)["pid"]
            if not pid:
                raise CaseFailed(f"{name} has no pid to signal")
            os.kill(pid, signal.SIGKILL if action == "kill_worker" else signal.SIGSTOP)
            if action == "kill_worker":
                state.killed.add(pid)
            return
        wanted_state = "running" if action == "wait_running" else step.get("state")
        if action not in ("wait_running", "wait_state") or not wanted_state:
            raise CaseFailed(f"unknown action {action!r}")
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        while True:
            entry = self.worker(name)
            fresh_pid = entry["pid"] not in state.killed
            if entry["state"] == wanted_state and (
                wanted_state != "running" or (entry["pid"] and fresh_pid)
            ):
                return
            if time.monotonic() > deadline:
                raise CaseFailed(f"{name} not {wanted_state} after {WORKER_TIMEOUT_S} s: {entry}")
            self._drain(0.02)


def curve_keys(curve: dict[str, str] | None) -> tuple[bytes, bytes, bytes] | None:
    """The (server public, client public, client secret) keys endpoints.json's `curve` names."""
    if not curve:
        return None
    names = ("server_public_key_file", "client_public_key_file", "client_secret_key_file")
    server, public, secret = (Path(curve[name]).read_bytes().strip() for name in names)
    return server, public, secret


def read_endpoints(project: Path) -> dict[str, Any]:
    """`<project>/.session/run/endpoints.json`."""
    data: dict[str, Any] = json.loads(
        (project / ".session" / "run" / "endpoints.json").read_text("utf-8")
    )
    return data
