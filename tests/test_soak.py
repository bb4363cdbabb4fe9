"""100 kills while clients and an editor keep working lose nothing (issue 10, proof 10).

`python -m bench soak` runs the 1,000-kill version (figures in docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import run_soak

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_a_hundred_kills_lose_and_double_nothing(tmp_path: Path) -> None:
    """100 SIGKILLs (workers, fork server, twice the whole tree): every acknowledged op is
    there exactly once, every file parses, no .corrupt-* file."""
    report = run_soak(tmp_path / "novel", kills=100, supervisor_every=34)
    assert report.kills == 100 and report.supervisor_kills == 2, report.line()
    assert report.acknowledged > 100, report.line()
    assert report.lost == [], report.line()
    assert report.doubled == [], report.line()
    assert report.unreadable == [] and report.corrupt_files == [], report.line()
    assert report.client_errors == [], report.line()
