"""Regenerate the two pictures of the docs (README.md, docs/seeing-results.md) from `make demo`'s output.

    python tools/screenshots.py [DEMO_DIR] [--out DIR] [--only report|rerun] [--timeout S]

DEMO_DIR (default out/demo) is what `make demo` writes; run it first. Two pictures:
  docs/scan-report.png  DEMO_DIR/scan/index.html, the scan report page (clients/scan_report.py),
                        in headless Chromium at a 1200×860 viewport
  docs/rerun-scan.png   DEMO_DIR/scan/scan.rrd in Rerun's web viewer (the one rerun-sdk ships,
                        served on this machine by `rerun --serve-web`) with the layout the
                        recording carries, at 1000×640, in the same Chromium with WebGL drawn on
                        the CPU (SwiftShader): no GPU or display needed; captured once the viewer
                        has drawn and its picture has stopped changing (20-60 s on 2 cores)
Chromium comes from tools/bootstrap.sh (Debian's `chromium`); it is driven over the DevTools
protocol (tools/browser.py, as the page tests drive it). Nothing is fetched from outside the
machine: Chromium resolves no host but this one, so the viewer's web font, version check and
telemetry requests fail, and the rerun CLI runs with Rerun's analytics off (regiond.core.analytics).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

from browser import (  # noqa: E402
    NO_GPU,
    NOT_INSTALLED,
    OFFLINE,
    SOFTWARE_GL,
    Page,
    blank,
    browser_page,
    chromium,
)

from regiond.core.analytics import rerun_analytics_off  # noqa: E402

REPORT_SIZE = (1200, 860)
RERUN_SIZE = (1000, 640)
PICTURES = {"report": "scan-report.png", "rerun": "rerun-scan.png"}
STABLE_SHOTS = 3  # identical screenshots in a row that count as "drawn"
POLL_SECONDS = 1.5


class ScreenshotError(RuntimeError):
    """What went wrong, worded for the person running the tool."""


def report_picture(index: Path, size: tuple[int, int] = REPORT_SIZE) -> np.ndarray:
    """The report page's viewport (top of the page) at `size`."""
    with browser_page(size, flags=NO_GPU + OFFLINE) as page:
        page.navigate(index.resolve().as_uri())
        page.evaluate("document.fonts.ready.then(() => true)")
        return page.screenshot()


def rerun_binary() -> Path:
    """rerun-sdk's `rerun` executable itself: .venv/bin/rerun and `python -m rerun_cli` are
    wrappers that start it as a child, which would outlive their termination."""
    import rerun_cli

    return Path(rerun_cli.__file__).parent / "rerun"


@contextmanager
def served_recording(rrd: Path, timeout: float = 30) -> Iterator[str]:
    """`rerun --serve-web rrd` on loopback ports of its choosing; yields the web viewer's URL
    (which connects the viewer to the recording), stops the server on exit."""
    with tempfile.TemporaryDirectory(prefix="screenshots-rerun-") as tmp:
        log = Path(tmp) / "rerun.log"
        cmd = [
            str(rerun_binary()),
            str(rrd),
            "--serve-web",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--web-viewer-port",
            "0",
            "--renderer",
            "webgl",
        ]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=rerun_analytics_off(Path(tmp) / "config")
            )
        try:
            deadline = time.monotonic() + timeout
            while not (m := re.search(r"connect at (http://\S+)", log.read_text(errors="replace"))):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ScreenshotError(
                        f"`{' '.join(cmd)}` did not start its web viewer:\n" + log.read_text(errors="replace")[-2000:]
                    )
                time.sleep(0.2)
            yield m.group(1)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_drawn(page: Page, timeout: float) -> np.ndarray:
    """Screenshots every POLL_SECONDS until STABLE_SHOTS in a row are the same and not blank:
    the viewer first shows a loading screen, then its panels fill in as data and shaders arrive."""
    deadline, last, same = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        try:  # the first frames take long to draw on the CPU: a capture waits for one
            shot = page.screenshot(timeout=max(10.0, deadline - time.monotonic()))
        except TimeoutError:
            break
        same = same + 1 if last is not None and np.array_equal(last, shot) else 1
        if same == STABLE_SHOTS and not blank(shot):
            return shot
        last = shot
        time.sleep(POLL_SECONDS)
    raise ScreenshotError(f"Rerun's web viewer had not drawn a steady picture after {timeout:.0f} s")


NO_WEBGL = """Rerun's web viewer cannot draw here: this Chromium offers no WebGL 2, not even on the CPU
(SwiftShader). The report page does not need it. To regenerate {name}, run this tool where
Chromium has WebGL (a machine with a GPU and display, or a Chromium build with SwiftShader),
or open the recording in the native viewer and save a {w}×{h} screenshot by hand:
    .venv/bin/rerun {rrd}"""


def rerun_picture(rrd: Path, size: tuple[int, int] = RERUN_SIZE, timeout: float = 180) -> np.ndarray:
    """The recording in Rerun's web viewer, as drawn in headless Chromium with software WebGL."""
    with served_recording(rrd) as url, browser_page(size, flags=SOFTWARE_GL + OFFLINE) as page:
        if not page.evaluate("!!document.createElement('canvas').getContext('webgl2')"):
            raise ScreenshotError(NO_WEBGL.format(name=PICTURES["rerun"], w=size[0], h=size[1], rrd=rrd))
        page.navigate(url, timeout=60)
        return wait_until_drawn(page, timeout)


def save_png(shot: np.ndarray, path: Path, tolerance: int = 8) -> None:
    """As an 8-bit palette PNG (a third of the bytes) when 256 colours hold every pixel within
    `tolerance` of its own, else as RGB: the report's legend swatches keep their colours, and
    the viewer's depth colour map shows no bands."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(shot)
    palette = im.quantize(256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
    if np.abs(np.asarray(palette.convert("RGB"), np.int16) - shot).max() <= tolerance:
        im = palette
    im.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "demo",
        nargs="?",
        type=Path,
        metavar="DEMO_DIR",
        default=REPO / "out" / "demo",
        help="`make demo`'s output folder (default out/demo)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (default docs/)")
    ap.add_argument(
        "--only",
        choices=sorted(PICTURES),
        action="append",
        help="make only this picture (may be given twice; default both)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=180,
        help="seconds to wait for Rerun's viewer to draw a steady picture (default 180)",
    )
    args = ap.parse_args(argv)
    scan = args.demo / "scan"
    sources = {"report": scan / "index.html", "rerun": scan / "scan.rrd"}
    wanted = args.only or sorted(PICTURES, reverse=True)
    missing = [str(sources[w]) for w in wanted if not sources[w].is_file()]
    if missing:
        print(
            f"screenshots: missing {', '.join(missing)}: run `make demo` first (it writes {args.demo}/scan/), "
            "or name the demo output folder",
            file=sys.stderr,
        )
        return 2
    if chromium() is None:
        print(f"screenshots: {NOT_INSTALLED}", file=sys.stderr)
        return 2
    failed = 0
    for what in wanted:
        t0 = time.monotonic()
        try:
            shot = (
                report_picture(sources[what])
                if what == "report"
                else rerun_picture(sources[what], timeout=args.timeout)
            )
        except ScreenshotError as e:
            print(f"screenshots: {what}: {e}", file=sys.stderr)
            failed += 1
            continue
        save_png(shot, args.out / PICTURES[what])
        print(f"{args.out / PICTURES[what]}: {shot.shape[1]}×{shot.shape[0]}, {time.monotonic() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
