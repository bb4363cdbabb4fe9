"""`soak`: 1,000 SIGKILLs of random processes while four clients and an editor keep working.

See `bench.soak`. The row times the soak per kill; the notes give the kills,
the acknowledged operations and what was lost, counted twice or left
unreadable (each must be 0: the `lost` row fails otherwise).
"""

from __future__ import annotations

from bench.harness import BenchContext, Row, Target, benchmark
from bench.soak import run_soak

__all__ = ["soak"]


@benchmark("soak")
def soak(ctx: BenchContext) -> list[Row]:
    """Kill soak: 1,000 kills (30 with --quick), 0 acknowledged ops lost or doubled."""
    kills = 30 if ctx.quick else 1000
    report = run_soak(ctx.workdir / "novel", kills=kills, supervisor_every=25)
    ctx.notes.append(report.line())
    ctx.notes.extend(
        f"  {item}" for item in (report.lost + report.doubled + report.unreadable)[:10]
    )
    ctx.notes.extend(f"  {item}" for item in (report.corrupt_files + report.client_errors)[:10])
    per_kill = [report.seconds / max(1, report.kills)]
    failures = float(not report.ok)
    return [
        Row("soak time per kill", per_kill, "-", per_kill),
        Row("lost or broken (count)", [failures], "-", [1.0], Target("max", max_seconds=0.0)),
    ]
