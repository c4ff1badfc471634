"""Debian's chromium, headless, on a local file (test helper): the DOM after
load, a screenshot, and the console messages it logged."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--no-first-run",
          "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]
_CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


def chromium_or_skip() -> str:
    """The browser; in CI (CI=true) a missing one is a failure, never a skip."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (scripts/test installs Debian's chromium)")
        pytest.skip("chromium is not installed (scripts/test installs it)")
    return path


@dataclass
class Rendered:
    dom: str
    png: bytes
    console: list[str]  # messages the page logged (console.*, uncaught errors)


def _run(browser: str, args: list[str], page: Path) -> tuple[str, list[str]]:
    with tempfile.TemporaryDirectory(prefix="wattd-chromium-") as profile:
        proc = subprocess.run(
            [browser, *_FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [m.group(1) for line in proc.stderr.splitlines()
               if (m := _CONSOLE.search(line))]
    return proc.stdout, console


def render(page: Path, out_dir: Path, *, width: int = 1280, height: int = 5600) -> Rendered:
    """Load the page twice: once to dump the DOM, once for a full-height screenshot."""
    browser = chromium_or_skip()
    dom, console = _run(browser, ["--dump-dom"], page)
    shot = out_dir / (page.stem + ".png")
    _, console2 = _run(browser, [f"--window-size={width},{height}", f"--screenshot={shot}"],
                       page)
    return Rendered(dom, shot.read_bytes(), console + console2)


class SvgCensus(HTMLParser):
    """Per inline <svg id=...>: its attributes and the data-* marks inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: dict[str, dict[str, str]] = {}
        self.marks: dict[str, list[dict[str, str]]] = {}
        self.urls: list[str] = []
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        for key in ("src", "href", "xlink:href"):
            if key in values:
                self.urls.append(values[key])
        if tag == "svg" and "id" in values and not self._stack:
            self.svgs[values["id"]] = values
            self.marks[values["id"]] = []
            self._stack.append(values["id"])
        elif tag == "svg":
            self._stack.append("")
        elif self._stack and self._stack[0] and any(k.startswith("data-") for k in values):
            self.marks[self._stack[0]].append(
                {k[5:]: v for k, v in values.items() if k.startswith("data-")})

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self._stack:
            self._stack.pop()


def census(dom: str) -> SvgCensus:
    parser = SvgCensus()
    parser.feed(dom)
    return parser
