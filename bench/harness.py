"""The benchmark harness: a registry, interleaved sampling, and one table.

Figures on a shared machine are noisy (measured: docs/benchmarks.md), so every figure is shown
beside a baseline measured in the same run, with the two *interleaved*: one
candidate operation, one baseline operation, and so on (the order flips each
round), so a burst of noise lands on both and their ratio stays honest.

A benchmark is a function registered under a name that returns `Row`s:

    @benchmark("store")
    def store(ctx: BenchContext) -> list[Row]:
        cand, base = ctx.interleave(do_candidate, do_baseline)
        return [Row("save 4 KB", cand, "raw 4 KB", base, Target("p50", 1.2))]

`python -m bench` imports every `bench/bench_*.py` module, so a new benchmark
is one new file; nothing else needs to change.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import pkgutil
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

__all__ = [
    "BENCHMARKS",
    "BenchContext",
    "Benchmark",
    "Row",
    "Target",
    "benchmark",
    "discover",
    "filesystem_type",
    "format_table",
    "interleave",
    "main",
    "percentile",
    "pick_workdir",
    "run",
]

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
"""Git-ignored; used for scratch files when the temp folder is not on a real disk."""

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs", "overlay-tmpfs"})

Stat = Literal["p50", "p99", "max"]
Unit = Literal["s", "per_s"]
"""What a row's samples count: seconds (shown as s/ms/µs) or events per second."""
Verdict = Literal["pass", "FAIL", "info"]
Action = Callable[[], object]
"""One timed operation (its result is ignored)."""


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in 0..1) of non-empty `samples`."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _stat(samples: Sequence[float], name: Stat) -> float:
    if name == "max":
        return max(samples)
    return percentile(samples, 0.5 if name == "p50" else 0.99)


@dataclass(frozen=True)
class Target:
    """A bound on the candidate relative to its baseline, e.g. p50 <= 1.2x."""

    stat: Stat
    max_ratio: float | None = None
    max_seconds: float | None = None
    """An absolute bound in the row's unit, for targets such as "restart p50 <= 100 ms"."""
    unit: Unit = "s"

    @property
    def text(self) -> str:
        """How the target reads in the table."""
        parts = []
        if self.max_ratio is not None:
            parts.append(f"{self.max_ratio:g}x")
        if self.max_seconds is not None:
            parts.append(_value(self.max_seconds, self.unit))
        return f"{self.stat} <= {' and '.join(parts)}"

    def met(self, row: Row) -> bool:
        """Whether `row` satisfies every bound of this target."""
        if self.max_ratio is not None and row.ratio(self.stat) > self.max_ratio:
            return False
        return self.max_seconds is None or row.stat(self.stat) <= self.max_seconds


@dataclass(frozen=True)
class Row:
    """One line of the table: a candidate, its baseline, and an optional target."""

    label: str
    samples: list[float]
    baseline_label: str
    baseline_samples: list[float]
    target: Target | None = None
    unit: Unit = "s"

    def stat(self, name: Stat) -> float:
        """The candidate's p50, p99 or max, in the row's unit."""
        return _stat(self.samples, name)

    def ratio(self, name: Stat = "p50") -> float:
        """Candidate over baseline for `name` (inf when the baseline took no time)."""
        base = _stat(self.baseline_samples, name)
        return _stat(self.samples, name) / base if base > 0 else math.inf

    @property
    def target_text(self) -> str:
        """The target as text, or `-` when this row is for information."""
        return self.target.text if self.target else "-"

    @property
    def verdict(self) -> Verdict:
        """pass/FAIL against the target; `info` when there is none."""
        if self.target is None:
            return "info"
        return "pass" if self.target.met(self) else "FAIL"


@dataclass
class BenchContext:
    """What a benchmark gets: where to write, how long to run, and the sampler."""

    workdir: Path
    quick: bool
    rounds_scale: float = 1.0
    notes: list[str] = field(default_factory=list)

    def rounds(self, full: int, quick: int) -> int:
        """Iterations for this run: `quick` in --quick mode, else `full`."""
        return max(1, quick if self.quick else int(full * self.rounds_scale))

    def interleave(
        self, candidate: Action, baseline: Action, *, rounds: int, warmup: int = 2
    ) -> tuple[list[float], list[float]]:
        """Time `candidate` and `baseline` alternately; see `interleave`."""
        return interleave(candidate, baseline, rounds=rounds, warmup=warmup)


def interleave(
    candidate: Action, baseline: Action, *, rounds: int, warmup: int = 2
) -> tuple[list[float], list[float]]:
    """Run one candidate op and one baseline op per round and time each.

    The order flips every round (C B, B C, ...) so neither always runs second,
    warm caches and all. `warmup` untimed rounds come first.
    """
    for _ in range(warmup):
        candidate()
        baseline()
    timer = time.perf_counter
    cand: list[float] = []
    base: list[float] = []
    for index in range(rounds):
        pairs = ((candidate, cand), (baseline, base))
        for op, sink in pairs if index % 2 == 0 else reversed(pairs):
            started = timer()
            op()
            sink.append(timer() - started)
    return cand, base


BenchmarkFn = Callable[[BenchContext], list[Row]]


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark."""

    name: str
    run: BenchmarkFn
    doc: str


BENCHMARKS: dict[str, Benchmark] = {}
"""Every registered benchmark by name (filled by `@benchmark` at import)."""


def benchmark(name: str) -> Callable[[BenchmarkFn], BenchmarkFn]:
    """Register the decorated function as benchmark `name`."""

    def register(function: BenchmarkFn) -> BenchmarkFn:
        if name in BENCHMARKS and BENCHMARKS[name].run is not function:
            raise ValueError(f"benchmark {name!r} is registered twice")
        doc = (function.__doc__ or "").strip().splitlines()
        summary = doc[0].rstrip(".") if doc else ""
        BENCHMARKS[name] = Benchmark(name=name, run=function, doc=summary)
        return function

    return register


def discover() -> None:
    """Import every `bench/bench_*.py` so its benchmarks register themselves."""
    for module in pkgutil.iter_modules([str(BENCH_DIR)]):
        if module.name.startswith("bench_"):
            importlib.import_module(f"{__package__}.{module.name}")


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path` (from /proc/self/mounts; `unknown` elsewhere)."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "unknown"
    resolved = str(path.resolve())
    best, kind = "", "unknown"
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, parts[2]
    return kind


def pick_workdir() -> tuple[Path, str]:
    """A scratch folder on the same disk as the project, and why it was chosen.

    The system temp folder is used when it is on the project's filesystem;
    when it is a memory filesystem (tmpfs: fsync is free there, so figures
    would lie) or another device, a folder under `bench/results/` is used.
    """
    temp_root = Path(tempfile.gettempdir())
    temp_kind = filesystem_type(temp_root)
    same_device = temp_root.stat().st_dev == PROJECT_ROOT.stat().st_dev
    if same_device and temp_kind not in MEMORY_FILESYSTEMS:
        folder = Path(tempfile.mkdtemp(prefix="wf-bench-"))
        return folder, f"{folder} ({temp_kind}, same filesystem as the project)"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=RESULTS_DIR))
    why = f"{temp_root} is {temp_kind}{'' if same_device else ' on another device'}"
    return folder, f"{folder} ({filesystem_type(folder)}; {why})"


def _value(value: float, unit: Unit) -> str:
    return f"{value:.2f}/s" if unit == "per_s" else _duration(value)


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


HEADERS = ("benchmark", "p50", "p99", "max", "baseline", "base p50", "ratio", "target", "verdict")
"""Columns of the table, in order."""


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table (ratio is candidate p50 over baseline p50)."""
    cells = [
        (
            row.label,
            _value(row.stat("p50"), row.unit),
            _value(row.stat("p99"), row.unit),
            _value(row.stat("max"), row.unit),
            row.baseline_label,
            _value(_stat(row.baseline_samples, "p50"), row.unit),
            f"{row.ratio('p50'):.2f}x",
            row.target_text,
            row.verdict,
        )
        for row in rows
    ]
    widths = [max(len(text) for text in column) for column in zip(HEADERS, *cells, strict=False)]
    numeric = {1, 2, 3, 5, 6}

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if index in numeric else value.ljust(width)
            for index, (value, width) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(HEADERS), rule, *(line(values) for values in cells)])


def run(
    names: Sequence[str],
    *,
    quick: bool = False,
    workdir: Path | None = None,
    out: TextIO | None = None,
) -> list[Row]:
    """Run the named benchmarks (all when `names` is empty), print the table, return the rows."""
    stream = out if out is not None else sys.stdout
    discover()
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    chosen = list(names) or sorted(BENCHMARKS)
    owned = workdir is None
    if workdir is None:
        workdir, where = pick_workdir()
    else:
        where = f"{workdir} ({filesystem_type(workdir)})"
    rows: list[Row] = []
    try:
        print(f"scratch: {where}", file=stream)
        print(
            f"mode: {'quick' if quick else 'full'}; pid {os.getpid()}; "
            "candidate and baseline interleaved, ratio = candidate p50 / baseline p50",
            file=stream,
        )
        for name in chosen:
            folder = workdir / name
            folder.mkdir(parents=True, exist_ok=True)
            context = BenchContext(workdir=folder, quick=quick)
            started = time.perf_counter()
            found = BENCHMARKS[name].run(context)
            rows.extend(found)
            elapsed = time.perf_counter() - started
            print(f"\n[{name}] {BENCHMARKS[name].doc} ({elapsed:.1f} s)", file=stream)
            print(format_table(found), file=stream)
            for note in context.notes:
                print(f"  note: {note}", file=stream)
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench [names...] [--quick] [--strict] [--list]`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run benchmarks against baselines measured in the same run.",
    )
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--list", action="store_true", help="list benchmarks and exit")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: picked)")
    options = parser.parse_args(argv)
    if options.list:
        discover()
        for name in sorted(BENCHMARKS):
            print(f"{name}: {BENCHMARKS[name].doc}")
        return 0
    try:
        rows = run(options.names, quick=options.quick, workdir=options.dir)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    failed = [row.label for row in rows if row.verdict == "FAIL"]
    if failed:
        print(f"\ntargets missed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed and options.strict else 0
