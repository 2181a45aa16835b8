"""What every frame source shares: sampling options, resampling, the Source interface.

A Source yields `regiond.core.frames.Frame`s one at a time (reading each from disk, a decoder or a
renderer when it is asked for), so a scene of any length streams in constant memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Camera, Frame, evenly_spaced
from regiond.core.label_spaces import resize_nearest

INSTANCE_MAPS = frozenset({"instances", "depth_instances"})  # the frame meta that Sampling.instances covers


class SourceError(InputError):
    """A source that cannot be read: a missing or malformed file, a corrupt frame.

    `field` is "source"; the message names the file and, for a bad frame, the frame.
    """

    def __init__(self, message: str):
        super().__init__("source", message)


@dataclass(frozen=True)
class Sampling:
    """Which frames of a source to yield, and at what size.

    every       keep every k-th frame (1 = all)
    count       then keep `count` frames evenly spaced over those (first and last included);
                needs a source of known length
    max_frames  then stop after this many frames
    size        (width, height) to resample every frame to (colour: area/linear; depth and
                labels: nearest, so no depth is invented across edges); intrinsics scaled
                to match. None keeps the source's size.
    skip_bad    a frame that cannot be read (bad compression, a truncated or missing file) is
                reported in the source's `skipped` and left out, instead of ending the source
    instances   give object instance maps (meta["instances"], meta["depth_instances"]) where
                the source has them; False leaves them out of every frame, and sources that
                read them from files (instance-filt/) do not read them: a cheaper frame for
                callers that never look at them
    """

    every: int = 1
    count: int | None = None
    max_frames: int | None = None
    size: tuple[int, int] | None = None
    skip_bad: bool = False
    instances: bool = True

    def __post_init__(self):
        if not isinstance(self.every, (int, np.integer)) or self.every < 1:
            raise InputError("every", f"must be a positive integer, got {self.every!r}")
        for name in ("count", "max_frames"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 1):
                raise InputError(name, f"must be a positive integer, got {v!r}")
        if self.size is not None:
            s = tuple(self.size)
            if len(s) != 2 or not all(isinstance(x, (int, np.integer)) and x > 0 for x in s):
                raise InputError("size", f"must be (width, height) positive integers, got {self.size!r}")
            object.__setattr__(self, "size", (int(s[0]), int(s[1])))

    def select(self, total: int) -> list[int]:
        """Indices (into the source's frames) to yield, for a source of `total` frames."""
        idx = range(0, total, self.every)  # a range until the end: a source may be long
        if self.count is not None and self.count < len(idx):
            idx = [idx[i] for i in evenly_spaced(len(idx), self.count)]
        if self.max_frames is not None:
            idx = idx[: self.max_frames]
        return list(idx)


def resample(frame: Frame, width: int, height: int) -> Frame:
    """The frame at width×height: colour area/linear, depth, labels and instance maps
    (meta["instances"]) nearest, camera scaled."""
    import cv2  # heavy: only when a frame is resampled

    h, w = frame.rgb.shape[:2]
    if (w, h) == (width, height):
        out = frame
    else:
        interp = cv2.INTER_AREA if width < w and height < h else cv2.INTER_LINEAR
        out = replace(frame, rgb=np.ascontiguousarray(cv2.resize(frame.rgb, (width, height), interpolation=interp)))
    depth, labels, camera = frame.depth, frame.labels, frame.camera
    if depth is not None and depth.shape != (height, width):
        depth = cv2.resize(depth, (width, height), interpolation=cv2.INTER_NEAREST)
    if labels is not None and labels.shape != (height, width):
        labels = resize_nearest(labels, width, height)
    if camera is not None and (camera.width, camera.height) != (width, height):
        camera = camera.scaled(width, height)
    meta = frame.meta
    inst = meta.get("instances")
    if inst is not None and inst.shape != (height, width):
        meta = {**meta, "instances": resize_nearest(inst, width, height)}
    return replace(out, depth=depth, labels=labels, camera=camera, meta=meta)


class Source:
    """A sequence of Frames. Subclasses set `kind` and implement `total()` (frames before
    sampling, None when unknown, e.g. a live camera), `_frames(indices)` (yield the frames at
    those source indices, in order; indices is None for "all, until the source ends") and
    `_describe()` (kind-specific facts)."""

    kind = "source"

    def __init__(self, spec: str, sampling: Sampling | None = None):
        self.spec = str(spec)
        self.sampling = sampling or Sampling()
        self.skipped: list[dict] = []  # {"frame": n, "reason": ...} of this pass (sampling.skip_bad)
        self.on_skip: Callable[[dict], None] | None = None  # told of each skipped frame as it happens

    # --- to implement ---------------------------------------------------------------------
    def total(self) -> int | None:
        raise NotImplementedError

    def _frames(self, indices: list[int] | None) -> Iterator[Frame]:
        raise NotImplementedError

    def _describe(self) -> dict:
        return {}

    # --- shared ---------------------------------------------------------------------------
    def indices(self) -> list[int] | None:
        """Source indices this source will yield, or None when its length is unknown."""
        total = self.total()
        if total is None:
            if self.sampling.count is not None:
                raise InputError("count", f"{self.kind} source {self.spec!r} has no known length; use every/max_frames")
            return None
        return self.sampling.select(total)

    def __len__(self) -> int:
        idx = self.indices()
        if idx is None:
            raise TypeError(f"{self.kind} source {self.spec!r} has no known length")
        return len(idx)

    def skip(self, n: int, error: SourceError) -> None:
        """Frame n cannot be read: raise `error`, or with sampling.skip_bad record it and go on."""
        if not self.sampling.skip_bad:
            raise error
        record = {"frame": int(n), "reason": error.message}
        self.skipped.append(record)
        if self.on_skip is not None:
            self.on_skip(record)

    def __iter__(self) -> Iterator[Frame]:
        self.skipped = []
        idx = self.indices()
        frames = self._frames(idx) if idx is not None else self._unbounded()
        size = self.sampling.size
        for f in frames:
            if not self.sampling.instances and INSTANCE_MAPS & f.meta.keys():  # a source that makes them anyway
                f = replace(f, meta={k: v for k, v in f.meta.items() if k not in INSTANCE_MAPS})
            yield resample(f, *size) if size is not None else f

    def _unbounded(self) -> Iterator[Frame]:
        s = self.sampling
        kept = 0
        for i, f in enumerate(self._frames(None)):
            if i % s.every:
                continue
            yield f
            kept += 1
            if s.max_frames is not None and kept >= s.max_frames:
                return

    def describe(self) -> dict:
        """Plain facts about the source (JSON-serialisable)."""
        total = self.total()
        d = {
            "kind": self.kind,
            "spec": self.spec,
            "frames_total": total,
            "frames_selected": len(self) if total is not None else None,
        }
        d.update(self._describe())
        if self.sampling.size is not None:
            d["resampled_to"] = list(self.sampling.size)
        return d

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec!r}>"


def align_to_depth(image: np.ndarray, color_camera, depth_camera, nearest: bool = False) -> np.ndarray:
    """An image of the colour camera (colour, or labels with nearest=True) resampled onto the
    depth camera's pixel grid.

    Both cameras are pinholes at the same place (ScanNet's colour-to-depth extrinsic is the
    identity), so depth pixel (u, v) sees what colour pixel (fxc·(u − cxd)/fxd + cxc, ...) sees:
    an axis-aligned affine map. The image is first resampled to the depth's size (area for
    colour, nearest for labels; its intrinsics scaled to match), then the small remaining
    affine is applied, so differing focal lengths and principal points are honoured, not
    just the size.
    """
    import cv2  # heavy: only when colour is aligned to depth

    w, h = depth_camera.width, depth_camera.height
    if image.shape[:2] != (color_camera.height, color_camera.width):
        raise InputError(
            "color",
            f"{image.shape[1]}×{image.shape[0]}, its intrinsics are for {color_camera.width}×{color_camera.height}",
        )
    if nearest:
        small = image if image.shape[:2] == (h, w) else resize_nearest(image, w, h)
    elif image.shape[:2] != (h, w):
        interp = cv2.INTER_AREA if w < image.shape[1] and h < image.shape[0] else cv2.INTER_LINEAR
        small = cv2.resize(image, (w, h), interpolation=interp)
    else:
        small = image
    c = color_camera.scaled(w, h)
    d = depth_camera
    sx, sy = c.fx / d.fx, c.fy / d.fy
    tx, ty = c.cx - sx * d.cx, c.cy - sy * d.cy
    if abs(sx - 1) * w < 0.05 and abs(sy - 1) * h < 0.05 and abs(tx) < 0.05 and abs(ty) < 0.05:
        return np.ascontiguousarray(small)
    M = np.array([[sx, 0, tx], [0, sy, ty]], np.float64)  # depth pixel → colour pixel
    flags = (cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP
    out = cv2.warpAffine(small, M, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out)


def camera_dict(cam: Camera) -> dict:
    """A camera as the JSON of a source's description."""
    return {"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy, "width": cam.width, "height": cam.height}
