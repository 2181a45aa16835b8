"""Helpers for the service and client tests: a real daemon on a free loopback port (lite
profile), small encoded images and videos, running a client script, and polling."""

from __future__ import annotations

import contextlib
import io
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc


def interruptible() -> None:
    """Popen's preexec_fn for a child the test stops with Ctrl-C (SIGINT): the default
    disposition, as a terminal gives it, whatever this process inherited (a test run started in
    the background of a script ignores SIGINT, and its children would too)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_image(w: int = 96, h: int = 72, seed: int = 0) -> np.ndarray:
    """A few flat colour blocks plus mild noise: SLIC finds regions, PNG stays small."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[:, w // 2 :] = (40, 60, 200)
    img[h // 2 :, w // 4 : 3 * w // 4] = (30, 180, 60)
    return np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)


def png_bytes(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(a)).save(buf, format="PNG")
    return buf.getvalue()


def image_pb(a: np.ndarray) -> pb.Image:
    return pb.Image(data=png_bytes(a))


def run_client(name: str, *args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """clients/<name>.py ARGS as a user runs it, output captured."""
    script = Path(__file__).resolve().parents[1] / "clients" / f"{name}.py"
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw
    )


def write_video(path: Path, frames: int = 12, fps: float = 20.0, size=(96, 72)) -> Path:
    """An MJPG clip of a green block moving right over a blue background."""
    import cv2

    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for i in range(frames):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :] = (40, 40, 160)
        x = 5 + 4 * i
        img[20:50, x : x + 20] = (30, 200, 60)  # a block moving right
        vw.write(img)
    vw.release()
    return path


def wait_until(pred, timeout: float = 10.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def wait_serving(address: str, timeout: float = 120.0, metadata: tuple = ()) -> None:
    """Until the daemon at `address` reports grpc.health.v1 SERVING (its port opens before
    its start-up ends); AssertionError after `timeout` s."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        end = time.monotonic() + timeout
        status = None
        while time.monotonic() < end:
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5, metadata=metadata).status
            except grpc.RpcError as e:
                status = e.code()
            if status == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.05)
    raise AssertionError(f"the daemon at {address} did not report SERVING within {timeout:g} s (last: {status})")


@contextlib.contextmanager
def running_server(extractor, tmp_path, **config):
    """A started RegionServer (real gRPC on 127.0.0.1:<free port>) and its stub."""
    from regiond.service.server import RegionServer, ServeConfig

    config.setdefault("data_dir", tmp_path / "data")
    config.setdefault("listen", "127.0.0.1:0")
    config.setdefault("index", False)
    server = RegionServer(ServeConfig(**config), extractor=extractor).start()
    try:
        yield server
    finally:
        server.stop(grace=1.0)


def stub_for(server, **channel_kw) -> tuple[grpc.Channel, pb_grpc.RegionServiceStub]:
    ch = grpc.insecure_channel(server.address, **channel_kw)
    return ch, pb_grpc.RegionServiceStub(ch)


_LITE = None


def lite_extractor():
    """The lite profile's Extractor (SLIC + classic features), built once per test process."""
    global _LITE
    if _LITE is None:
        from regiond.extraction.profiles import build_extractor

        _LITE = build_extractor("lite")
    return _LITE


def tiny_heads(directory, extractor):
    """Untrained small scene (NYU40 3/5/7) and activity (3 motions) heads saved as the daemon loads them."""
    import torch

    from regiond.heads.registry import create_head, save_head

    torch.manual_seed(0)
    meta = {"versions": {"backbone": extractor.backbone.name, "dim": int(extractor.dim)}}
    scene_classes = [{"id": 3, "name": "cabinet"}, {"id": 5, "name": "chair"}, {"id": 7, "name": "table"}]
    save_head(
        create_head("scene-transformer", in_dim=extractor.dim, num_classes=3, dim=16, heads=2, layers=1),
        directory / "scene",
        scene_classes,
        meta,
    )
    motions = [{"id": k, "name": n} for k, n in enumerate(["left", "right", "still"])]
    save_head(
        create_head("activity-transformer", in_dim=extractor.dim, num_classes=3, dim=16, heads=2, layers=1),
        directory / "activity",
        motions,
        meta,
    )


def self_signed_cert(tmp_path):
    """(key.pem, cert.pem) for CN=localhost / IP 127.0.0.1, made with the openssl command."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, cert
