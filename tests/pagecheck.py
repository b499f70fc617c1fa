"""Open an HTML report in headless Chromium and say what a reader would see wrong.

Debian's ``chromium`` package drives the page through Playwright's Python package, pointed at
that executable (:func:`browser_path`; Playwright's own browser downloads are never used). A
page is checked for:

- console errors and uncaught exceptions while it loads;
- images that do not decode (``img.decode()`` rejects, or ``naturalWidth`` is 0);
- elements that overflow the page sideways: any element whose box leaves the viewport, unless
  it sits inside a container that scrolls or clips horizontally (a wide table in its own
  scrolling box is fine; the page itself scrolling sideways is not);
- empty elements: text-bearing elements (headings, paragraphs, list items, cells, captions,
  code, strong, links, warnings) with neither text nor an image;
- the numbers the page claims: every element with ``data-json="/a/b/0/c"`` (a JSON Pointer
  into the report's JSON) and ``data-value`` (the number it shows, unrounded) is returned so
  a test compares them with the JSON.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_PAGE_SCRIPT = """
async () => {
  const width = document.documentElement.clientWidth;
  const images = [];
  for (const img of Array.from(document.images)) {
    let ok = true;
    try { await img.decode(); } catch (e) { ok = false; }
    images.push({alt: img.alt, ok: ok && img.naturalWidth > 0});
  }
  const clipped = (el) => {
    for (let a = el.parentElement; a; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') return true;
    }
    return false;
  };
  const overflowing = [];
  for (const el of Array.from(document.body.querySelectorAll('*'))) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if ((r.right > width + 0.5 || r.left < -0.5) && !clipped(el)) {
      overflowing.push(el.tagName.toLowerCase() + (el.className ? '.' + el.className : '')
                       + ': ' + (el.textContent || '').trim().slice(0, 60));
    }
  }
  const textual = 'h1,h2,h3,h4,h5,h6,p,li,td,th,figcaption,code,strong,a,dt,dd,.warn,.ok,.card .v';
  const empty = [];
  for (const el of Array.from(document.body.querySelectorAll(textual))) {
    if ((el.textContent || '').trim() === '' && !el.querySelector('img,svg,canvas')) {
      empty.push(el.tagName.toLowerCase() + ' in ' + (el.parentElement ? el.parentElement.tagName.toLowerCase() : '?'));
    }
  }
  const claims = Array.from(document.querySelectorAll('[data-json]')).map(el => ({
    path: el.getAttribute('data-json'), value: el.getAttribute('data-value'),
    text: (el.textContent || '').trim()}));
  return {images, overflowing, empty, claims,
          pageWidth: document.documentElement.scrollWidth, viewport: width};
}
"""


def browser_path() -> str | None:
    """The Chromium executable: ``$BRITTLE_CHROMIUM``, else the first of :data:`CANDIDATES` on
    the PATH; ``None`` when there is none."""
    given = os.environ.get("BRITTLE_CHROMIUM")
    if given:
        return given
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageCheck:
    """What the browser saw on one page at one width."""

    width: int
    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    overflowing: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    claims: list[dict[str, str]] = field(default_factory=list)
    page_width: int = 0

    @property
    def broken_images(self) -> list[str]:
        return [i["alt"] for i in self.images if not i["ok"]]

    def problems(self) -> list[str]:
        """Everything a reader would see wrong, in words (empty when the page is fine)."""
        out = [f"console: {e}" for e in self.console_errors]
        out += [f"image does not decode: {alt}" for alt in self.broken_images]
        if self.page_width > self.width:
            out.append(f"the page scrolls sideways: {self.page_width} px wide at {self.width} px")
        out += [f"overflows the page at {self.width} px: {e}" for e in self.overflowing]
        out += [f"empty element: {e}" for e in self.empty]
        return out


def check_page(path: Path | str, widths: tuple[int, ...] = (1280, 400)) -> list[PageCheck]:
    """Load ``path`` at each viewport width: a file, opened as ``file://`` (no server), or
    an ``http://`` address given as a string (a served site)."""
    return check_pages([path], widths)[0]


def check_pages(
    paths: list[Path | str], widths: tuple[int, ...] = (1280, 400)
) -> list[list[PageCheck]]:
    """:func:`check_page` for each of ``paths``, in one browser (one launch for them all)."""
    from playwright.sync_api import sync_playwright

    executable = browser_path()
    if executable is None:
        raise RuntimeError("no Chromium found: install Debian's chromium or set BRITTLE_CHROMIUM")
    results = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            for path in paths:
                url = path if isinstance(path, str) else path.resolve().as_uri()
                results.append([_look(browser, url, width) for width in widths])
        finally:
            browser.close()
    return results


def _look(browser: Any, url: str, width: int) -> PageCheck:
    """What one page shows at one width."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    check = PageCheck(width)
    page.on(
        "console",
        lambda m, c=check: c.console_errors.append(m.text) if m.type == "error" else None,
    )
    page.on("pageerror", lambda e, c=check: c.console_errors.append(str(e)))
    page.goto(url, wait_until="load")
    seen = page.evaluate(_PAGE_SCRIPT)
    check.images, check.overflowing = seen["images"], seen["overflowing"]
    check.empty, check.claims = seen["empty"], seen["claims"]
    check.page_width = int(seen["pageWidth"])
    page.close()
    return check


def json_at(data: Any, pointer: str) -> Any:
    """The value a JSON Pointer (RFC 6901: ``/a/0/b``, ``~1`` for ``/``, ``~0`` for ``~``)
    addresses in a JSON document."""
    if not pointer.startswith("/"):
        raise ValueError(f"not a JSON Pointer (it must start with '/'): {pointer!r}")
    for token in pointer[1:].split("/"):
        part = token.replace("~1", "/").replace("~0", "~")
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data
