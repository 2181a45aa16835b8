"""The pages the clients write (scan_scene's index.html, search's hits page), opened in a real
headless Chromium: no console errors, every image loads, nothing fetched from outside the
machine, and the screenshot shows something. tools/screenshots.py pictures the report page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from browser import blank, chromium
from support_browser import open_page
from support_service import lite_extractor, png_bytes, running_server, sample_image

TOOL = Path(__file__).resolve().parents[1] / "tools" / "screenshots.py"
REPORT_VIEWPORT = (1200, 860)  # the tool's fixed viewport for the report page (its --help)

pytestmark = pytest.mark.skipif(
    chromium() is None,
    reason="Debian's chromium is not installed (tools/bootstrap.sh installs it with apt where it "
    "can: `apt-get install chromium`)",
)


def assert_page_ok(page: Path, min_images: int):
    r = open_page(page)
    assert r.errors == [], r.errors
    assert r.external == [], f"the page fetched from outside the machine: {r.external}"
    assert len(r.images) >= min_images and r.broken_images == [], r.images
    assert not blank(r.screenshot)
    return r


def test_the_checker_sees_broken_images_console_errors_and_external_requests(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(sample_image()))
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><meta charset=utf-8><img src="a.png"><img src="gone.png">'
        '<script>console.error("boom")</script><link rel=stylesheet href="https://fonts.example/x.css">'
    )
    r = open_page(page)
    assert [i["src"] for i in r.broken_images] == ["gone.png"] and len(r.images) == 2
    assert "boom" in r.errors and any("ERR_FILE_NOT_FOUND" in e for e in r.errors)
    assert r.external == ["https://fonts.example/x.css"]
    assert not blank(r.screenshot) and blank(np.full((10, 10, 3), 255, np.uint8))


@pytest.fixture(scope="module")
def small_demo(labelling_daemon, tmp_path_factory) -> Path:
    """A folder laid out as `make demo`'s: scan/ holds a 4-frame scan_scene output."""
    from regiond.client import scan_scene

    demo = tmp_path_factory.mktemp("demo")
    assert (
        scan_scene.main(
            [
                "synthetic:4",
                "--server",
                labelling_daemon.address,
                "--out",
                str(demo / "scan"),
                "--max-frames",
                "4",
                "--size",
                "160x120",
            ]
        )
        == 0
    )
    return demo


def screenshots(*args) -> subprocess.CompletedProcess:
    """tools/screenshots.py run as a user runs it."""
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_scan_report_page_in_a_browser(small_demo):
    out = small_demo / "scan"
    page = (out / "index.html").read_text()
    assert "mIoU" in page and "confusion.png" in page and page.count("<figure>") == 4
    assert "http://" not in page and "https://" not in page and "<script" not in page
    r = assert_page_ok(out / "index.html", min_images=9)  # 4 overlays, 4 label pictures, the confusion matrix
    assert {i["src"].split("/")[0] for i in r.images} == {"overlays", "labels_color", "confusion.png"}
    assert r.seconds < 30


def test_screenshots_tool_pictures_the_report_page(small_demo, tmp_path):
    from PIL import Image

    run = screenshots(small_demo, "--out", tmp_path, "--only", "report")
    assert run.returncode == 0, run.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["scan-report.png"]
    with Image.open(tmp_path / "scan-report.png") as im:
        assert im.size == REPORT_VIEWPORT
        assert not blank(np.asarray(im.convert("RGB")))


def test_screenshots_tool_says_to_run_the_demo_first(tmp_path):
    run = screenshots(tmp_path / "nothing", "--out", tmp_path)
    assert run.returncode == 2
    assert "run `make demo` first" in run.stderr and "scan.rrd" in run.stderr and "index.html" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_search_page_in_a_browser(tmp_path):
    from regiond.client import search

    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(4):
        (folder / f"p{k}.png").write_bytes(png_bytes(sample_image(96, 72, seed=k)))
    with running_server(lite_extractor(), tmp_path, index=True) as srv:
        base = ["--server", srv.address, "--connect-timeout", "20"]
        assert search.main(base + ["index", str(folder), "--no-progress"]) == 0
        html = tmp_path / "hits.html"
        assert (
            search.main(base + ["query", str(folder / "p1.png"), "--box", "10,10,60,50", "-k", "3", "--out", str(html)])
            == 0
        )
    r = assert_page_ok(html, min_images=4)  # the query and 3 hits
    assert r.seconds < 30


def test_scan_report_says_bundled_labels_are_a_demonstration(tmp_path, capsys):
    """With the bundled heads (trained on generated rooms only) the page and the client say the
    labels are a demonstration, and what each head was trained on; heads with their own record
    say only what they were trained on."""
    from regiond.client import scan_scene
    from regiond.client.scan_report import DEMO_LABELS

    with running_server(lite_extractor(), tmp_path, heads="bundled") as srv:  # regiond serve --heads bundled
        rc = scan_scene.main(
            ["synthetic:4", "--server", srv.address, "--out", str(tmp_path / "scan"), "--max-frames", "2"]
            + ["--size", "160x120"]
        )
    assert rc == 0
    assert f"note: {DEMO_LABELS}" in capsys.readouterr().out
    page = (tmp_path / "scan" / "index.html").read_text()
    assert "generated rooms only" in page and "not a model of real rooms" in page
    assert "trained on 6 synthetic rooms" in page and "ScanNet-20 mIoU 57.8 %" in page
    summary = json.loads((tmp_path / "scan" / "summary.json").read_text())
    assert [(h["head"], h["origin"]) for h in summary["heads"]] == [("segment", "generated"), ("scene", "generated")]
    assert_page_ok(tmp_path / "scan" / "index.html", min_images=4)
