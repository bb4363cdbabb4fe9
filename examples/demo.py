"""A scripted writing session against a real service, told in plain words.

    python examples/demo.py            # in a temporary project, removed afterwards
    python examples/demo.py --keep     # keep the project folder to look at its files

It starts the service, moves through the stages, opens chapters, logs model
calls (one on a model nobody priced), edits manuscript files the way editors
save them, kills a worker with SIGKILL and watches it come back with nothing
lost, stops cleanly, and shows the history.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from protocol.client import CostTracker, Session
from protocol.names import Op

__all__ = ["main"]


def say(text: str) -> None:
    """Narrate one step."""
    print(text, flush=True)


def supervisor(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a `supervisor` command for the project (as a writer would in a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "supervisor", *args, "--project", str(project)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def save_like_an_editor(path: Path, text: str) -> None:
    """Write a temp file and rename it over the target, as VS Code and JetBrains do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(text, encoding="utf-8")
    temp.replace(path)


async def scene(project: Path) -> None:
    """The writing session itself, through the reference Python client."""
    session = await Session.open(project, start_service=False)
    costs = await CostTracker.open(project, start_service=False, client=session.client)
    saves: list[str] = []
    session.on_save(lambda data: saves.append(str(data.saved_at)))
    files = session.client.subscribe(["file."])
    say(f"Session {session.session_id} is open. Status bar: {(await session.status()).indicator}")

    for stage, model in (
        ("creation", "claude-sonnet-3.5"),
        ("writing", "claude-sonnet-3.5"),
        ("enhancing", "gemini-flash"),
    ):
        await session.set_stage(stage)
        await session.set_model_preference(stage, model)
        say(f"  Stage is now {stage}, using {model} (saved to disk before the reply).")
    await session.set_breadcrumb(["Home", "Writing", "Chapter 5", "Scene 5.3"])
    await session.open_file(
        "manuscript/volume-2/ACT_4/chapter-5.md", cursor_line=142, cursor_col=23
    )
    await session.add_recent_query("What is Mickey's relationship with Noni?", "cognee")
    say("  Opened chapter 5 at line 142 and asked the story bible a question.")

    estimate = await costs.estimate("claude-sonnet-3.5", 12_450, 3_200)
    say(
        f"  A scene generation would cost about ${estimate.cost} "
        f"({'ask first' if estimate.confirm else 'no need to ask'})."
    )
    for operation, model, tokens_in, tokens_out in (
        ("scene_generation", "claude-sonnet-3.5", 12_450, 3_200),
        ("scene_enhancement", "gemini-flash", 8_000, 2_000),
        ("voice_test", "my-local-model", 500, 200),
    ):
        result = await costs.log_operation(operation, model, tokens_in, tokens_out)
        price = (
            f"${result.operation.cost}"
            if result.operation.priced
            else "no price known (recorded, flagged)"
        )
        say(
            f"  Logged {operation} on {model}: {price}. "
            f"Session total ${result.totals.session_total}."
        )

    chapter = project / "manuscript" / "volume-2" / "ACT_4" / "chapter-5.md"
    save_like_an_editor(chapter, "# Chapter 5\n\nMickey waited by the door.\n")
    save_like_an_editor(project / "reference" / "characters.md", "# Noni\n")
    seen = []
    try:
        async with asyncio.timeout(3):
            async for event in files:
                seen.append(f"{event.topic} {event.data['path']}")
                if len(seen) >= 2:
                    break
    except TimeoutError:
        pass
    say("  The watcher reported: " + ("; ".join(seen) or "nothing yet"))

    status = await session.client.request(Op.SUPERVISOR_STATUS)
    writer = next(w for w in status["workers"] if w["name"] == "session_writer")
    say(f"\nKilling the session writer (pid {writer['pid']}) with SIGKILL...")
    os.kill(writer["pid"], signal.SIGKILL)
    document = await session.load()
    status = await session.client.request(Op.SUPERVISOR_STATUS)
    writer = next(w for w in status["workers"] if w["name"] == "session_writer")
    say(
        f"  It is back as pid {writer['pid']} (restarts: {writer['restarts']}). "
        f"Stage is still {document.current_state.stage.value}, chapter 5 still open at line "
        f"{document.open_files[0].cursor_line}: nothing acknowledged was lost."
    )
    saved = await session.save()
    say(
        f"  Saved the snapshot now: {'written' if saved else 'nothing had changed'}. "
        f"Status bar: {(await session.status()).indicator}"
    )
    files.close()
    await costs.close()
    await session.close()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every step worked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the project folder")
    options = parser.parse_args(argv)
    project = Path(tempfile.mkdtemp(prefix="writers-factory-demo-")) / "The Explants"
    project.mkdir()
    say(f"Project folder: {project}")
    started = supervisor(project, "start", "--detach", "--interval", "2")
    if started.returncode != 0:
        say(f"The service did not start:\n{started.stderr}")
        return 1
    say(started.stdout.strip())
    try:
        asyncio.run(scene(project))
    finally:
        say("\nStopping the service cleanly...")
        say(supervisor(project, "stop").stdout.strip())
    say("\nThe history now shows this session:")
    say(supervisor(project, "inspect", "history").stdout.rstrip())
    say("\nAnd the costs at a glance:")
    say(supervisor(project, "inspect", "costs").stdout.rstrip())
    if options.keep:
        say(f"\nKept {project}; look at .session/ inside it.")
    else:
        shutil.rmtree(project.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
