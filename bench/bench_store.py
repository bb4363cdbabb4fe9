"""`store`: what the atomic JSON store costs over the bare minimum, and over the seed's way.

Three comparisons at 4 KB, 200 KB and 2 MB, each interleaved with its baseline:

* `save_bytes` (temp, write, fsync, rename, fsync folder) against a *raw*
  replace of the same bytes (temp, write, fsync, `os.replace`, no folder
  fsync): the price of our extra care, for information. At 4 KB a second
  row compares against raw + `.prev` + folder fsync, the same durable work
  done by hand (the previous generation kept as a hard link, the folder
  fsync the contract requires), and that row carries the target (p50 <=
  1.2x): the store's own overhead. The hand-done baselines (`ByHand`) are
  plain `os` calls on names built once, the leanest Python can do this.
* `save` (serialise with `dumps_pretty`, then `save_bytes`) against the seed's
  *naive* `json.dumps(indent=2)` + write without any fsync: for information
  only, since the naive way is not durable and loses data on a crash.
* `dumps_pretty` against `json.dumps(indent=2)` of the same dict.
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path
from typing import Any

from bench.harness import BenchContext, Row, Target, benchmark
from protocol.codec import dumps_pretty
from services.store import DATA_FILE_MODE, AtomicJsonFile

__all__ = ["SIZES", "ByHand", "make_document", "store"]

SIZES: dict[str, int] = {"4 KB": 4 * 1024, "200 KB": 200 * 1024, "2 MB": 2 * 1024 * 1024}
"""Document sizes, by label, as indented JSON bytes."""

# (full, quick) rounds per size: large documents are slow to serialise naively.
_ROUNDS: dict[str, tuple[int, int]] = {"4 KB": (300, 12), "200 KB": (80, 4), "2 MB": (16, 2)}

_names = itertools.count()


def make_document(size: int, seed: int = 1123) -> dict[str, Any]:
    """A costs.json-like dict whose indented JSON is at least `size` bytes.

    Plain types only (floats, strings) so `json.dumps` can encode it too.
    """
    rng = random.Random(seed)
    models = ["claude-3-5-sonnet-20241022", "gemini-1.5-flash", "gpt-4-turbo"]
    operations: list[dict[str, Any]] = []
    document: dict[str, Any] = {
        "session_id": "2026-11-23-143022",
        "session_total": 0.0,
        "operations": operations,
        "budget": {"daily_limit": 50, "weekly_limit": 200, "monthly_limit": 500},
    }
    while len(dumps_pretty(document)) < size:
        batch = max(1, (size - len(dumps_pretty(document))) // 300)
        for _ in range(batch):
            tokens_in, tokens_out = rng.randint(10, 20_000), rng.randint(10, 4_000)
            operations.append(
                {
                    "timestamp": f"2026-11-23T14:{rng.randint(0, 59):02d}:00Z",
                    "operation": rng.choice(["draft", "enhance", "analyze", "score"]),
                    "model": rng.choice(models),
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cost": round(tokens_in * 3e-6 + tokens_out * 1.5e-5, 8),
                    "priced": True,
                }
            )
    return document


_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class ByHand:
    """The baselines: a durable replace written by hand, as lean as Python gets.

    Plain `os` calls on names built once as strings (no `Path` per call, no
    existence check before the link), so the rows judge the store against
    the floor of this work in Python, not against pathlib's overhead.
    """

    def __init__(self, path: Path) -> None:
        self.target = os.fspath(path)
        self.folder = os.fspath(path.parent)
        self.temp_stem = f"{self.folder}/.{path.name}.raw-"
        self.link = f"{self.folder}/.{path.name}.link"
        self.previous = f"{self.target}.prev"

    def replace(self, data: bytes) -> None:
        """The bare minimum: temp, write, fsync, rename (no `.prev`, no folder fsync)."""
        temp = f"{self.temp_stem}{next(_names)}"
        fd = os.open(temp, _NEW_FLAGS, DATA_FILE_MODE)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.target)  # noqa: PTH105 - a str, no Path per call; atomic in one folder

    def replace_durably(self, data: bytes) -> None:
        """The store's durable work: the previous generation kept, then the folder fsync.

        `NAME.prev` becomes a second name of the current file (a hard link,
        renamed into place) as the store does since issue 10; the folder
        fsync is what the contract requires (a rename can be lost at a power
        cut without it).
        """
        try:
            os.link(self.target, self.link)
        except FileNotFoundError:
            pass  # the first save: no previous generation yet
        else:
            os.replace(self.link, self.previous)  # noqa: PTH105 - a str, no Path per call
        self.replace(data)
        fd = os.open(self.folder, _DIR_FLAGS)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _naive_save(path: Path, document: dict[str, Any]) -> None:
    """The seed's save: indented `json.dumps` and a plain write, no fsync."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(document, indent=2))


@benchmark("store")
def store(ctx: BenchContext) -> list[Row]:
    """AtomicJsonFile saves vs a raw replace and the seed's naive write; serialisation."""
    save_rows: list[Row] = []
    full_rows: list[Row] = []
    codec_rows: list[Row] = []
    for label, size in SIZES.items():
        document = make_document(size)
        data = dumps_pretty(document)
        rounds = ctx.rounds(*_ROUNDS[label])
        atomic = AtomicJsonFile(ctx.workdir / f"atomic-{size}.json")
        by_hand = ByHand(ctx.workdir / f"raw-{size}.json")
        naive_path = ctx.workdir / f"naive-{size}.json"

        def save_bytes(atomic: AtomicJsonFile = atomic, data: bytes = data) -> None:
            if not atomic.save_bytes(data).ok:
                raise RuntimeError("save_bytes failed during the benchmark")

        def raw(by_hand: ByHand = by_hand, data: bytes = data) -> None:
            by_hand.replace(data)

        cand, base = ctx.interleave(save_bytes, raw, rounds=rounds)
        save_rows.append(Row(f"save_bytes {label}", cand, "raw replace", base))
        if label == "4 KB":
            # The same durable work by hand, as a careful engineer would write
            # it: the contract requires the folder fsync, so this is the peer
            # the target judges; the row above shows what that fsync costs.
            def raw_dir(by_hand: ByHand = by_hand, data: bytes = data) -> None:
                by_hand.replace_durably(data)

            cand, base = ctx.interleave(save_bytes, raw_dir, rounds=rounds)
            save_rows.append(
                Row(
                    f"save_bytes {label}",
                    cand,
                    "raw + .prev + folder fsync",
                    base,
                    Target("p50", 1.2),
                )
            )

        def save(atomic: AtomicJsonFile = atomic, document: dict[str, Any] = document) -> None:
            atomic.save(document)

        def naive(naive_path: Path = naive_path, document: dict[str, Any] = document) -> None:
            _naive_save(naive_path, document)

        cand, base = ctx.interleave(save, naive, rounds=rounds)
        full_rows.append(Row(f"save {label}", cand, "naive, no fsync", base))

        def encode(document: dict[str, Any] = document) -> None:
            dumps_pretty(document)

        def encode_json(document: dict[str, Any] = document) -> None:
            json.dumps(document, indent=2)

        cand, base = ctx.interleave(encode, encode_json, rounds=rounds)
        codec_rows.append(
            Row(f"dumps_pretty {label}", cand, "json.dumps indent=2", base, Target("p50", 1.0))
        )
    ctx.notes.append(
        "raw replace = temp + write + fsync + os.replace, no folder fsync; "
        "naive = json.dumps(indent=2) + write, no fsync at all (the seed's way, not durable)"
    )
    return save_rows + full_rows + codec_rows
