"""Open a page in headless Chromium (tools/browser.py) and report what a user would see:
console errors, images that did not load, requests that left the machine, and a screenshot."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from browser import browser_page

IMAGES_JS = (
    "JSON.stringify([...document.images].map(i => ({src: i.getAttribute('src').slice(0, 80), "
    "complete: i.complete, width: i.naturalWidth})))"
)


@dataclass
class PageReport:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    external: list[str] = field(default_factory=list)  # requests to anything but file: and data:
    images: list[dict] = field(default_factory=list)  # src, complete, width (natural)
    screenshot: np.ndarray | None = None  # H×W×3 uint8
    seconds: float = 0.0

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not i["complete"] or i["width"] == 0]


def open_page(path: Path, settle: float = 0.5) -> PageReport:
    """Load `path` in a fresh headless Chromium and report on it."""
    t0 = time.monotonic()
    with browser_page(domains=("Page", "Runtime", "Log", "Network")) as page:
        page.navigate(path.resolve().as_uri())
        time.sleep(settle)
        report = PageReport(images=json.loads(page.evaluate(IMAGES_JS)), screenshot=page.screenshot())
        _collect(page.pipe.events, report)
    report.seconds = time.monotonic() - t0
    return report


def _collect(events: list[dict], report: PageReport) -> None:
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            report.errors.append(p["exceptionDetails"].get("text", "exception"))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            report.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            report.errors.append(p["entry"].get("text", ""))
        elif m == "Network.loadingFailed":
            report.errors.append(f"failed to load: {p.get('errorText')}")
        elif m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if not url.startswith(("file:", "data:", "about:")):
                report.external.append(url)
