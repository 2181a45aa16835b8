"""Protocol messages ↔ Frames and RegionSets.

Every check on client input happens here and raises InputError naming the proto field
("image", "color", "depth", "intrinsics", "pose"), so the servicers can answer
INVALID_ARGUMENT for that frame alone. Images are size-checked from their header before they
are decoded, so a small PNG that inflates to gigapixels never reaches memory. The Frames made
here are validated once (Frame.validated); the extractor takes them as they are.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import Message
from PIL import Image

from regiond.api.v1 import regions_pb2 as pb
from regiond.core import viz
from regiond.core.errors import InputError, image_decode_errors
from regiond.core.frames import DEFAULT_MAX_PIXELS, Camera, Frame, check_pose
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC, RegionSet
from regiond.heads.trained_on import ORIGINS, summary

#: RegionSet source codes → API enum
_SOURCE_TO_PB = {SOURCE_SAM: pb.SOURCE_SAM, SOURCE_SLIC: pb.SOURCE_SLIC}
_FEATURE_DTYPES = {pb.FEATURES_FLOAT16: "<f2", pb.FEATURES_FLOAT32: "<f4"}
_DEPTH_DTYPES = {pb.Depth.UINT16: ("<u2", 0.001), pb.Depth.FLOAT32: ("<f4", 1.0)}
# PIL modes as_rgb8 takes directly; anything else (palette, CMYK, ...) is converted to RGB.
_DIRECT_MODES = {"L", "LA", "RGB", "RGBA", "I", "I;16", "I;16B", "I;16L"}  # 16-bit stays 16-bit


@dataclass(frozen=True)
class Limits:
    """What the daemon accepts per frame (max_pixels applies to every image)."""

    max_pixels: int = DEFAULT_MAX_PIXELS


def decode_image(img: pb.Image, field: str, limits: Limits) -> np.ndarray:
    """An Image message → its pixels as decoded (H×W×3 uint8 RGB, or 8/16-bit gray, RGBA, ...;
    Frame.validated normalises them). Raises InputError(field, ...)."""
    data = img.data  # each read of a bytes field copies it
    if not data:
        raise InputError(field, "no image data")
    if img.encoding == pb.Image.RGB8:
        w, h = int(img.width), int(img.height)
        if w <= 0 or h <= 0:
            raise InputError(field, f"raw RGB8 needs width and height, got {w}×{h}")
        if w * h > limits.max_pixels:
            raise InputError(field, f"{w}×{h} = {w * h} pixels exceeds the limit of {limits.max_pixels}")
        if len(data) != w * h * 3:
            raise InputError(field, f"raw RGB8 {w}×{h} needs {w * h * 3} bytes, got {len(data)}")
        return np.frombuffer(data, dtype=np.uint8).reshape(h, w, 3)
    if img.encoding != pb.Image.ENCODED:
        raise InputError(field, f"unknown encoding {img.encoding}")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size  # from the header; nothing decoded yet
            if w * h > limits.max_pixels:
                raise InputError(field, f"{w}×{h} = {w * h} pixels exceeds the limit of {limits.max_pixels}")
            if im.format not in ("PNG", "JPEG"):
                raise InputError(field, f"expected PNG or JPEG, got {im.format}")
            if im.mode not in _DIRECT_MODES:
                im = im.convert("RGB")
            arr = np.asarray(im)
    except InputError:
        raise
    except image_decode_errors() as e:
        raise InputError(field, f"cannot decode image ({len(data)} bytes): {e}") from None
    return arr


def image_frame(img: pb.Image, field: str, limits: Limits) -> Frame:
    """An Image message alone → a validated Frame."""
    return Frame(rgb=decode_image(img, field, limits)).validated(limits.max_pixels, field)


def decode_depth(d: pb.Depth, height: int, width: int) -> np.ndarray:
    """A Depth message → H×W float32 metres (NaN/0 = none), checked against the image size."""
    if d.dtype not in _DEPTH_DTYPES:
        raise InputError("depth", f"unknown dtype {d.dtype}")
    dtype, default_scale = _DEPTH_DTYPES[d.dtype]
    if (d.width, d.height) != (width, height):
        raise InputError("depth", f"depth is {d.width}×{d.height}, the image {width}×{height}")
    need = width * height * np.dtype(dtype).itemsize
    data = d.data  # each read of a bytes field copies it
    if len(data) != need:
        raise InputError(
            "depth", f"{d.width}×{d.height} {pb.Depth.DType.Name(d.dtype)} needs {need} bytes, got {len(data)}"
        )
    scale = d.scale or default_scale
    if not np.isfinite(scale) or scale <= 0:
        raise InputError("depth", f"scale must be a positive number of metres per unit, got {d.scale}")
    raw = np.frombuffer(data, dtype=dtype).reshape(height, width)
    out = raw.astype(np.float32)
    if scale != 1.0:
        out *= np.float32(scale)
    return out


def decode_camera(k: pb.Intrinsics, height: int, width: int) -> Camera:
    """Intrinsics → Camera for the image's size (rescaled when given for another size)."""
    kw, kh = (int(k.width) or width), (int(k.height) or height)
    cam = Camera(float(k.fx), float(k.fy), float(k.cx), float(k.cy), kw, kh)  # raises InputError("intrinsics")
    return cam if (kw, kh) == (width, height) else cam.scaled(width, height)


def decode_pose(p: pb.Pose) -> np.ndarray | None:
    """Pose → 4×4 camera-to-world, or None for lost tracking (-inf entries)."""
    return check_pose(np.array(p.matrix, dtype=np.float64))


def to_frame(
    *,
    image: pb.Image,
    field: str,
    limits: Limits,
    depth: pb.Depth | None = None,
    intrinsics: pb.Intrinsics | None = None,
    pose: pb.Pose | None = None,
    index: int = 0,
    time: float | None = None,
) -> Frame:
    """The parts of a request → a validated Frame. Absent messages are passed as None."""
    rgb = decode_image(image, field, limits)
    h, w = rgb.shape[:2]
    camera = decode_camera(intrinsics, h, w) if intrinsics is not None else None
    dmap = decode_depth(depth, h, w) if depth is not None else None
    if dmap is not None and camera is None:
        raise InputError("intrinsics", "depth was given without intrinsics; both are needed for 3D positions")
    p = decode_pose(pose) if pose is not None else None
    frame = Frame(rgb=rgb, depth=dmap, camera=camera, pose=p, index=int(index), time=time)
    return frame.validated(limits.max_pixels, field)


def _opt(msg: Message, name: str) -> Message | None:
    return getattr(msg, name) if msg.HasField(name) else None


def extract_request_frame(req: pb.ExtractRequest, limits: Limits) -> Frame:
    return to_frame(
        image=req.image,
        field="image",
        limits=limits,
        depth=_opt(req, "depth"),
        intrinsics=_opt(req, "intrinsics"),
        pose=_opt(req, "pose"),
    )


def video_frame(req: pb.VideoFrame, limits: Limits, index: int) -> Frame:
    return to_frame(image=req.image, field="image", limits=limits, index=index, time=req.time or None)


def scene_frame(req: pb.SceneFrame, limits: Limits, index: int) -> Frame:
    return to_frame(
        image=req.color,
        field="color",
        limits=limits,
        depth=_opt(req, "depth"),
        intrinsics=_opt(req, "intrinsics"),
        pose=_opt(req, "pose"),
        index=index,
        time=req.time or None,
    )


# --- replies --------------------------------------------------------------------------------


def region_set_pb(
    rs: RegionSet,
    output: pb.OutputOptions | None = None,
    frame_index: int = 0,
    world: bool = False,
    labels: RegionLabels | None = None,
    object_ids: np.ndarray | None = None,
) -> pb.RegionSet:
    """A RegionSet → its API message.

    output      which optional parts go in (features and their encoding, masks)
    world       the geometry is in world coordinates (the frame had a pose)
    labels      per-region labels from a head
    object_ids  per-region 3D objects (the object map; 0: none)
    """
    output = output or pb.OutputOptions()
    enc = output.features
    dtype = _FEATURE_DTYPES.get(enc)
    if enc not in (pb.FEATURES_NONE, *_FEATURE_DTYPES):
        raise InputError("output.features", f"unknown feature encoding {enc}")
    feats = None
    if dtype is not None and rs.features is not None:
        feats = np.ascontiguousarray(rs.features, dtype=dtype)
    seconds = rs.meta.get("seconds", {}) or {}
    msg = pb.RegionSet(
        width=rs.width,
        height=rs.height,
        profile=str(rs.meta.get("profile", "")),
        masker=str(rs.meta.get("masker", "")),
        backbone=str(rs.meta.get("backbone", "")),
        frame_index=int(frame_index),
        stage_seconds={k: float(v) for k, v in seconds.items()},
    )
    carry = rs.meta.get("carry")
    if carry:
        msg.carry.CopyFrom(
            pb.CarryState(
                keyframe=bool(carry["keyframe"]),
                keyframe_index=int(carry["keyframe_index"]),
                coverage=float(carry["coverage"]),
                reason=str(carry["reason"]),
            )
        )
    if feats is not None:
        msg.feature_dim = int(feats.shape[1])
        msg.feature_encoding = enc
    # each array read as Python values at once (a numpy scalar's conversion costs as much as a field)
    n = len(rs)
    areas, sources, scores = rs.areas.tolist(), rs.source.tolist(), np.asarray(rs.scores, np.float64).tolist()
    boxes = np.asarray(rs.boxes, np.float64).tolist()
    geo = None
    if rs.centroids is not None:
        geo = list(
            zip(
                np.asarray(rs.centroids, np.float64).tolist(),
                np.asarray(rs.extents, np.float64).tolist(),
                np.asarray(rs.valid_depth, np.float64).tolist(),
                rs.point_count.tolist(),
            )
        )
    label_ids = label_scores = None
    if labels is not None:
        label_ids = np.asarray(labels.ids).tolist()
        if labels.scores is not None:
            label_scores = np.asarray(labels.scores, dtype=np.float32).tolist()
    objects = None if object_ids is None else np.asarray(object_ids).tolist()
    for i in range(n):
        r = msg.regions.add(id=i, area=int(areas[i]), source=_SOURCE_TO_PB.get(int(sources[i]), pb.SOURCE_UNSPECIFIED))
        r.box.x0, r.box.y0, r.box.x1, r.box.y1 = boxes[i]
        if not output.omit_masks:
            r.mask.height, r.mask.width = rs.height, rs.width
            r.mask.counts.extend(np.asarray(rs.counts[i]).tolist())
        if math.isfinite(scores[i]):
            r.score = scores[i]
        if feats is not None:
            r.features = feats[i].tobytes()
        if geo is not None:
            (cx, cy, cz), (ex, ey, ez), valid, points = geo[i]
            g = r.geometry
            g.centroid.x, g.centroid.y, g.centroid.z = cx, cy, cz
            g.extent.x, g.extent.y, g.extent.z = ex, ey, ez
            g.valid_fraction = valid
            g.point_count = int(points)
            g.world = bool(world)
        if label_ids is not None:
            lab = int(label_ids[i])
            if lab >= 0:
                r.label = lab
                r.label_name = labels.names.get(lab, "")
            if label_scores is not None:
                r.label_scores.extend(label_scores[i])
        if objects is not None:
            r.object_id = int(objects[i])
    return msg


@dataclass
class RegionLabels:
    """Per-region labels for region_set_pb: ids (N, -1 unknown), optional N×C scores, names."""

    ids: np.ndarray
    scores: np.ndarray | None
    names: dict


def trained_on_pb(rec: dict) -> pb.TrainedOn:
    """A head's trained_on record (heads/trained_on.py, with its "head" kind) → its API message."""
    held = rec.get("held_out") or {}
    msg = pb.TrainedOn(
        head=str(rec.get("head", "")),
        dataset=str(rec.get("dataset", "")),
        origin=ORIGINS.index(rec["origin"]) if rec.get("origin") in ORIGINS else pb.DATA_ORIGIN_UNKNOWN,
        items=int(rec.get("items") or 0),
        frames=int(rec.get("frames") or 0),
        clips=int(rec.get("clips") or 0),
        profile=str(rec.get("profile", "")),
        held_out_metric=str(held.get("metric", "")),
        held_out_on=str(held.get("on", "")),
        summary=summary(rec if len(rec) > 1 else None),
    )
    if held.get("score") is not None:
        msg.held_out_score = float(held["score"])
    return msg


def frame_error_pb(err: InputError, code: int) -> pb.FrameError:
    return pb.FrameError(code=int(code), field=err.field, message=str(err))


def label_map_png(label_map: np.ndarray) -> bytes:
    """H×W label ids (0..255) → 8-bit grayscale PNG bytes (ScanNet's benchmark format)."""
    a = np.asarray(label_map)
    if a.dtype != np.uint8 and a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"label ids must fit 8 bits, got [{a.min()}, {a.max()}]")
    # zlib level 1, rows unfiltered, run-length strategy: a label map is flat runs of one id
    # (about 4 KB at 640×480, a seventh of the time of PIL's default level 6)
    return viz.encode_png(a.astype(np.uint8, copy=False), 1, runs=True)
