"""What users tripped on, through real daemons: connection options before or after a client's
subcommand (or positional argument), and stream_video against a daemon without an activity
head (it says so, and how to serve one)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from support_service import lite_extractor, png_bytes, run_client, running_server, sample_image, write_video

TOKEN = "s3cret"


def _client(name: str, *args) -> subprocess.CompletedProcess:
    return run_client(name, *args, env={k: v for k, v in os.environ.items() if k != "REGIOND_TOKEN"})


@pytest.fixture(scope="module")
def token_daemon(tmp_path_factory):
    """A lite daemon with a region index that wants a token."""
    with running_server(lite_extractor(), tmp_path_factory.mktemp("d"), index=True, token=TOKEN) as srv:
        yield srv


def test_search_takes_connection_options_before_and_after_its_subcommand(token_daemon, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        (folder / f"p{k}.png").write_bytes(png_bytes(sample_image(seed=k)))
    conn = ["--server", token_daemon.address, "--token", TOKEN]
    after = _client("search", "index", folder, "--no-progress", *conn)  # the user's report
    assert after.returncode == 0, after.stderr
    assert "3 indexed" in after.stdout
    before = _client("search", *conn, "index", folder, "--no-progress")
    assert before.returncode == 0 and "3 already indexed" in before.stdout
    # given in both places, the one after the subcommand wins
    both = _client(
        "search",
        "--server",
        "127.0.0.1:1",
        "--connect-timeout",
        "1",
        "query",
        folder / "p1.png",
        "--box",
        "10,10,60,50",
        "--out",
        tmp_path / "hits.html",
        *conn,
        "--connect-timeout",
        "20",
    )
    assert both.returncode == 0, both.stderr
    assert "1. p1.png" in both.stdout
    split = _client(
        "search",
        "--token",
        TOKEN,
        "query",
        folder / "p2.png",
        "--box",
        "0,0,40,40",
        "--out",
        tmp_path / "h2.html",
        "--server",
        token_daemon.address,
    )
    assert split.returncode == 0, split.stderr
    # before the subcommand only: still used by it (no subcommand default hides it)
    wrong = _client("search", "--server", token_daemon.address, "--token", "nope", "index", folder, "--no-progress")
    assert wrong.returncode == 2 and "UNAUTHENTICATED" in wrong.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_scan_and_stream_take_connection_options_anywhere(token_daemon, tmp_path, where):
    conn = ["--server", token_daemon.address, "--token", TOKEN, "--connect-timeout", "20", "--retry-for", "5"]
    video = write_video(tmp_path / "clip.avi", frames=4)
    args = [*conn, video, "--fast"] if where == "before" else [video, "--fast", *conn]
    p = _client("stream_video", *args)
    assert p.returncode == 0, p.stderr
    assert "4 frames (0 rejected)" in p.stdout
    out = tmp_path / "scan"
    scan = ["synthetic:2", "--max-frames", "2", "--size", "160x120", "--out", out, "--overlays", "none"]
    p = _client("scan_scene", *(conn + scan if where == "before" else scan + conn))
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "summary.json").read_text())["frames"] == 2


def test_stream_video_says_the_daemon_serves_no_activity_head(tmp_path):
    video = write_video(tmp_path / "clip.avi")
    with running_server(lite_extractor(), tmp_path) as srv:
        p = _client("stream_video", video, "--server", srv.address, "--fast")
    assert p.returncode == 0, p.stderr
    assert f"the daemon at {srv.address} serves no activity head" in p.stderr
    assert "regiond serve --heads DIR" in p.stderr and "regiond serve --heads bundled" in p.stderr
    assert "12 frames (0 rejected), no activity windows (the daemon serves no activity head)" in p.stdout


def test_stream_video_with_the_bundled_heads_prints_windows(tmp_path):
    video = write_video(tmp_path / "clip.avi")
    with running_server(lite_extractor(), tmp_path, heads="bundled") as srv:  # regiond serve --heads bundled
        p = _client("stream_video", video, "--server", srv.address, "--fast")
    assert p.returncode == 0, p.stderr
    assert "no activity head" not in p.stderr + p.stdout
    windows = [line for line in p.stdout.splitlines() if line.startswith("frames ")]
    assert windows and "12 frames (0 rejected), " in p.stdout and f"{len(windows)} windows" in p.stdout


def test_frames_travel_raw_to_a_daemon_on_this_machine():
    from regiond.client.messages import frame_encoding

    for server in ("127.0.0.1:50051", "localhost:7", "[::1]:50051", "127.0.0.2:1"):
        assert frame_encoding("auto", server) == "raw", server
    for server in ("10.0.0.2:50051", "gpu-box:50051", "[2001:db8::1]:1"):
        assert frame_encoding("auto", server) == "jpeg", server
    assert frame_encoding("jpeg", "127.0.0.1:1") == "jpeg" and frame_encoding("png", "h:1") == "png"
