"""`burnless usage --chart` (terminal bars, rich) and `usage --format html` (one
self-contained page with SVG charts), checked as text, as XML and, slow, as pixels rendered
by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import orjson
import pytest

from burnless.accounting import ledger
from burnless.accounting.ledger import LedgerRecord
from burnless.accounting.tokens import Tokens
from tests.conftest import Workspace

TODAY = datetime.now(timezone.utc).date()
USED = Tokens(1000, 200, 9000, 500)


def rec(day: date, tier: str, cost: float | None, status: str = "ok",
        tokens: Tokens = USED, **kw: object) -> LedgerRecord:
    return LedgerRecord(run_id=f"r-{day}-{tier}", session="s", role="execution", tier=tier,
                        model="claude-sonnet-4-6", status=status,  # type: ignore[arg-type]
                        tokens=tokens, cost_usd=cost, cost_source="reported", audit="passed",
                        ts=f"{day.isoformat()}T12:00:00.000Z", **kw)  # type: ignore[arg-type]


@pytest.fixture
def week(ws: Workspace) -> Workspace:
    """Three tiers over the last week; silver costs most over it, gold most today."""
    ws.tiers(silver="honest")
    records = []
    for back in range(7):
        day = TODAY - timedelta(days=back)
        records.append(rec(day, "silver", 0.10 + 0.01 * back))
        if back % 2 == 0:
            records.append(rec(day, "bronze", 0.02))
    records += [rec(TODAY, "gold", 0.50), rec(TODAY, "gold", None, status="failed"),
                rec(TODAY, "silver", 0.0, status="refused", tokens=Tokens(),
                    refused_by="budget"),
                rec(TODAY - timedelta(days=1), "silver", 0.0, status="escalate")]
    for r in records:
        ledger.record_call(ws.state, r)
    return ws


# --------------------------------------------------------------------------- --chart


def test_chart_draws_cost_and_tokens_per_day_and_per_tier(week: Workspace) -> None:
    p = week.run("usage", "--chart", "--period", "last7d", env={"COLUMNS": "100"})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("Usage per day and per tier, last7d")
    assert "█" in lines[1] and "gold" in lines[1] and "silver" in lines[1]
    cost_at = lines.index("Cost per day (USD, known costs)")
    tokens_at = next(i for i, line in enumerate(lines) if line.startswith("Tokens per day"))
    cost_rows = lines[cost_at + 1:cost_at + 8]
    assert [r[:10] for r in cost_rows] == [
        (TODAY - timedelta(days=6 - i)).isoformat() for i in range(7)]
    assert all(len(r) <= 100 for r in lines)
    # Today's bar is the longest (gold's $0.50), and its figure is the day's known cost.
    bars = [len(re.sub(r"[^█▓▒░]", "", r)) for r in cost_rows]
    assert bars[-1] == max(bars) and bars[-1] > 2 * bars[0]
    assert cost_rows[-1].endswith("$0.6200")  # gold 0.50 + silver 0.10 + bronze 0.02
    assert tokens_at > cost_at and "Per tier: cost | tokens" in p.stdout
    per_tier = lines[lines.index("Per tier: cost | tokens") + 1:]
    # the most expensive first: silver ($0.91 over the week), gold ($0.50), bronze ($0.08)
    assert [line.split()[0] for line in per_tier[:3]] == ["silver", "gold", "bronze"]
    assert "* costs exclude 1 call(s) of unknown cost" in p.stdout


def test_chart_figures_equal_usage_by_day(week: Workspace) -> None:
    days = {r["day"]: r for r in orjson.loads(week.run(
        "usage", "--json", "--by", "day", "--period", "last7d").stdout)["rows"]}
    p = week.run("usage", "--chart", "--period", "last7d", env={"COLUMNS": "120"})
    assert p.returncode == 0, p.stderr
    checked = 0
    for line in p.stdout.splitlines():
        m = re.match(r"(\d{4}-\d{2}-\d{2}) .*\$([\d,.]+)$", line)
        if m:
            assert float(m.group(2).replace(",", "")) == pytest.approx(
                days[m.group(1)]["cost_usd"], abs=5e-5)
            checked += 1
    assert checked == 7


@pytest.mark.parametrize(("args", "needle"), [
    (["--chart", "--format", "json"], "--chart draws on the terminal"),
    (["--chart", "--json"], "--chart draws on the terminal"),
    (["--chart", "--by", "model"], "--by model groups the table"),
    (["--format", "html", "--by", "session"], "--by session groups the table"),
])
def test_chart_and_html_refuse_options_they_do_not_draw(ws: Workspace, args: list[str],
                                                         needle: str) -> None:
    ws.tiers(silver="honest")
    p = ws.run("usage", *args)
    assert p.returncode == 2 and f"burnless: error: {needle}" in p.stderr


def test_rich_is_imported_only_for_the_chart(week: Workspace) -> None:
    def modules(*args: str) -> set[str]:
        p = subprocess.run([sys.executable, "-X", "importtime", "-m", "burnless", "usage", *args],
                           cwd=week.root, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return {line.split("|")[-1].strip() for line in p.stderr.splitlines() if "|" in line}

    table = modules()  # stdout is a pipe: the plain table
    assert "rich" not in table and "burnless.cli.chart" not in table
    html = modules("--format", "html")
    assert "rich" not in html
    assert {"rich", "burnless.cli.chart"} <= modules("--chart")


# --------------------------------------------------------------------------- html


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action") and value:
                self.refs.append(value)


def _html(ws: Workspace, *args: str) -> str:
    p = ws.run("usage", "--format", "html", *args)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_html_is_one_self_contained_page_with_three_svg_charts(week: Workspace) -> None:
    page = _html(week, "--period", "last7d")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    parsed = _Page()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    assert parsed.refs == []  # nothing to fetch: no stylesheet, font, image or script
    assert "@import" not in page and "url(" not in page
    svgs = re.findall(r"<svg .*?</svg>", page, re.DOTALL)
    assert len(svgs) == 3
    ns = "{http://www.w3.org/2000/svg}"
    titles = []
    for svg in svgs:
        root = ElementTree.fromstring(svg)  # well-formed XML
        titles.append(root.find(f"{ns}title").text)  # type: ignore[union-attr]
    assert [t.split(",")[0] for t in titles] == [
        "Cost per day by tier", "Cache-read share per day", "Records by status"]
    cost = ElementTree.fromstring(svgs[0])
    bars = [r.find(f"{ns}title").text for r in cost.iter(f"{ns}rect")]  # type: ignore[union-attr]
    # one segment per (day, tier) with a known cost above 0: 7 silver, 4 bronze, 1 gold
    assert len(bars) == 12
    assert any(b.startswith(f"{TODAY.isoformat()} · gold: $0.500 · 2 calls") for b in bars)
    status = ElementTree.fromstring(svgs[2])
    shown = dict(re.findall(r"(\w+): ([\d,]+)", " ".join(
        r.find(f"{ns}title").text for r in status.iter(f"{ns}rect"))))  # type: ignore[union-attr]
    assert shown == {"ok": "12", "failed": "1", "escalate": "1", "refused": "1"}
    assert "TOTAL" in page and "Costs exclude 1 call(s) of unknown cost" in page


def test_html_escapes_what_the_ledger_says(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    ledger.record_call(ws.state, rec(TODAY, "<script>alert(1)</script>", 0.1))
    page = _html(ws)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for svg in re.findall(r"<svg .*?</svg>", page, re.DOTALL):
        ElementTree.fromstring(svg)


def test_html_of_an_empty_ledger(ws: Workspace) -> None:
    ws.tiers(silver="honest")
    page = _html(ws, "--period", "today")
    assert "no records" in page and page.count("<svg ") == 3


# --------------------------------------------------------------------------- pixels


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """A minimal PNG reader (8-bit RGB or RGBA, not interlaced): width, height, RGB rows."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        rows.append(bytes(line[j] for i in range(0, stride, bpp) for j in range(i, i + 3)))
    return width, height, rows


def _count(rows: list[bytes], hex_color: str) -> int:
    rgb = bytes.fromhex(hex_color.lstrip("#"))
    return sum(row[i:i + 3] == rgb for row in rows for i in range(0, len(row), 3))


@pytest.mark.slow
def test_html_renders_in_headless_chromium(week: Workspace, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "install Chromium (apt-get install -y chromium; .ci/run does)"
    page = tmp_path / "report.html"
    page.write_text(_html(week, "--period", "last7d"), encoding="utf-8")
    shot = Path(os.environ.get("BURNLESS_SCREENSHOT", tmp_path / "report.png"))
    profile = tmp_path / "chromium-profile"
    p = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
         "--window-size=1200,1600", page.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert p.returncode == 0 and shot.is_file(), p.stderr[-2000:]
    width, height, rows = _png_pixels(shot)
    assert (width, height) == (1200, 1600)
    from burnless.accounting.htmlreport import SHARE_COLOR, STATUS_COLORS, TIER_COLORS

    # The charts are drawn: the tiers' colours (gold first, then silver, bronze), the
    # cache-share bars and the status bars are on screen in visible amounts.
    for color in (*TIER_COLORS[:3], STATUS_COLORS["ok"], STATUS_COLORS["failed"]):
        assert _count(rows, color) > 150, color
    assert _count(rows, SHARE_COLOR) > 2000
    # Mostly white page with dark text: not blank, not a black or error screen.
    white = _count(rows, "#ffffff")
    assert 0.5 * width * height < white < 0.98 * width * height
