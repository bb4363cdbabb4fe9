"""bench.harness: registry, interleaving, verdicts and the table (never the timings)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bench.harness import (
    BENCHMARKS,
    HEADERS,
    BenchContext,
    Row,
    Target,
    benchmark,
    filesystem_type,
    format_table,
    interleave,
    main,
    percentile,
    pick_workdir,
    run,
)

STORE_ROWS = [
    ("save_bytes 4 KB", "raw replace", "-"),
    ("save_bytes 4 KB", "raw + .prev + folder fsync", "p50 <= 1.2x"),
    ("save_bytes 200 KB", "raw replace", "-"),
    ("save_bytes 2 MB", "raw replace", "-"),
    ("save 4 KB", "naive, no fsync", "-"),
    ("save 200 KB", "naive, no fsync", "-"),
    ("save 2 MB", "naive, no fsync", "-"),
    ("dumps_pretty 4 KB", "json.dumps indent=2", "p50 <= 1x"),
    ("dumps_pretty 200 KB", "json.dumps indent=2", "p50 <= 1x"),
    ("dumps_pretty 2 MB", "json.dumps indent=2", "p50 <= 1x"),
]


def test_store_benchmark_quick_prints_the_expected_rows(tmp_path: Path) -> None:
    """`store --quick` yields every size's rows with samples, baselines, targets and verdicts."""
    out = io.StringIO()
    rows = run(["store"], quick=True, workdir=tmp_path, out=out)
    assert [(r.label, r.baseline_label, r.target_text) for r in rows] == STORE_ROWS
    for row in rows:
        assert row.samples
        assert len(row.samples) == len(row.baseline_samples)
        assert row.verdict in {"pass", "FAIL", "info"}
    table = out.getvalue()
    assert "[store]" in table
    for header in HEADERS:
        assert header in table
    for label, baseline, target in STORE_ROWS:
        assert label in table
        assert baseline in table
        assert target in table


def test_main_runs_quick_store_and_exits_zero_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m bench store --quick` prints the table and exits 0 (timings are not judged)."""
    assert main(["store", "--quick", "--dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "save_bytes 4 KB" in printed
    assert "p50 <= 1.2x" in printed


def test_unknown_benchmark_name_exits_2_listing_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Asking for a benchmark that does not exist exits 2 and names the ones that do."""
    assert main(["nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err
    assert "store" in err


def test_list_shows_registered_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    """`--list` prints each benchmark with its one-line description."""
    assert main(["--list"]) == 0
    assert "store: " in capsys.readouterr().out


def test_interleave_alternates_candidate_and_baseline() -> None:
    """Candidate and baseline ops alternate one to one, order flipping each round, after warmup."""
    calls: list[str] = []
    cand, base = interleave(
        lambda: calls.append("c"), lambda: calls.append("b"), rounds=4, warmup=1
    )
    assert calls == ["c", "b", "c", "b", "b", "c", "c", "b", "b", "c"]
    assert len(cand) == len(base) == 4
    assert all(sample >= 0 for sample in cand + base)


def test_decorator_registers_a_benchmark_and_refuses_a_clash() -> None:
    """`@benchmark(name)` adds a runnable entry; a different function under the same name fails."""

    def fake(ctx: BenchContext) -> list[Row]:
        """A fake benchmark."""
        return [Row("fake", [1.0], "base", [1.0])]

    try:
        benchmark("test-fake")(fake)
        assert BENCHMARKS["test-fake"].doc == "A fake benchmark"
        with pytest.raises(ValueError, match="twice"):
            benchmark("test-fake")(lambda ctx: [])
    finally:
        BENCHMARKS.pop("test-fake", None)


def test_verdict_compares_the_ratio_with_the_target() -> None:
    """A row passes when candidate/baseline is within the target, fails above it, else is info."""
    base = [1.0, 1.0, 1.0]
    assert Row("a", [1.1, 1.1, 1.1], "b", base, Target("p50", 1.2)).verdict == "pass"
    assert Row("a", [1.3, 1.3, 1.3], "b", base, Target("p50", 1.2)).verdict == "FAIL"
    assert Row("a", [1.3, 1.3, 9.0], "b", base, Target("max", 2.0)).verdict == "FAIL"
    assert Row("a", [9.0], "b", [1.0]).verdict == "info"


def test_percentiles_are_nearest_rank() -> None:
    """p50, p99 and max are read off the sorted samples (nearest rank)."""
    samples = [float(n) for n in range(100, 0, -1)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.99) == 99.0
    assert Row("a", samples, "b", samples).stat("max") == 100.0
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_table_has_one_line_per_row_with_units() -> None:
    """The table prints a header, a rule and one aligned line per row, durations with units."""
    rows = [
        Row("fast", [2e-6], "base", [4e-6], Target("p50", 1.0)),
        Row("slow", [1.5], "base", [0.5]),
    ]
    lines = format_table(rows).splitlines()
    assert len(lines) == 4
    assert "2 µs" in lines[2]
    assert "0.50x" in lines[2]
    assert "pass" in lines[2]
    assert "1.50 s" in lines[3]
    assert "3.00x" in lines[3]
    assert "info" in lines[3]


def test_scratch_folder_is_on_a_real_disk(tmp_path: Path) -> None:
    """The scratch folder the harness picks is never on a memory filesystem."""
    folder, why = pick_workdir()
    try:
        assert folder.is_dir()
        assert filesystem_type(folder) not in {"tmpfs", "ramfs"}
        assert str(folder) in why
    finally:
        folder.rmdir()


def test_rate_rows_read_per_second_and_meet_an_absolute_bound() -> None:
    """A row of events per second prints `/s` and passes or fails its absolute bound."""
    bound = Target("p50", max_seconds=2.0, unit="per_s")
    quiet = Row("idle wakeups", [1.5, 1.5], "floor", [0.0, 0.0], bound, unit="per_s")
    noisy = Row("idle wakeups", [38.0, 38.0], "floor", [0.0, 0.0], bound, unit="per_s")
    lines = format_table([quiet, noisy]).splitlines()
    assert "1.50/s" in lines[2]
    assert "p50 <= 2.00/s" in lines[2]
    assert quiet.verdict == "pass"
    assert noisy.verdict == "FAIL"


_TWO_BUSY_THREADS = """
import sys, threading, time
spun = threading.Barrier(3)
def spin():
    while time.thread_time() < 0.15:
        pass
    spun.wait()
    sys.stdin.read()  # alive while measured, as a worker's threads are
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
spun.wait()
print("done", flush=True)
sys.stdin.read()
"""


def test_cpu_per_operation_counts_every_thread_of_each_process() -> None:
    """The stack bench's CPU meter adds up all threads of a process, not just its main one."""
    import subprocess
    import sys

    from bench.cost_load import CpuMeter

    child = subprocess.Popen(
        [sys.executable, "-c", _TWO_BUSY_THREADS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        meter = CpuMeter({"busy": child.pid})
        before = dict.fromkeys(meter.processes, 0.0)  # from its start
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        meter.add(before, operations=100)
        assert meter.spent["busy"] >= 0.3  # two threads of 0.15 s each
        assert meter.per_phase == [pytest.approx(meter.spent["busy"] / 100)]
        assert meter.text().startswith("busy ") and "total" in meter.text()
    finally:
        child.kill()
        child.wait()
