"""The running-daemon harness: raw bytes and mutated valid messages to every RPC of a daemon
on loopback (lite profile, bundled heads, an index). An input is one call: its first byte picks
the method, the rest is its message (a stream's messages split as targets._split does).

A finding is a status other than OK or one that names bad input (INVALID_ARGUMENT, NOT_FOUND,
RESOURCE_EXHAUSTED under load), a frame error or IndexImages error of another code, or a call
running past its 20 s deadline. Every BATCH calls the daemon must answer a health check, and
every RESTART calls it is stopped (it must stop within its grace period + 5 s) and started
again.
"""

from __future__ import annotations

import time

import grpc
import numpy as np
from fuzz_inputs import WORK, join, picture, png, split
from targets import Target

BATCH, RESTART, GRACE, DEADLINE = 50, 400, 1.0, 20.0
METHODS = [  # (path, kind, request streams: up to 3 messages)
    ("/regions.v1.RegionService/ExtractRegions", "unary_unary"),
    ("/regions.v1.RegionService/StreamVideo", "stream_stream"),
    ("/regions.v1.RegionService/StreamScene", "stream_stream"),
    ("/regions.v1.RegionService/IndexImages", "stream_unary"),
    ("/regions.v1.RegionService/Search", "unary_unary"),
    ("/regions.v1.RegionService/GetInfo", "unary_unary"),
    ("/grpc.health.v1.Health/Check", "unary_unary"),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "stream_stream"),
]
OK_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
_state: dict = {}


def _start() -> None:
    from regiond.extraction import build_extractor
    from regiond.service.server import RegionServer, ServeConfig

    ex = _state.get("extractor") or build_extractor("lite")
    _state["extractor"] = ex
    cfg = ServeConfig(
        listen="127.0.0.1:0",
        data_dir=WORK / "daemon",
        heads="bundled",
        grace=GRACE,
        max_pixels=256 * 256,
        idle_timeout=DEADLINE / 2,
        warmup=False,
    )
    _state["server"] = srv = RegionServer(cfg, extractor=ex).start()
    _state["channel"] = grpc.insecure_channel(srv.address)
    _state["calls"] = 0


def _stop() -> None:
    _state["channel"].close()
    t0 = time.monotonic()
    clean = _state["server"].stop(GRACE)
    took = time.monotonic() - t0
    if not clean or took > GRACE + 5:
        raise AssertionError(f"the daemon took {took:.1f} s to stop (clean: {clean})")


def setup() -> None:
    _start()


def run(data: bytes) -> None:
    from grpc_health.v1 import health_pb2

    from regiond.api.v1 import regions_pb2 as pb

    if not data:
        return
    path, kind = METHODS[data[0] % len(METHODS)]
    body = data[1:]
    msgs = split(body, 3) if kind.startswith("stream") else [body]
    while len(msgs) > 1 and not msgs[-1]:  # trailing empty parts: fewer messages
        msgs.pop()
    call = getattr(_state["channel"], kind)(path)
    try:
        if kind == "unary_unary":
            call(msgs[0], timeout=DEADLINE)
        elif kind == "stream_unary":
            summary = pb.IndexSummary.FromString(call(iter(msgs), timeout=DEADLINE))
            bad = [e for e in summary.errors if e.code != grpc.StatusCode.INVALID_ARGUMENT.value[0]]
            if bad:
                raise AssertionError(f"IndexImages answered code {bad[0].code}: {bad[0].message}")
        else:
            for reply in call(iter(msgs), timeout=DEADLINE):
                _check_update(path, reply)
    except grpc.RpcError as e:
        if e.code() not in OK_CODES:
            raise AssertionError(f"{path} answered {e.code().name}: {e.details()}") from None
    _state["calls"] += 1
    if _state["calls"] % BATCH == 0:
        stub = _state["channel"].unary_unary(
            "/grpc.health.v1.Health/Check", response_deserializer=health_pb2.HealthCheckResponse.FromString
        )
        if stub(b"", timeout=10).status != health_pb2.HealthCheckResponse.SERVING:
            raise AssertionError("the daemon no longer reports SERVING")
    if _state["calls"] % RESTART == 0:
        _stop()
        _start()


def _check_update(path: str, reply: bytes) -> None:
    from regiond.api.v1 import regions_pb2 as pb

    cls = {"StreamVideo": pb.VideoUpdate, "StreamScene": pb.SceneUpdate}.get(path.rsplit("/", 1)[-1])
    if cls is None:
        return
    up = cls.FromString(reply)
    if up.HasField("error") and up.error.code != grpc.StatusCode.INVALID_ARGUMENT.value[0]:
        raise AssertionError(f"{path} frame error code {up.error.code}: {up.error.message}")


def seeds() -> dict[str, bytes]:
    from regiond.api.v1 import regions_pb2 as pb

    img = pb.Image(data=png(picture()))
    k = pb.Intrinsics(fx=20, fy=20, cx=12, cy=9)
    depth = pb.Depth(data=np.full((18, 24), 1000, "<u2").tobytes(), width=24, height=18)
    pose = pb.Pose(matrix=np.eye(4).ravel().tolist())
    scene0 = pb.SceneFrame(
        color=img,
        depth=depth,
        intrinsics=k,
        pose=pose,
        options=pb.SceneOptions(return_label_maps=True, return_ply=True),
    )
    box = pb.BoxQuery(image=img, box=pb.Box(x0=2, y0=2, x1=12, y1=10))
    two = lambda a, b: join(a.SerializeToString(), b.SerializeToString(), b"")  # noqa: E731
    return {
        "extract": bytes([0]) + pb.ExtractRequest(image=img).SerializeToString(),
        "video": bytes([1]) + two(pb.VideoFrame(image=img), pb.VideoFrame(image=img, index=1)),
        "scene": bytes([2]) + two(scene0, pb.SceneFrame(color=img, depth=depth, intrinsics=k, pose=pose)),
        "index": bytes([3]) + two(pb.IndexRequest(image_id="a", image=img), pb.IndexRequest(image_id="a", remove=True)),
        "search": bytes([4]) + pb.SearchRequest(box=box, top_k=2).SerializeToString(),
        "info": bytes([5]),
        "health": bytes([6]),
        "reflection": bytes([7]) + join(b"\x3a\x00", b"", b""),
    }


TARGET = Target("daemon", run, seeds, setup)
