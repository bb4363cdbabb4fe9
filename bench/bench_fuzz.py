"""`fuzz`: 100,000 hypothesis-driven hostile frames against the real tree.

See `bench.fuzz`. The row times one frame (send and reply, generation
included); the notes give the counts, the worker restarts and the tree's
memory, and the oversized-subscription probe; the `problems` row fails when a
frame with a readable id got no reply or more than one.
"""

from __future__ import annotations

from bench.fuzz import oversized_subscriptions, run_fuzz
from bench.harness import BenchContext, Row, Target, benchmark
from bench.service_tree import ServiceTree

__all__ = ["fuzz"]


@benchmark("fuzz")
def fuzz(ctx: BenchContext) -> list[Row]:
    """Hostile frames: 100,000 (2,000 with --quick), each readable id answered exactly once."""
    wanted = 2_000 if ctx.quick else 100_000
    report = run_fuzz(ctx.workdir / "novel", frames_wanted=wanted)
    ctx.notes.append(report.line())
    ctx.notes.extend(f"  {problem}" for problem in report.problems[:10])
    tree = ServiceTree(ctx.workdir / "subscriptions")
    with tree.running():
        before, after, outcomes = oversized_subscriptions(tree, [1 << 20, 4 << 20])
    ctx.notes.append(
        f"oversized XSUB subscriptions of 1 MiB and 4 MiB: {outcomes}; "
        f"supervisor PSS {before:.1f} -> {after:.1f} MiB"
    )
    per_frame = [report.seconds / max(1, report.frames)]
    bad = float(len(report.problems) + report.restarts)
    return [
        Row("one hostile frame, sent and answered", per_frame, "-", per_frame),
        Row("problems + restarts (count)", [bad], "-", [1.0], Target("max", max_seconds=0.0)),
    ]
