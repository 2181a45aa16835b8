"""Writing ScanNet .sens files (SensWriter, write_sens): the reader's exact inverse, for tests,
the generated rooms and anyone converting their own captures."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Camera, as_rgb8
from regiond.scenes.sens import NOMINAL_FPS, VERSION


def _mat4(K) -> np.ndarray:
    if isinstance(K, Camera):
        K = K.K
    K = np.asarray(K, np.float64)
    if K.shape == (3, 3):
        M = np.eye(4)
        M[:3, :3] = K
        K = M
    if K.shape != (4, 4):
        raise InputError("intrinsics", f"expected a Camera, 3×3 or 4×4 matrix, got shape {K.shape}")
    return K.astype(np.float32)


class SensWriter:
    """Writes a version-4 .sens file frame by frame (JPEG or PNG colour, zlib depth).

    color_size, depth_size  (width, height) of the colour and depth images
    intrinsic_color, intrinsic_depth  Camera, 3×3 or 4×4 matrices
    depth_shift   stored value = depth in metres × depth_shift (ScanNet: 1000)
    color_format  "jpeg" (ScanNet's choice) or "png" (lossless)
    The frame count is patched into the header on close; use as a context manager.
    """

    def __init__(
        self,
        path,
        color_size,
        depth_size,
        intrinsic_color,
        intrinsic_depth,
        depth_shift: float = 1000.0,
        sensor_name: str = "regiond",
        color_format: str = "jpeg",
        jpeg_quality: int = 95,
    ):
        if color_format not in ("jpeg", "png"):
            raise InputError("color_format", f"must be 'jpeg' or 'png', got {color_format!r}")
        if not (np.isfinite(depth_shift) and depth_shift > 0):
            raise InputError("depth_shift", f"must be positive, got {depth_shift}")
        self.path = Path(path)
        self.color_size = tuple(int(x) for x in color_size)
        self.depth_size = tuple(int(x) for x in depth_size)
        self.depth_shift = float(depth_shift)
        self.color_format = color_format
        self.jpeg_quality = int(jpeg_quality)
        self.count = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "wb")
        name = sensor_name.encode()
        eye = np.eye(4, dtype=np.float32)
        mats = np.stack([_mat4(intrinsic_color), eye, _mat4(intrinsic_depth), eye]).astype("<f4")
        self._fh.write(struct.pack("<IQ", VERSION, len(name)) + name + mats.tobytes())
        cc = {"png": 1, "jpeg": 2}[color_format]
        self._fh.write(struct.pack("<iiIIIIf", cc, 1, *self.color_size, *self.depth_size, self.depth_shift))
        self._count_at = self._fh.tell()
        self._fh.write(struct.pack("<Q", 0))

    def add(self, rgb, depth, pose=None, timestamp_color: int = 0, timestamp_depth: int = 0) -> None:
        """Append one frame.

        rgb    colour image at color_size (anything frames.as_rgb8 accepts)
        depth  H×W uint16 stored values, or float metres (× depth_shift, rounded; 0/NaN/out
               of range → 0)
        pose   4×4 camera-to-world, or None for lost tracking (stored as -inf, as ScanNet does)
        """
        import cv2  # heavy: only when a frame is written

        rgb = as_rgb8(rgb, field="color")
        if (rgb.shape[1], rgb.shape[0]) != self.color_size:
            raise InputError(
                "color", f"{rgb.shape[1]}×{rgb.shape[0]}, writer expects {self.color_size[0]}×{self.color_size[1]}"
            )
        d = np.asarray(depth)
        if d.shape != (self.depth_size[1], self.depth_size[0]):
            raise InputError("depth", f"shape {d.shape}, writer expects {self.depth_size[1]}×{self.depth_size[0]}")
        if d.dtype != np.uint16:
            if not np.issubdtype(d.dtype, np.floating):
                raise InputError("depth", f"expected uint16 or float metres, got {d.dtype}")
            v = np.where(np.isfinite(d), d * self.depth_shift, 0.0)
            d = np.where((v > 0) & (v < 65535.5), np.rint(v), 0).astype(np.uint16)
        if pose is None:
            m = np.full((4, 4), -np.inf, np.float32)
        else:
            m = np.asarray(pose, np.float64)
            if m.shape != (4, 4):
                raise InputError("pose", f"expected 4×4, got {m.shape}")
            m = m.astype(np.float32)
        bgr = rgb[:, :, ::-1]
        ok, enc = (
            cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if self.color_format == "jpeg"
            else cv2.imencode(".png", bgr)
        )
        if not ok:
            raise OSError(f"could not encode frame {self.count} colour")
        color = enc.tobytes()
        dz = zlib.compress(np.ascontiguousarray(d, "<u2").tobytes())
        self._fh.write(m.astype("<f4").tobytes())
        self._fh.write(struct.pack("<QQQQ", int(timestamp_color), int(timestamp_depth), len(color), len(dz)))
        self._fh.write(color)
        self._fh.write(dz)
        self.count += 1

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.write(struct.pack("<Q", 0))  # no IMU frames
        self._fh.seek(self._count_at)
        self._fh.write(struct.pack("<Q", self.count))
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_sens(path, frames, depth_shift: float = 1000.0, color_format: str = "jpeg", progress=None) -> Path:
    """Write Frames (all the same size, each with depth and camera) as a .sens file.

    The colour and depth sizes and intrinsics come from the first frame. Returns the path.
    """
    writer = None
    try:
        for f in frames:
            if f.depth is None or f.camera is None:
                raise InputError("frames", f"frame {f.index} has no depth or camera; .sens needs both")
            if writer is None:
                cam = (
                    f.camera
                    if (f.camera.width, f.camera.height) == (f.width, f.height)
                    else f.camera.scaled(f.width, f.height)
                )
                writer = SensWriter(
                    path, (f.width, f.height), (f.width, f.height), cam, cam, depth_shift, color_format=color_format
                )
            ts = int(round((f.time if f.time is not None else f.index / NOMINAL_FPS) * 1e6))
            writer.add(f.rgb, f.depth, f.pose, ts, ts)
            if progress is not None:
                progress.update(1)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise InputError("frames", "no frames to write")
    return Path(path)
