"""The fuzz harnesses: one function per parser that takes bytes from outside.

Each target gets one input (bytes) and feeds it to the real parser the way outside bytes reach
it (a file on disk, a protobuf message, a request). The only acceptable outcomes are a result
or our own error type (ALLOWED) with a message; runner.py counts anything else as a crash.
`setup()` of a target builds what it needs once per process (fixed files, a tiny index, a
running daemon); `seeds()` returns the inputs its corpus starts from (tests/fuzz/corpus/).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fuzz_inputs import WORK, join, jpeg, picture, png, split
from targets_index import index_run, index_seeds, index_setup

from regiond.core.errors import InputError


def allowed_errors() -> tuple[type[BaseException], ...]:
    from regiond.index.hits import IndexFileError

    return InputError, IndexFileError


@dataclass
class Target:
    name: str
    run: Callable[[bytes], object]
    seeds: Callable[[], dict[str, bytes]]
    setup: Callable[[], None] = lambda: None


# --- .sens ------------------------------------------------------------------------------------


def sens_run(data: bytes) -> None:
    from regiond.scenes.sens import SensSource
    from regiond.scenes.source import Sampling

    path = WORK / "x.sens"
    path.write_bytes(data)
    src = SensSource(path, Sampling(max_frames=3))
    src.describe()
    for f in src:
        f.validated()


def sens_seeds() -> dict[str, bytes]:
    from regiond.scenes.sens_writer import write_sens
    from regiond.scenes.synthetic.rgbd import SyntheticSource

    frames = list(SyntheticSource(3, frames=2, width=32, height=24))
    out = {}
    for fmt in ("jpeg", "png"):
        write_sens(WORK / f"seed-{fmt}.sens", frames, color_format=fmt)
        out[f"synthetic-{fmt}.sens"] = (WORK / f"seed-{fmt}.sens").read_bytes()
    return out


# --- ScanNet / 7-Scenes folders: pose and intrinsics text ----------------------------------------


def folders_setup() -> None:
    import cv2

    rgb, depth = picture(16, 12), np.full((12, 16), 1500, np.uint16)
    scannet = WORK / "scannet"
    for sub in ("color", "depth", "pose", "intrinsic"):
        (scannet / sub).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(scannet / "color" / "0.jpg"), rgb)
    cv2.imwrite(str(scannet / "depth" / "0.png"), depth)
    seven = WORK / "seven"
    seven.mkdir(exist_ok=True)
    cv2.imwrite(str(seven / "frame-000000.color.png"), rgb)
    cv2.imwrite(str(seven / "frame-000000.depth.png"), depth)


def folders_run(data: bytes) -> None:
    from regiond.scenes.folders import ScanNetFolderSource, SevenScenesSource

    pose, k_depth, k_color = split(data, 3)
    scannet, seven = WORK / "scannet", WORK / "seven"
    (scannet / "pose" / "0.txt").write_bytes(pose)
    (scannet / "intrinsic" / "intrinsic_depth.txt").write_bytes(k_depth)
    (scannet / "intrinsic" / "intrinsic_color.txt").write_bytes(k_color)
    (seven / "frame-000000.pose.txt").write_bytes(pose)
    (seven / "camera-intrinsics.txt").write_bytes(k_depth)
    for cls in (ScanNetFolderSource, SevenScenesSource):
        src = cls(scannet if cls is ScanNetFolderSource else seven)
        src.describe()
        src.read_frame(0).validated()


def folders_seeds() -> dict[str, bytes]:
    pose = b"1 0 0 0.5\n0 1 0 0\n0 0 1 1.2\n0 0 0 1\n"
    k4 = b"12 0 8 0\n0 12 6 0\n0 0 1 0\n0 0 0 1\n"
    k3 = b"585 0 320\n0 585 240\n0 0 1\n"
    return {
        "scannet.txt": join(pose, k4, k4),
        "7scenes.txt": join(pose, k3, k3),
        "lost.txt": join(b"-inf -inf -inf -inf\n" * 4, k3, b""),
    }


# --- images and depth into a Frame (the gRPC request conversion) -----------------------------------

_HEAD = struct.Struct(">BBHHBHHfffff")  # flags, max_pixels choice, w, h, depth dtype, dw, dh, scale, fx fy cx cy


def image_run(data: bytes) -> None:
    from regiond.api.v1 import regions_pb2 as pb
    from regiond.service.convert import Limits, extract_request_frame

    head, rest = data[: _HEAD.size].ljust(_HEAD.size, b"\0"), data[_HEAD.size :]
    flags, mp, w, h, dtype, dw, dh, scale, fx, fy, cx, cy = _HEAD.unpack(head)
    image, depth = split(rest, 2) if flags & 4 else (rest, b"")
    req = pb.ExtractRequest(image=pb.Image(data=image, encoding=flags & 3, width=w, height=h))
    if flags & 4:
        req.depth.CopyFrom(pb.Depth(data=depth, width=dw, height=dh, dtype=dtype % 4, scale=scale))
    if flags & 8:
        req.intrinsics.CopyFrom(pb.Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=dw, height=dh))
    if flags & 16:
        req.pose.matrix.extend([fx, 0, 0, cx, 0, fy, 0, cy, 0, 0, 1, scale, 0, 0, 0, 1])
    limits = Limits(max_pixels=(64 * 64, 512 * 512, 4096 * 4096)[mp % 3])
    extract_request_frame(req, limits)


def image_seeds() -> dict[str, bytes]:
    a = picture()
    gray16 = np.arange(24 * 18, dtype=np.uint16).reshape(18, 24) * 97
    depth = np.full((18, 24), 1200, "<u2").tobytes()
    return {
        "png": _HEAD.pack(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) + png(a),
        "jpeg": _HEAD.pack(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) + jpeg(a),
        "png16": _HEAD.pack(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) + png(gray16),
        "raw": _HEAD.pack(2, 1, 24, 18, 0, 0, 0, 0, 0, 0, 0, 0) + a.tobytes(),
        "rgbd": _HEAD.pack(1 | 4 | 8 | 16, 1, 0, 0, 1, 24, 18, 0.001, 20, 20, 12, 9) + join(png(a), depth),
    }


# --- COCO RLE masks in Search requests ---------------------------------------------------------------


def rle_run(data: bytes) -> None:
    from regiond.api.v1 import regions_pb2 as pb
    from regiond.service.search_rpc import query_mask
    from regiond.service.wire import parse

    q = parse(pb.MaskQuery.FromString, data)
    h, w = int(q.image.height), int(q.image.width)  # the query image's size (bounded as by max_pixels)
    query_mask(q, (h, w) if 0 < h * w <= 512 * 512 else (18, 24))


def rle_seeds() -> dict[str, bytes]:
    from regiond.api.v1 import regions_pb2 as pb
    from regiond.core.rle import encode

    m = np.zeros((18, 24), bool)
    m[4:12, 5:20] = True
    rle = pb.MaskQuery(mask=pb.Mask(height=18, width=24, counts=encode(m).tolist()))
    as_png = pb.MaskQuery(mask_image=pb.Image(data=png(m.astype(np.uint8) * 255)))
    return {"rle": rle.SerializeToString(), "png": as_png.SerializeToString()}


# --- whole serialized requests of every RPC -------------------------------------------------------

_SEARCH = {}


def _search_rpc():
    if not _SEARCH:
        from regiond.api.v1 import regions_pb2 as pb
        from regiond.extraction import build_extractor
        from regiond.service.search_rpc import SearchRPC

        rpc = SearchRPC(build_extractor("lite"), WORK / "requests-index")
        rpc.index_images(
            iter([pb.IndexRequest(image_id=f"p{i}", image=pb.Image(data=png(picture(seed=i)))) for i in range(2)])
        )
        _SEARCH["rpc"] = rpc
    return _SEARCH["rpc"]


def requests_setup() -> None:
    _search_rpc()


def requests_run(data: bytes) -> None:
    from regiond.api.v1 import regions_pb2 as pb
    from regiond.service.convert import Limits, extract_request_frame, scene_frame, video_frame
    from regiond.service.wire import parse

    if not data:
        return
    kind, body = data[0] % 6, data[1:]
    limits = Limits(max_pixels=256 * 256)
    if kind == 0:
        extract_request_frame(parse(pb.ExtractRequest.FromString, body), limits)
    elif kind == 1:
        video_frame(parse(pb.VideoFrame.FromString, body), limits, 0)
    elif kind == 2:
        scene_frame(parse(pb.SceneFrame.FromString, body), limits, 0)
    elif kind == 3:
        summary = _search_rpc().index_images(iter([parse(pb.IndexRequest.FromString, body)]))
        for e in summary.errors:
            if e.code != 3:  # INVALID_ARGUMENT; INTERNAL is a fault of ours
                raise AssertionError(f"IndexImages answered {e.code}: {e.message}")
    elif kind == 4:
        _search_rpc().search(parse(pb.SearchRequest.FromString, body))
    else:
        parse(pb.InfoRequest.FromString, body)


def requests_seeds() -> dict[str, bytes]:
    from regiond.api.v1 import regions_pb2 as pb

    img = pb.Image(data=png(picture()))
    k = pb.Intrinsics(fx=20, fy=20, cx=12, cy=9)
    depth = pb.Depth(data=np.full((18, 24), 1000, "<u2").tobytes(), width=24, height=18)
    pose = pb.Pose(matrix=np.eye(4).ravel().tolist())
    box = pb.BoxQuery(image=img, box=pb.Box(x0=2, y0=2, x1=12, y1=10))
    msgs = {
        "extract": (0, pb.ExtractRequest(image=img, depth=depth, intrinsics=k, pose=pose)),
        "video": (1, pb.VideoFrame(image=img, index=3)),
        "scene": (2, pb.SceneFrame(color=img, depth=depth, intrinsics=k, pose=pose)),
        "index": (3, pb.IndexRequest(image_id="q", image=img, metadata={"a": "b"})),
        "search-box": (4, pb.SearchRequest(box=box, top_k=3, include_masks=True)),
        "search-region": (4, pb.SearchRequest(region=pb.RegionRef(image_id="p0", region_id=0))),
        "search-linear": (4, pb.SearchRequest(linear=pb.LinearQuery(weights=[0.1] * 8, bias=0.5))),
        "info": (5, pb.InfoRequest()),
    }
    return {name: bytes([kind]) + m.SerializeToString() for name, (kind, m) in msgs.items()}


# --- head loading: config.json + safetensors ----------------------------------------------------------


def heads_run(data: bytes) -> None:
    from regiond.heads.registry import load_head

    config, weights = split(data, 2)
    d = WORK / "head"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_bytes(config)
    (d / "model.safetensors").write_bytes(weights)
    load_head(d)


def heads_seeds() -> dict[str, bytes]:
    import torch

    from regiond.heads.registry import create_head, save_head

    torch.manual_seed(0)
    model = create_head("region-mlp", in_dim=4, hidden=4, num_classes=2)
    d = save_head(model, WORK / "seed-head", [{"id": 3, "name": "wall"}, {"id": 5, "name": "chair"}])
    return {"region-mlp": join((d / "config.json").read_bytes(), (d / "model.safetensors").read_bytes())}


# --- token-cache manifests and .npz RegionSets -----------------------------------------------------


def cache_run(data: bytes) -> None:
    from regiond.extraction.cache import TokenCache, read_item

    manifest, item = split(data, 2)
    root = WORK / "cache"
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_bytes(manifest)
    (root / "a" / "item.json").write_bytes(item)
    read_item(root / "a")
    TokenCache.open(root)


def cache_seeds() -> dict[str, bytes]:
    from dataclasses import asdict

    from regiond.extraction.cache import FORMAT, CacheItem, versions

    item = CacheItem(name="a", kind="scene", frames=["000000"], source="synthetic:1")
    doc = {"format": FORMAT, "versions": versions("lite", "slic", "classic", 32, "exact"), "items": [asdict(item)]}
    return {"manifest": join(json.dumps(doc).encode(), json.dumps(asdict(item)).encode())}


def regionset_run(data: bytes) -> None:
    from regiond.core.regionset import RegionSet

    path = WORK / "x.npz"
    path.write_bytes(data)
    rs = RegionSet.load(path)
    for i in range(min(len(rs), 4)):
        rs.mask(i)


def regionset_seeds() -> dict[str, bytes]:
    from regiond.extraction import build_extractor

    rs = build_extractor("lite").extract(picture(32, 24))
    return {"lite.npz": rs.save(WORK / "seed.npz").read_bytes()}


# --- the index's SQLite store and FAISS snapshot ----------------------------------------------------


TARGETS = {
    t.name: t
    for t in (
        Target("sens", sens_run, sens_seeds),
        Target("folders", folders_run, folders_seeds, folders_setup),
        Target("image", image_run, image_seeds),
        Target("rle", rle_run, rle_seeds),
        Target("requests", requests_run, requests_seeds, requests_setup),
        Target("heads", heads_run, heads_seeds),
        Target("cache", cache_run, cache_seeds),
        Target("regionset", regionset_run, regionset_seeds),
        Target("index", index_run, index_seeds, index_setup),
    )
}
