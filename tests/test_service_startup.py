"""A start-up a client can see (issue 24, item 5): `regiond serve` opens its port with health
NOT_SERVING, answers GetInfo with the state and the calls that need the models UNAVAILABLE
(with a retry-after-ms hint) until its warm-up and normaliser fit are over, then SERVING; the
fitted normaliser is cached for the next start, a damaged cache file is fitted again, and a
SIGTERM during the fit ends the process promptly and cleanly. Real daemon processes on
loopback ports (tests/support_startup.py: serve's own loop on the tiny random models)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support_service import free_port, image_pb, sample_image, wait_serving, write_video

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc
from regiond.commands.serve import LISTENING_PREFIX, READY_PREFIX
from regiond.index.normalising.normaliser import Normaliser
from regiond.service.server import SERVICE_NAME

FIT_STEP = "fitting the search normaliser"


class Daemon:
    """tests/support_startup.py serving from data_dir with XDG_CACHE_HOME=cache_home, its output in log."""

    def __init__(self, tmp: Path, cache_home: Path, name: str, port: int = 0):
        self.log_path = tmp / f"{name}.log"
        self.cache_home = cache_home
        script = Path(__file__).with_name("support_startup.py")
        env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp / f"{name}-data")],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.address = self.wait_line(re.escape(LISTENING_PREFIX) + r"(\S+)").group(1)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_line(self, pattern: str, timeout: float = 180.0) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, self.log)
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.proc.returncode}):\n{self.log[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} within {timeout:g} s:\n{self.log[-3000:]}")

    def stop(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def cached_files(cache_home: Path) -> list[Path]:
    return sorted((cache_home / "regiond" / "normalisers").glob("*.npz"))


def serve_and_stop(d: Daemon) -> str:
    """Wait until `d` serves, check that it extracts, stop it; its log."""
    try:
        wait_serving(d.address, timeout=180)
        with grpc.insecure_channel(d.address) as ch:
            request = pb.ExtractRequest(image=image_pb(sample_image()))
            assert len(pb_grpc.RegionServiceStub(ch).ExtractRegions(request, timeout=60).regions) > 0
        assert d.stop() == 0
    finally:
        d.kill()
    return d.log


@pytest.fixture(scope="module")
def first_start(tmp_path_factory):
    """A first start with an empty cache, observed while it starts: health, an RPC, GetInfo,
    and a client launched before the daemon (it waits for the port, then for SERVING)."""
    tmp = tmp_path_factory.mktemp("first")
    port = free_port()
    client = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve().parents[1] / "clients" / "stream_video.py"),
            str(write_video(tmp / "clip.avi", frames=4)),
            "--server",
            f"127.0.0.1:{port}",
            "--connect-timeout",
            "180",
            "--fast",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    d = Daemon(tmp, tmp / "cache", "first", port)
    seen: dict = {}
    try:
        with grpc.insecure_channel(d.address) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            stub = pb_grpc.RegionServiceStub(ch)
            seen["health"] = [
                health.Check(health_pb2.HealthCheckRequest(service=s), timeout=10).status for s in ("", SERVICE_NAME)
            ]
            seen["info"] = stub.GetInfo(pb.InfoRequest(), timeout=10)
            request = pb.ExtractRequest(image=image_pb(sample_image()))
            with pytest.raises(grpc.RpcError) as e:
                stub.ExtractRegions(request, timeout=10)
            seen["extract"] = e.value
            with pytest.raises(grpc.RpcError) as e:
                stub.Search(pb.SearchRequest(region=pb.RegionRef(image_id="x", region_id=0), top_k=1), timeout=10)
            seen["search"] = e.value
            d.wait_line(re.escape(FIT_STEP) + r": \d+/400")  # its progress is logged
            seen["info_fitting"] = stub.GetInfo(pb.InfoRequest(), timeout=10)
            wait_serving(d.address, timeout=180)
            seen["health_after"] = [
                health.Check(health_pb2.HealthCheckRequest(service=s), timeout=10).status for s in ("", SERVICE_NAME)
            ]
            seen["info_after"] = stub.GetInfo(pb.InfoRequest(), timeout=10)
            seen["regions"] = stub.ExtractRegions(request, timeout=60)
        seen["client"] = client.communicate(timeout=180)
        seen["client_exit"] = client.returncode
        seen["exit"] = d.stop()
    finally:
        d.kill()
        if client.poll() is None:
            client.kill()
            client.wait()
    seen["log"], seen["cache_home"] = d.log, tmp / "cache"
    return seen


def test_not_serving_until_started_then_serving(first_start):
    not_serving, serving = health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING
    assert first_start["health"] == [not_serving, not_serving]
    info = first_start["info"]
    assert info.state == "starting" and info.profile == "tiny" and info.state_detail
    assert first_start["info_fitting"].state_detail.startswith(FIT_STEP + ": ")
    for call in ("extract", "search"):
        err = first_start[call]
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert "regiond is starting" in err.details() and "SERVING" in err.details()
        retry = dict(err.trailing_metadata())["retry-after-ms"]
        assert 500 <= int(retry) <= 10_000
    assert first_start["health_after"] == [serving, serving]
    assert first_start["info_after"].state == "serving" and first_start["info_after"].state_detail == ""
    assert len(first_start["regions"].regions) > 0
    assert first_start["exit"] == 0
    log = first_start["log"]
    assert log.index(LISTENING_PREFIX) < log.index(f"{FIT_STEP}: 400/400 (100 %)") < log.index(READY_PREFIX)
    assert re.search(r"start-up \[ *[\d.]+ s\] warmed up in", log)


def test_a_client_waits_for_a_starting_daemon(first_start):
    out, err = first_start["client"]
    assert first_start["client_exit"] == 0, err
    assert re.search(r"regiond at 127\.0\.0\.1:\d+ is starting \(.+\); waiting until it serves", err), err
    assert "4 frames (0 rejected)" in out and "UNAVAILABLE" not in err


def test_second_start_reuses_the_cached_normaliser(first_start, tmp_path):
    (fitted,) = cached_files(first_start["cache_home"])
    assert "cached in " + str(fitted) in first_start["log"]
    shutil.copytree(first_start["cache_home"], tmp_path / "cache")
    log = serve_and_stop(Daemon(tmp_path, tmp_path / "cache", "second"))
    assert (
        f"reusing the cached feature normaliser {tmp_path / 'cache' / 'regiond' / 'normalisers' / fitted.name}" in log
    )
    assert FIT_STEP not in log and READY_PREFIX in log


def test_a_damaged_cache_file_is_fitted_again(first_start, tmp_path):
    shutil.copytree(first_start["cache_home"], tmp_path / "cache")
    (fitted,) = cached_files(tmp_path / "cache")
    good = fitted.read_bytes()
    fitted.write_bytes(good[: len(good) // 2])  # a write cut short
    log = serve_and_stop(Daemon(tmp_path, tmp_path / "cache", "damaged"))
    assert "the cached normaliser is unusable, fitting it again" in log and str(fitted) in log
    assert f"{FIT_STEP}: 400/400" in log and READY_PREFIX in log
    # rewritten: the same fit (to float rounding: the backbone's threads may sum in another
    # order on a busy machine; a whitening's columns may flip sign, W·Wᵀ may not)
    again, first = Normaliser.from_bytes(fitted.read_bytes()), Normaliser.from_bytes(good)
    assert again.kind == first.kind == "whiten" and again.fitted_on == first.fitted_on
    np.testing.assert_allclose(again.mean, first.mean, rtol=1e-3, atol=1e-5)
    w, w0 = again.transform.astype(np.float64), first.transform.astype(np.float64)
    np.testing.assert_allclose(w @ w.T, w0 @ w0.T, rtol=1e-2, atol=1e-3 * np.abs(w0 @ w0.T).max())


def test_sigterm_while_fitting_stops_promptly_and_cleanly(tmp_path):
    d = Daemon(tmp_path, tmp_path / "cache", "stopped")
    try:
        d.wait_line(re.escape(FIT_STEP) + r": \d+/400")
        assert d.stop(timeout=60) == 0  # a hang fails here
    finally:
        d.kill()
    log = d.log
    assert f"stopped while {FIT_STEP}" in log and "regiond stopped" in log, log[-2000:]
    assert READY_PREFIX not in log and "400/400" not in log
    assert cached_files(tmp_path / "cache") == []  # nothing half-fitted is kept


def test_a_failed_start_up_exits_1_saying_why(tmp_path):
    """The index is opened after the port: a damaged one ends the process with status 1 and the reason."""
    index = tmp_path / "data" / "index"
    index.mkdir(parents=True)
    (index / "regions.sqlite").write_bytes(b"not a database, but not empty either" * 100)
    p = subprocess.run(
        [sys.executable, "-m", "regiond", "serve", "--profile", "lite", "--listen", "127.0.0.1:0"]
        + ["--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1, p.stderr
    assert LISTENING_PREFIX in p.stderr and READY_PREFIX not in p.stderr
    assert "regiond: error: the start-up failed: " in p.stderr and "regions.sqlite" in p.stderr
