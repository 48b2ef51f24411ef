"""The eval HTML report renders in headless Chromium (Debian's package), screenshot checked."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from streams.eval import SampleResult, summarise
from streams.eval._html import render_html
from streams.eval._render import comparison
from streams.settings import default_cache_dir

#: The first configuration's bar colour in the chart (streams.eval._html._COLOURS[0]).
BAR_A = (0x4E, 0x79, 0xA7)
BAR_B = (0xF2, 0x8E, 0x2B)


def _result(name: str, total: float, route: str = "valid") -> SampleResult:
    expected = {"vendor": "Acme", "total": 10.0}
    record = {"vendor": "Acme", "total": total} if route == "valid" else None
    return SampleResult(
        name=name,
        route=route,
        reason=route if route == "valid" else "contract:total:decimal_max_places",
        expected=expected,
        record=record,
        errors=() if route == "valid" else ("total:decimal_max_places",),
        attempts=1,
        input_tokens=100,
        output_tokens=20,
        cost_usd=0.0,
        seconds=1.5,
        coverage=1.0 if route == "valid" else None,
        repairs=(),
    )


def _report() -> dict[str, object]:
    a = summarise("before", [_result("one", 10.0), _result("two", 9.0)])
    b = summarise("after", [_result("one", 10.0), _result("two", 0.0, route="invalid")])
    return {"configurations": [a, b], "comparison": comparison(a, b)}


def _pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    channels = {2: 3, 6: 4}[colour]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(b for j in range(0, stride, channels) for b in line[j : j + 3]))
        prev = line
    return width, height, rows


def test_the_report_is_self_contained() -> None:
    """No script, stylesheet, image or font is fetched from anywhere: no src= or href=."""
    page = render_html("eval", _report())
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "<script" not in page
    assert page.count("<svg") == 1


def test_chromium_renders_the_bar_chart(tmp_path: Path) -> None:
    """Headless Chromium draws both configurations' bars: their colours are on the screenshot."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed; run deploy/chromium/install.sh", pytrace=False)
    page = tmp_path / "eval.html"
    page.write_text(render_html("streams eval: before/after", _report()), encoding="utf-8")
    shot = default_cache_dir() / "reports" / "eval-report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            *(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"),
            *(f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,800"),
            *(f"--screenshot={shot}", page.as_uri()),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    width, height, rows = _pixels(shot.read_bytes())
    assert (width, height) == (1000, 800)
    colours = {bytes(BAR_A): 0, bytes(BAR_B): 0}
    for row in rows:
        for x in range(0, len(row), 3):
            colour = row[x : x + 3]
            if colour in colours:
                colours[colour] += 1
    assert all(count > 200 for count in colours.values()), colours
