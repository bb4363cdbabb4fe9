"""Hostile frames against the real tree (issue 10, proof 11).

10,000 hypothesis-driven frames here; `python -m bench fuzz` sends 100,000.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz import oversized_subscriptions, readable_id, run_fuzz
from bench.service_tree import ServiceTree

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_ten_thousand_hostile_frames_each_get_one_reply(tmp_path: Path) -> None:
    """Every frame with a readable id gets exactly one reply with it, no worker restarts,
    and the tree's memory stays flat."""
    report = run_fuzz(tmp_path / "novel", frames_wanted=10_000)
    assert report.frames == 10_000, report.line()
    assert report.problems == [], "\n".join(report.problems[:20])
    assert report.replies == report.frames, report.line()
    assert report.with_id > 2_000 and report.vanished_peers >= 10, report.line()
    assert report.restarts == 0, report.line()
    start, end = report.memory_mib
    # The reply caches (4,096 ids per worker) fill over the run; a leak per frame
    # or per byte would show as tens of MiB.
    assert end - start < 24, report.line()


def test_readable_ids_follow_the_documented_rule() -> None:
    """A readable id is the top-level string id of 1-256 characters, parsed or scanned."""
    assert readable_id(b'{"v":1,"id":"a","op":"x"}') == "a"
    assert readable_id(b'{"id":"b","args":' + b"[" * 5000) == "b"
    assert readable_id(b'{"id":""}') is None
    assert readable_id(b'{"id":5}') is None
    assert readable_id(b"garbage") is None


@pytest.mark.timeout(120)
def test_oversized_subscriptions_leave_the_supervisor_memory_flat(tmp_path: Path) -> None:
    """Two 1 MiB XSUB subscriptions (sent by a child that leaves with os._exit) cost the
    supervisor less than 16 MiB, and it still answers."""
    tree = ServiceTree(tmp_path / "novel")
    with tree.running():
        before, after, outcomes = oversized_subscriptions(tree, [1 << 20, 1 << 20])
        workers = tree.request("supervisor.status")["result"]["workers"]
    assert after - before < 16, (before, after, outcomes)
    assert all(worker["restarts"] == 0 for worker in workers)
