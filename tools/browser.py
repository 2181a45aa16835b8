"""Headless Chromium (Debian's `chromium`, tools/bootstrap.sh installs it) driven with the
DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, JSON messages ending in
NUL): no port, no websocket library, no browser download. The page tests
(tests/support_browser.py) and tools/screenshots.py open pages through `browser_page`.
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
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
NO_GPU = ["--disable-gpu"]
# WebGL without a GPU: ANGLE over SwiftShader, Chromium's own CPU renderer (Rerun's web viewer needs WebGL)
SOFTWARE_GL = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
# every host name but this machine's fails to resolve, so a page cannot fetch from outside
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"]


#: what to do where chromium() finds nothing
NOT_INSTALLED = "chromium is not installed (tools/bootstrap.sh installs it: `apt-get install chromium`)"


def chromium() -> str | None:
    """The Chromium executable, or None where it is not installed."""
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


class Pipe:
    """DevTools protocol messages to and from Chromium's pipe; events not yet asked for wait in `events`."""

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


class Page:
    """One tab, attached with a flat session."""

    def __init__(self, pipe: Pipe, session: str):
        self.pipe, self.session = pipe, session

    def call(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        return self.pipe.call(method, params, session=self.session, timeout=timeout)

    def navigate(self, url: str, timeout: float = 30) -> None:
        """Open `url` and wait for its load event."""
        self.pipe.events = [e for e in self.pipe.events if e.get("method") != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": url})
        self.pipe.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (JSON-able; a promise is awaited)."""
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})[
            "result"
        ].get("value")

    def screenshot(self, timeout: float = 60) -> np.ndarray:
        """The viewport as H×W×3 uint8."""
        from PIL import Image

        shot = self.call("Page.captureScreenshot", {"format": "png"}, timeout=timeout)
        with Image.open(io.BytesIO(base64.b64decode(shot["data"]))) as im:
            return np.asarray(im.convert("RGB"))


@contextmanager
def browser_page(
    size: tuple[int, int] = (1280, 1000), flags: list[str] = NO_GPU, domains: tuple[str, ...] = ("Page",)
) -> Iterator[Page]:
    """A blank tab in a fresh headless Chromium whose viewport is `size` (width, height) CSS
    pixels at scale 1, with the DevTools `domains` enabled; the browser closes on exit."""
    exe = chromium()
    if exe is None:
        raise RuntimeError(NOT_INSTALLED)
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()

    def fds():  # Chromium reads the protocol from fd 3 and writes to fd 4
        a, b = os.dup(to_r), os.dup(from_w)
        os.dup2(a, 3)
        os.dup2(b, 4)

    w, h = size
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.Popen(
            [exe, *BASE_FLAGS, *flags, f"--window-size={w},{h}", f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_r)
        os.close(from_w)
        pipe = Pipe(to_w, from_r)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            page = Page(pipe, pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"])
            page.call(
                "Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False}
            )
            for domain in domains:
                page.call(f"{domain}.enable")
            pipe.events.clear()
            yield page
            pipe.call("Browser.close")
        finally:
            os.close(to_w)
            os.close(from_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def blank(screenshot: np.ndarray | None) -> bool:
    """True when a screenshot is one colour (nothing drawn)."""
    return bool(screenshot is None or np.ptp(screenshot.reshape(-1, 3), axis=0).max() < 8)
