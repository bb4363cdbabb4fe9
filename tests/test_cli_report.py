"""`supervisor report` over 40 days of real ledger and history, and `inspect costs`' sparkline.

The browser test opens the report in headless Chromium (Debian's `chromium`),
takes a screenshot and checks the DOM: one bar per day, the ledger's exact
sums, no request but the file itself, no console message.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from cli_service import detached_service
from report_project import DAILY_LIMIT, GeneratedProject, write_days
from service import run_cli

from protocol.codec import loads_exact
from services.cli.exits import ExitCode
from services.report.svg import exact_usd

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install -y chromium; .ci/run installs it)",
)
DAYS = 40


@pytest.fixture(scope="module")
def forty_days(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeneratedProject]:
    """A project with 40 days of sessions, written once for this module."""
    project = tmp_path_factory.mktemp("report") / "novel"
    with pytest.MonkeyPatch.context() as patch:
        yield write_days(project, patch, days=DAYS)


def _expected_days(generated: GeneratedProject) -> list[tuple[str, Decimal]]:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    return [(day.isoformat(), generated.by_day.get(day, Decimal(0))) for day in days]


def _report(project: Path, out: Path) -> dict[str, Any]:
    result = run_cli(project, "report", "--days", str(DAYS), "--out", str(out), "--json")
    assert result.returncode == ExitCode.OK, result.stderr
    summary: dict[str, Any] = loads_exact(result.stdout.encode())
    return summary


def test_report_figures_are_the_ledgers_exact_sums(
    forty_days: GeneratedProject, tmp_path: Path
) -> None:
    """Every day, model and operation total equals the exact sum of the ledger's lines."""
    out = tmp_path / "report.html"
    summary = _report(forty_days.project, out)
    assert [(d["day"], d["total"]) for d in summary["days"]] == _expected_days(forty_days)
    assert summary["period_total"] == sum(forty_days.by_day.values())
    assert summary["by_model"] == forty_days.by_model
    assert summary["by_operation"] == forty_days.by_operation
    assert summary["daily_limit"] == DAILY_LIMIT
    assert summary["sessions"] == len(forty_days.sessions)
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page
    print(  # the figures for docs/benchmarks.md (shown with -s)
        f"\n40 days, {forty_days.calls} calls, {len(forty_days.sessions)} sessions: "
        f"{summary['bytes']} bytes, read {summary['read_s'] * 1000:.0f} ms, "
        f"built {summary['build_s'] * 1000:.0f} ms; generated in {forty_days.generated_s:.1f} s"
    )


class _Dom(HTMLParser):
    """The parts of the dumped DOM the checks need."""

    def __init__(self) -> None:
        super().__init__()
        self.day_bars: list[dict[str, str]] = []
        self.fetching: list[tuple[str, str]] = []
        self.tiles: dict[str, str] = {}
        self._tile: str | None = None
        self._in_b = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = values.get("class", "").split()
        if tag == "rect" and "day" in classes:
            self.day_bars.append(values)
        if tag in {"script", "img", "iframe", "object", "embed", "link", "audio", "video"}:
            self.fetching.append((tag, str(values)))
        for name in ("src", "href", "xlink:href", "srcset", "background"):
            if name in values:
                self.fetching.append((tag, f"{name}={values[name]}"))
        if tag == "div" and "figure" in classes:
            self._tile = classes[-1]
        self._in_b = tag == "b"

    def handle_data(self, data: str) -> None:
        if self._in_b and self._tile:
            self.tiles[self._tile] = data
            self._tile = None


class _Proxy:
    """A stand-in HTTP proxy that records the first line of every request it gets."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.requests: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            with client:
                client.settimeout(2)
                try:
                    first = client.recv(4096).split(b"\r\n", 1)[0]
                except OSError:
                    first = b"?"
                self.requests.append(first.decode(errors="replace"))

    def page_requests(self) -> list[str]:
        """Requests not made by Chromium's own services (time, updates, accounts)."""
        own = ("google.com", "googleapis.com", "gvt1.com", "gstatic.com")
        found: list[str] = []
        for line in self.requests:
            parts = line.split(" ")
            if len(parts) < 2:  # a connection that sent nothing (a preconnect), or failed
                continue
            if not any(host in parts[1] for host in own):
                found.append(line)
        return found

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.server.close()


def _chromium(url: str, proxy: _Proxy, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--enable-logging=stderr",
            "--v=0",
            f"--proxy-server=http://127.0.0.1:{proxy.port}",
            "--proxy-bypass-list=<-loopback>",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@needs_chromium
def test_report_in_headless_chromium(forty_days: GeneratedProject, tmp_path: Path) -> None:
    """Chromium shows one bar per day with the exact sums, fetches nothing, logs no error."""
    out = tmp_path / "report.html"
    _report(forty_days.project, out)
    proxy = _Proxy()
    try:
        shot = tmp_path / "report.png"
        screenshot = _chromium(
            out.as_uri(), proxy, f"--screenshot={shot}", "--window-size=860,1600"
        )
        assert shot.exists() and shot.stat().st_size > 20_000, screenshot.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        dumped = _chromium(out.as_uri(), proxy, "--dump-dom")
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        # The same browser and proxy do see a page that fetches: the check can fail.
        control = tmp_path / "control.html"
        control.write_text('<img src="http://report-test.invalid/pixel.png">')
        _chromium(control.as_uri(), proxy, "--dump-dom")
        assert any("report-test.invalid" in r for r in proxy.page_requests())
        report_requests = [r for r in proxy.page_requests() if "report-test.invalid" not in r]
    finally:
        proxy.close()
    assert report_requests == []
    console = [
        line
        for line in screenshot.stderr.splitlines() + dumped.stderr.splitlines()
        if ":CONSOLE" in line
    ]
    assert console == []

    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.fetching == []
    expected = _expected_days(forty_days)
    assert [(bar["data-day"], Decimal(bar["data-total"])) for bar in dom.day_bars] == expected
    over = [bar["data-day"] for bar in dom.day_bars if "over" in bar["class"].split()]
    assert over == [day for day, total in expected if total > DAILY_LIMIT]
    assert dom.tiles["period"] == exact_usd(sum(forty_days.by_day.values()))
    titles = dumped.stdout.count("<title>")
    assert titles >= DAYS


def test_report_works_beside_a_running_service(tmp_path: Path) -> None:
    """With the service running, `report` sums what `cost.log` wrote, to the digit."""
    from services.cli.control import query

    project = tmp_path / "novel"
    with detached_service(project):
        for tokens in (1200, 34_000, 7):
            query(
                project,
                "cost.log",
                {
                    "operation": "analysis",
                    "model": "claude-sonnet-3.5",
                    "input_tokens": tokens,
                    "output_tokens": 300,
                },
            )
        lines = [
            loads_exact(line)
            for path in (project / ".session" / "ledger").glob("*.jsonl")
            for line in path.read_bytes().splitlines()
            if line
        ]
        costs = [Decimal(str(r["cost"])) for r in lines if r["kind"] == "op"]
        summary = _report(project, tmp_path / "r.html")
        assert len(costs) == 3
        assert summary["period_total"] == sum(costs)
        assert summary["by_operation"] == {"analysis": sum(costs)}


def test_inspect_costs_shows_a_14_day_sparkline(forty_days: GeneratedProject) -> None:
    """`inspect costs` ends with one character per day of the last 14 and their exact total."""
    shown = run_cli(forty_days.project, "inspect", "costs")
    assert shown.returncode == ExitCode.OK, shown.stderr
    last = shown.stdout.splitlines()[-1]
    expected = _expected_days(forty_days)[-14:]
    assert last.startswith("  14 days")
    marks = last.split()[2]
    assert len(marks) == 14
    assert [m == "·" for m in marks] == [total == 0 for _, total in expected]
    assert exact_usd(sum(total for _, total in expected)) in last
    shown_json = run_cli(forty_days.project, "inspect", "costs", "--json").stdout
    as_json = loads_exact(shown_json.encode())  # exact: money never passes through a float
    assert [(d["day"], d["total"]) for d in as_json["last_14_days"]] == expected


def test_report_open_hands_the_file_to_the_browser(tmp_path: Path) -> None:
    """`report --open` opens the written file's URI with the user's browser ($BROWSER)."""
    project = tmp_path / "novel"
    project.mkdir()
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o700)
    out = tmp_path / "r.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "supervisor",
            "report",
            "--open",
            "--out",
            str(out),
            "--project",
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "BROWSER": f"{browser} %s"},
    )
    assert result.returncode == ExitCode.OK, result.stderr
    deadline = time.monotonic() + 10
    while not opened.exists() or not opened.read_text().strip():
        assert time.monotonic() < deadline, "the browser was never called"
        time.sleep(0.02)
    assert opened.read_text().strip() == out.resolve().as_uri()
