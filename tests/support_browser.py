"""Open a page in headless Chromium (Debian's `chromium`, tools/bootstrap.sh installs it) and
report what a user would see: console errors, images that did not load, requests that left
the machine, and a screenshot.

Chromium is driven with the DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4
out, JSON messages ending in NUL): no port, no websocket library, no browser download.
"""
from __future__ import annotations

import base64
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1280,1000", "--remote-debugging-pipe"]
IMAGES_JS = ("JSON.stringify([...document.images].map(i => ({src: i.getAttribute('src').slice(0, 80), "
             "complete: i.complete, width: i.naturalWidth})))")


def chromium() -> str | None:
    """The Chromium executable, or None where it is not installed."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageReport:
    errors: list[str] = field(default_factory=list)           # console errors, exceptions, failed loads
    external: list[str] = field(default_factory=list)         # requests to anything but file: and data:
    images: list[dict] = field(default_factory=list)          # src, complete, width (natural)
    screenshot: np.ndarray | None = None                      # H×W×3 uint8
    seconds: float = 0.0

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not i["complete"] or i["width"] == 0]


class _Pipe:
    """DevTools protocol messages to and from Chromium's pipe."""

    def __init__(self, to_browser: int, from_browser: int):
        self.w, self.r = to_browser, from_browser
        self.buf, self.next_id, self.events = b"", 0, []

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self.read(timeout)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self.r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + timeout
        while True:
            e = self.read(max(0.01, deadline - time.monotonic()))
            self.events.append(e)
            if e.get("method") == method:
                return e


def open_page(path: Path, settle: float = 0.5) -> PageReport:
    """Load `path` in a fresh headless Chromium and report on it."""
    from PIL import Image

    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    t0 = time.monotonic()
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()

    def fds():  # Chromium reads the protocol from fd 3 and writes to fd 4
        a, b = os.dup(to_r), os.dup(from_w)
        os.dup2(a, 3)
        os.dup2(b, 4)

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"], pass_fds=(3, 4),
                                preexec_fn=fds, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        pipe = _Pipe(to_w, from_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", session=session)
            pipe.events.clear()
            pipe.call("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
            pipe.wait_event("Page.loadEventFired")
            time.sleep(settle)
            images = pipe.call("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True}, session=session)
            shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session=session)
            report = PageReport(images=json.loads(images["result"]["value"]))
            with Image.open(io.BytesIO(base64.b64decode(shot["data"]))) as im:
                report.screenshot = np.asarray(im.convert("RGB"))
            _collect(pipe.events, report)
            pipe.call("Browser.close")
        finally:
            os.close(to_w)
            os.close(from_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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


def blank(screenshot: np.ndarray) -> bool:
    """True when a screenshot is one colour (nothing drawn)."""
    return bool(screenshot is None or np.ptp(screenshot.reshape(-1, 3), axis=0).max() < 8)
