"""Headless Chromium for the HTML report tests: load a file:// URL, return the DOM after the
page's scripts ran (as a list of elements with their attributes and text), or a screenshot."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from export_helpers import run_tool, tool

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
          "--disable-extensions", "--allow-file-access-from-files"]


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    classes: set[str] = field(default_factory=set)


_VOID = frozenset({"input", "br", "img", "meta", "link", "hr", "col", "area", "base", "source"})


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        element = Element(tag, values, classes=set(values.get("class", "").split()))
        self.elements.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data


def _chromium(*args: str) -> str:
    exe = tool("chromium", "chromium")
    with tempfile.TemporaryDirectory(prefix="leaktrace-chromium-") as profile:
        done = run_tool(exe, *_FLAGS, f"--user-data-dir={profile}", *args, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dom(page: Path, fragment: str = "") -> list[Element]:
    """The page's elements after its scripts ran; `fragment` is the URL's #... part."""
    collector = _Collector()
    collector.feed(_chromium("--dump-dom", page.resolve().as_uri() + fragment))
    return collector.elements


def screenshot(page: Path, out: Path, size: str = "1280,1400") -> Path:
    """A PNG of the page, kept as a test artifact: under pytest's tmp directory (the last
    three runs stay; `--basetemp DIR` chooses where) and, when LEAKTRACE_TEST_ARTIFACTS names
    a directory, copied there too (for CI to upload)."""
    _chromium(f"--screenshot={out}", f"--window-size={size}", page.resolve().as_uri())
    assert out.exists() and out.stat().st_size > 10_000
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    artifacts = os.environ.get("LEAKTRACE_TEST_ARTIFACTS")
    if artifacts:
        os.makedirs(artifacts, exist_ok=True)
        shutil.copyfile(out, Path(artifacts) / out.name)
    return out


def find(elements: list[Element], tag: str | None = None, cls: str | None = None,
         **attrs: str) -> list[Element]:
    return [e for e in elements if (tag is None or e.tag == tag)
            and (cls is None or cls in e.classes)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]
