"""`wattd report --html` rendered by a real browser: Debian's chromium, headless,
loading the page from a file. No console errors; the screenshot is not blank
and shows every group's colour; the SVGs in the rendered DOM hold the runs
and the groups in the order the report has them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.browser import census, chromium_or_skip, render
from tests.report_journal import experiment_journal
from wattd.cli.main import main

FIGURES = ["fig-time-per-request", "fig-power", "fig-cpu", "fig-latency-cdf",
           "fig-energy-per-unit"]
TWO = {"python": (4.2, 20.0, 0.95), "rust": (4.8, 5.0, 3.2)}
SIX = {"python": (4.2, 20.0, 0.95), "rust": (4.8, 5.0, 3.2), "go": (4.6, 7.0, 2.4),
       "java": (4.9, 9.0, 2.8), "node": (4.3, 14.0, 1.1), "php": (4.1, 26.0, 0.9)}


def _bar_colours(dom: str, figure: str) -> dict[str, tuple[int, int, int]]:
    """Fill colour of each bar of a figure, by group, as the browser's DOM has it."""
    start = dom.index(f'id="{figure}"')
    part = dom[start:dom.index("</svg>", start)]
    out = {}
    for m in re.finditer(r'data-group="([^"]+)"[^>]*>.*?fill:\s*#([0-9a-f]{6})', part,
                         flags=re.DOTALL):
        hexa = m.group(2)
        out[m.group(1)] = (int(hexa[:2], 16), int(hexa[2:4], 16), int(hexa[4:], 16))
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("groups", "reps"), [(TWO, 10), (SIX, 3)], ids=["2x10", "6x3"])
def test_chromium_renders_the_five_figures(
        groups: dict[str, tuple[float, float, float]], reps: int, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    chromium_or_skip()
    journal = tmp_path / "journal"
    runs, _ = experiment_journal(journal, groups, reps, requests=400)
    page = tmp_path / "report.html"
    assert main(["report", "--journal", str(journal), "--baseline", "idle",
                 "--html", str(page)]) == 0
    capsys.readouterr()
    shown = render(page, tmp_path)
    assert shown.console == []

    dom = census(shown.dom)
    assert [k for k in dom.svgs if k.startswith("fig-")] == FIGURES
    order = "|".join(groups)
    for fig in ("fig-time-per-request", "fig-latency-cdf", "fig-energy-per-unit"):
        assert dom.svgs[fig]["data-groups"] == order
    bars = [m["group"] for m in dom.marks["fig-time-per-request"]]
    assert bars == list(groups)
    # Every run is plotted once in the power and the CPU figures (and the idle baseline).
    for fig in ("fig-power", "fig-cpu"):
        plotted = [m["run"] for m in dom.marks[fig] if "run" in m]
        assert sorted(plotted) == sorted([r.name for r in runs] + ["idle"])
        assert dom.svgs[fig]["data-runs"] == str(len(runs) + 1)
        # Runs of one group share one colour; groups differ.
        colours: dict[str, set[str]] = {}
        start = shown.dom.index(f'id="{fig}"')
        part = shown.dom[start:shown.dom.index("</svg>", start)]
        for m in re.finditer(r'data-group="([^"]+)"[^>]*>.*?stroke:\s*(#[0-9a-f]{6})', part,
                             flags=re.DOTALL):
            colours.setdefault(m.group(1), set()).add(m.group(2))
        assert all(len(c) == 1 for c in colours.values()), colours
        assert len({next(iter(c)) for c in colours.values()}) == len(groups) + 1
    assert len(dom.marks["fig-latency-cdf"]) == len(groups)
    assert all(url.startswith("#") for url in dom.urls)

    image = Image.open(io.BytesIO(shown.png)).convert("RGB")
    assert image.size[0] == 1280
    colours_seen = image.getcolors(maxcolors=1 << 20)
    assert colours_seen is not None
    assert len(colours_seen) > 1  # not blank
    present = {rgb for _, rgb in colours_seen}
    bar_colours = _bar_colours(shown.dom, "fig-energy-per-unit")
    assert set(bar_colours) == set(groups)
    for group, rgb in bar_colours.items():
        assert rgb in present, f"the bar of {group} is not on the screenshot"
    # The energy bars have the time bars' colours: one colour per group everywhere.
    assert _bar_colours(shown.dom, "fig-time-per-request") == bar_colours


def test_console_errors_are_seen(tmp_path: Path) -> None:
    """The console check above can fail: a page that logs an error is caught."""
    chromium_or_skip()
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("boom");'
                    "</script></body></html>", encoding="utf-8")
    shown = render(page, tmp_path, height=400)
    assert any("boom" in line for line in shown.console)
