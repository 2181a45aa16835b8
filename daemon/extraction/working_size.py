"""Frames larger than a profile works at: masks, features and pooling at the working size
(the long side capped), the masks returned at the frame's own size.

A profile's working size comes from measurements (bench/working_size.py, docs/live.md): past
it, a larger frame costs SLIC and the features time in proportion to its pixels while its
regions (50 SLIC components, SAM's masks from a 1024-pixel input) and what the heads make of
them hardly change.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from regiond.core.frames import Frame
from regiond.core.partition import Partition
from regiond.features.backbone import capped_size


def working_frame(frame: Frame, side: int | None) -> Frame:
    """The frame at its working size (long side at most `side`: colour area-averaged, depth
    and labels nearest, intrinsics scaled); itself when it is no larger than that."""
    (h, w), scale = capped_size(frame.height, frame.width, side)
    if scale == 1.0:
        return frame
    rgb = np.ascontiguousarray(cv2.resize(frame.rgb, (w, h), interpolation=cv2.INTER_AREA))

    camera = None if frame.camera is None else frame.camera.scaled(w, h)
    return replace(
        frame, rgb=rgb, depth=_nearest(frame.depth, h, w), labels=_nearest(frame.labels, h, w), camera=camera
    )


def _nearest(a: np.ndarray | None, h: int, w: int) -> np.ndarray | None:
    """An H×W array resampled to h×w by nearest pixel centres (any dtype)."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype in (np.uint8, np.int16, np.uint16, np.int32, np.float32):
        return cv2.resize(a, (w, h), interpolation=cv2.INTER_NEAREST)
    ys = np.minimum(((np.arange(h) + 0.5) * a.shape[0] / h).astype(np.intp), a.shape[0] - 1)
    xs = np.minimum(((np.arange(w) + 0.5) * a.shape[1] / w).astype(np.intp), a.shape[1] - 1)
    return a[ys[:, None], xs[None, :]]


def at_size(masks, height: int, width: int):
    """Masks made at the working size (a Partition or N×h×w bool) at the frame's size, nearest."""
    if isinstance(masks, Partition):
        return Partition(_nearest(masks.labels.astype(np.int32), height, width), masks.n)
    m = np.asarray(masks)
    out = np.zeros((m.shape[0], height, width), bool)
    for k in range(m.shape[0]):
        out[k] = _nearest(m[k].view(np.uint8), height, width)
    return out
