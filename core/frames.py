"""Frame and Camera: the one input type every source is turned into.

Arrays at the boundary: RGB is H×W×3 uint8 (C-contiguous), depth H×W float32 in
metres (0 or NaN = no depth), pose a 4×4 camera-to-world float64 matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from regiond.core.errors import InputError

DEFAULT_MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics for an image of `width`×`height` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        vals = np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)
        if not np.all(np.isfinite(vals)):
            raise InputError("intrinsics", f"non-finite values {vals.tolist()}")
        if self.fx <= 0 or self.fy <= 0:
            raise InputError("intrinsics", f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise InputError("intrinsics", f"image size must be positive, got {self.width}×{self.height}")

    @classmethod
    def from_matrix(cls, K, width: int, height: int) -> Camera:
        K = np.asarray(K, dtype=np.float64)
        if K.shape not in ((3, 3), (4, 4)):
            raise InputError("intrinsics", f"expected a 3×3 or 4×4 matrix, got shape {K.shape}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height))

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, width: int, height: int) -> Camera:
        """The same camera for the image resampled to width×height (pixel-centre convention)."""
        sx, sy = width / self.width, height / self.height
        return Camera(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            int(width),
            int(height),
        )


def camera_rays(camera: Camera, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (x/z, y/z) of the camera's image: two H×W float32 arrays (stride: of every
    stride-th pixel each way only, the same values as slicing the full arrays)."""
    u = (np.arange(0, camera.width, stride, dtype=np.float64) - camera.cx) / camera.fx
    v = (np.arange(0, camera.height, stride, dtype=np.float64) - camera.cy) / camera.fy
    xs = np.broadcast_to(u[None, :].astype(np.float32), (len(v), len(u)))
    ys = np.broadcast_to(v[:, None].astype(np.float32), (len(v), len(u)))
    return np.ascontiguousarray(xs), np.ascontiguousarray(ys)


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """Indices of k evenly spaced items among n, first and last included (all n when k >= n):
    how a clip's frames and a source's `count` frames are picked."""
    if k >= n:
        return np.arange(n)
    return np.round(np.linspace(0, n - 1, k)).astype(np.int64)


@dataclass
class Frame:
    """One image of a stream or scene, with whatever geometry came with it."""

    rgb: np.ndarray
    depth: np.ndarray | None = None
    camera: Camera | None = None
    pose: np.ndarray | None = None  # camera-to-world; None when tracking was lost
    index: int = 0
    time: float | None = None
    labels: np.ndarray | None = None  # optional ground truth, H×W NYU40 ids (0 = unlabelled)
    meta: dict = field(default_factory=dict)
    # Set by validated(): the frame was checked and normalised once, at the boundary it came
    # in through, so the extractor does not check it again.
    checked: bool = field(default=False, repr=False, compare=False)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def has_pose(self) -> bool:
        return self.pose is not None

    def validated(self, max_pixels: int = DEFAULT_MAX_PIXELS, field: str = "image") -> Frame:
        """Normalised copy: RGB as uint8, depth float32, camera at the image's size, pose
        checked; the frame itself when it was validated before (within max_pixels).
        Raises InputError naming `field` (the image's field) or depth / intrinsics / pose."""
        if self.checked and self.height * self.width <= max_pixels:
            return self
        rgb = as_rgb8(self.rgb, max_pixels=max_pixels, field=field)
        depth = None
        if self.depth is not None:
            depth = np.asarray(self.depth)
            if depth.ndim != 2 or depth.shape != rgb.shape[:2]:
                raise InputError("depth", f"shape {depth.shape} does not match the image {rgb.shape[:2]}")
            depth = np.ascontiguousarray(depth, dtype=np.float32)
        camera = self.camera
        if camera is not None and (camera.width, camera.height) != (rgb.shape[1], rgb.shape[0]):
            camera = camera.scaled(rgb.shape[1], rgb.shape[0])
        return replace(self, rgb=rgb, depth=depth, camera=camera, pose=check_pose(self.pose), checked=True)


def check_pose(pose) -> np.ndarray | None:
    """A 4×4 float64 camera-to-world matrix, or None for a missing pose.

    ScanNet marks lost tracking with -inf entries: such a pose is missing, not an error.
    Anything else that is not 16 finite numbers is an InputError.
    """
    if pose is None:
        return None
    p = np.asarray(pose, dtype=np.float64)
    if p.size != 16:
        raise InputError("pose", f"expected 16 numbers (4×4 camera-to-world), got {p.size}")
    p = p.reshape(4, 4)
    if np.isneginf(p).any() or np.isposinf(p).any():
        return None
    if not np.all(np.isfinite(p)):
        raise InputError("pose", "contains NaN")
    return p


def as_rgb8(image, max_pixels: int = DEFAULT_MAX_PIXELS, field: str = "image") -> np.ndarray:
    """Any reasonable image as C-contiguous H×W×3 uint8.

    Accepts grayscale (H×W, H×W×1, or H×W×2 with alpha), RGB, RGBA (alpha dropped), uint8, uint16/other
    integers (scaled by their range), bool, and floats in [0, 1]; non-contiguous views
    are copied. Empty images and those above `max_pixels` raise InputError.
    """
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise InputError(field, f"expected H×W, H×W×1/2/3/4, got shape {a.shape}")
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise InputError(field, f"empty image ({h}×{w})")
    if h * w > max_pixels:  # checked before any copy, so an oversized image costs nothing
        raise InputError(field, f"{w}×{h} = {h * w} pixels exceeds the limit of {max_pixels}")
    if a.ndim == 3 and a.shape[2] in (1, 2):  # grayscale, or grayscale + alpha (PIL "LA")
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.stack([a, a, a], axis=-1)
    a = a[:, :, :3]
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.integer):
        if a.min() < 0:
            raise InputError(field, "negative pixel values")
        top = 65535 if a.dtype.itemsize >= 2 else 255
        a = (a.astype(np.float64) * (255.0 / top) + 0.5).clip(0, 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise InputError(field, "non-finite pixel values")
        if a.min() < 0 or a.max() > 1:
            raise InputError(field, f"float images must lie in [0, 1], got [{a.min():.3g}, {a.max():.3g}]")
        a = (a * 255.0 + 0.5).astype(np.uint8)
    else:
        raise InputError(field, f"unsupported dtype {a.dtype}")
    return np.ascontiguousarray(a)
