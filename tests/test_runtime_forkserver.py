"""The fork server's client side never hangs: every failure is a prompt ForkServerError."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from services.runtime.children import spawn_host
from services.runtime.forkserver import ForkServer, ForkServerError

_PIDFD = "anon_inode:[pidfd]"


def _pipes(*kinds: str) -> set[tuple[str, str]]:
    """This process's open pipe descriptors (and those of `kinds`): (number, identity)."""
    wanted = ("pipe:", *kinds)
    found = set()
    for entry in Path("/proc/self/fd").iterdir():
        try:
            target = str(entry.readlink())
        except OSError:  # closed meanwhile (the listing's own descriptor, too)
            continue
        if target.startswith(wanted):
            found.add((entry.name, target))
    return found


def test_a_server_that_closes_its_socket_mid_request_fails_fast(tmp_path: Path) -> None:
    """A fork server that reads the request and vanishes is reported at once, not spun on."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def read_then_vanish() -> None:
        _message, fds, _flags, _address = socket.recv_fds(theirs, 4096, 2)
        for fd in fds:
            os.close(fd)
        theirs.close()

    stand_in = spawn_host(cwd=tmp_path)  # any live child will do as the "server" process
    try:
        server = ForkServer(stand_in, ours)
        server.ready = True
        thread = threading.Thread(target=read_then_vanish)
        thread.start()
        started = time.monotonic()
        with pytest.raises(ForkServerError, match="closed"):
            server.fork()
        assert time.monotonic() - started < 1.0
        thread.join()
        before = _pipes()
        with pytest.raises(ForkServerError):
            server.fork()
        # nothing leaked by a failed fork: the worker's stdin and stderr pipes are
        # closed (only pipes are compared: other tests' leftovers, such as a
        # context's I/O thread or a socket the collector closes, come and go)
        assert _pipes() <= before
    finally:
        stand_in.signal(signal.SIGKILL)
        stand_in.wait(5)
        stand_in.close()
        ours.close()


def test_a_frozen_server_times_out_quickly_once_ready(tmp_path: Path) -> None:
    """A real fork server stopped with SIGSTOP fails the next fork within about half a second."""
    server = ForkServer.start(cwd=tmp_path)
    try:
        first = server.fork()  # waits for the imports, then forks
        first.release_lifeline()
        first.signal(signal.SIGKILL)
        server.child.signal(signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(ForkServerError, match="did not answer"):
            server.fork()
        assert time.monotonic() - started < 1.5
    finally:
        server.child.signal(signal.SIGCONT)
        server.close(kill=True)
        assert server.child.returncode is not None


def test_hosts_asked_for_ahead_are_handed_out_and_none_leaks(tmp_path: Path) -> None:
    """Hosts asked for ahead (`prefork`, as `start` does) come out of `fork` one by one, each
    a new process; closing the server with one still unclaimed leaves no descriptor behind."""
    # Pipes and pidfds are what a host's hand-over leaves open; other tests'
    # leftovers (a context's I/O thread, a socket the collector closes) come
    # and go on a loaded machine, so the whole descriptor table is not compared.
    before = _pipes(_PIDFD)
    server = ForkServer.start(cwd=tmp_path)
    hosts = []
    try:
        server.prefork(3)
        hosts = [server.fork(), server.fork()]
        assert len({host.pid for host in hosts}) == 2
        assert all(host.pid not in (os.getpid(), server.child.pid) for host in hosts)
        assert all(Path(f"/proc/{host.pid}").exists() for host in hosts)
    finally:
        for host in hosts:
            host.signal(signal.SIGKILL)
            host.close()
        server.close(kill=True)
    assert server.control.fileno() == -1
    assert _pipes(_PIDFD) <= before


def test_replies_that_come_out_of_order_each_reach_their_own_fork(tmp_path: Path) -> None:
    """Hosts asked for together are forked side by side, so their replies may come in any
    order: each `fork` still gets the pid of its own request, none is dropped or waited out."""
    from protocol.internal import ForkReply

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stand_ins = [spawn_host(cwd=tmp_path) for _ in range(3)]  # live children: real pids

    def answer_backwards() -> None:
        for _ in stand_ins:
            _message, fds, _flags, _address = socket.recv_fds(theirs, 4096, 2)
            for fd in fds:
                os.close(fd)
        for token, child in reversed(list(enumerate(stand_ins, start=1))):
            theirs.send(ForkReply(token=token, pid=child.pid).datagram())

    server = ForkServer(stand_ins[0], ours)
    server.ready = True
    thread = threading.Thread(target=answer_backwards)
    thread.start()
    forked = []
    try:
        server.prefork(len(stand_ins))
        started = time.monotonic()
        forked = [server.fork() for _ in stand_ins]
        assert time.monotonic() - started < 1.0
        assert [host.pid for host in forked] == [child.pid for child in stand_ins]
    finally:
        thread.join()
        for host in forked:
            host.close()
        for child in stand_ins:
            child.signal(signal.SIGKILL)
            child.wait(5)
            child.close()
        ours.close()
        theirs.close()


def _children_of(pid: int) -> set[int]:
    """The pids whose parent is `pid` (zombies included)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def test_forks_asked_for_together_leave_no_process_behind_in_the_server(
    tmp_path: Path,
) -> None:
    """The server does not wait for each fork's middle process to exit before the next fork,
    yet none of them lingers in it (not even as a zombie) once the hosts are forked."""
    server = ForkServer.start(cwd=tmp_path)
    hosts = []
    try:
        server.prefork(4)
        hosts = [server.fork() for _ in range(4)]
        assert len({host.pid for host in hosts}) == 4
        deadline = time.monotonic() + 5.0
        while _children_of(server.child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _children_of(server.child.pid) == set()
    finally:
        for host in hosts:
            host.signal(signal.SIGKILL)
            host.close()
        server.close(kill=True)
