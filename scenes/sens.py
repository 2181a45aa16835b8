"""ScanNet `.sens` files (version 4): the reader and the Source over them (the writer: sens_writer.py).

Layout (little-endian, as ScanNet's SensorData.py/sensorData.h read and write it):
  header: uint32 version (=4) · uint64 n · n bytes sensor name · float32[16] colour intrinsic ·
          float32[16] colour extrinsic · float32[16] depth intrinsic · float32[16] depth extrinsic ·
          int32 colour compression (0 raw, 1 png, 2 jpeg) · int32 depth compression (0 raw
          ushort, 1 zlib ushort, 2 occi) · uint32 colour width, height · uint32 depth width,
          height · float32 depth shift · uint64 frame count
  frame:  float32[16] camera-to-world (all -inf: tracking lost) · uint64 colour timestamp ·
          uint64 depth timestamp · uint64 colour bytes · uint64 depth bytes · colour data ·
          depth data (uint16 row-major, depth in metres = value / depth shift, 0 = none)
  then:   uint64 IMU frame count (the C++ writer; SensorData.py stops before it) and IMU data.
Matrices are row-major.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError, image_decode_errors
from regiond.core.frames import DEFAULT_MAX_PIXELS, Camera, Frame, check_pose
from regiond.scenes.source import Sampling, Source, SourceError, align_to_depth, camera_dict

VERSION = 4
COLOR_COMPRESSION = {0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
_MATS = struct.Struct("<64f")
_TAIL = struct.Struct("<iiIIIIfQ")
_FRAME = struct.Struct("<16fQQQQ")
NOMINAL_FPS = 30.0  # ScanNet's capture rate; used for `time` when a frame has no timestamp


@dataclass(frozen=True)
class SensHeader:
    sensor_name: str
    intrinsic_color: np.ndarray  # 4×4 float32
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_compression: str
    depth_compression: str
    color_width: int
    color_height: int
    depth_width: int
    depth_height: int
    depth_shift: float
    num_frames: int
    data_offset: int  # file offset of the first frame

    @property
    def depth_camera(self) -> Camera:
        return Camera.from_matrix(self.intrinsic_depth[:3, :3], self.depth_width, self.depth_height)

    @property
    def color_camera(self) -> Camera:
        return Camera.from_matrix(self.intrinsic_color[:3, :3], self.color_width, self.color_height)


@dataclass
class SensRecord:
    """One frame as stored: encoded colour, raw uint16 depth, float32 pose, timestamps."""

    index: int
    camera_to_world: np.ndarray  # 4×4 float32 exactly as stored (may be -inf)
    timestamp_color: int
    timestamp_depth: int
    color_data: bytes
    depth: np.ndarray  # H×W uint16


class SensFile:
    """Streaming access to a .sens file: one frame in memory at a time."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such .sens file")
        self.size = self.path.stat().st_size
        with open(self.path, "rb") as fh:
            self.header = self._read_header(fh)

    def _need(self, fh, n: int, what: str) -> bytes:
        b = fh.read(n)
        if len(b) != n:
            raise SourceError(f"{self.path}: truncated header ({what}: needed {n} bytes, file has {len(b)})")
        return b

    def _read_header(self, fh) -> SensHeader:
        (version,) = struct.unpack("<I", self._need(fh, 4, "version"))
        if version != VERSION:
            raise SourceError(f"{self.path}: not a version-4 .sens file (version field {version})")
        (n,) = struct.unpack("<Q", self._need(fh, 8, "sensor name length"))
        if n > 4096:
            raise SourceError(f"{self.path}: implausible sensor name length {n} (corrupt header)")
        name = self._need(fh, n, "sensor name").decode("utf-8", "replace")
        mats = np.array(_MATS.unpack(self._need(fh, _MATS.size, "calibration")), np.float32).reshape(4, 4, 4)
        cc, dc, cw, ch, dw, dh, shift, count = _TAIL.unpack(self._need(fh, _TAIL.size, "image formats"))
        if cc not in COLOR_COMPRESSION:
            raise SourceError(f"{self.path}: unknown colour compression type {cc}")
        if dc not in (0, 1):
            raise SourceError(
                f"{self.path}: depth compression {DEPTH_COMPRESSION.get(dc, dc)!r} is not supported "
                "(raw_ushort and zlib_ushort are)"
            )
        if min(cw, ch, dw, dh) == 0:
            raise SourceError(f"{self.path}: zero image size in header (colour {cw}×{ch}, depth {dw}×{dh})")
        if max(cw * ch, dw * dh) > DEFAULT_MAX_PIXELS:
            raise SourceError(
                f"{self.path}: implausible image size in header (colour {cw}×{ch}, depth {dw}×{dh}; "
                f"at most {DEFAULT_MAX_PIXELS} pixels)"
            )
        room = (self.size - fh.tell()) // _FRAME.size
        if count > room:
            raise SourceError(
                f"{self.path}: header says {count} frames but the file has room for at most {room} "
                "(truncated or corrupt)"
            )
        if not (np.isfinite(shift) and shift > 0):
            raise SourceError(f"{self.path}: invalid depth shift {shift}")
        hdr = SensHeader(
            name,
            mats[0],
            mats[1],
            mats[2],
            mats[3],
            COLOR_COMPRESSION[cc],
            DEPTH_COMPRESSION[dc],
            cw,
            ch,
            dw,
            dh,
            float(shift),
            int(count),
            fh.tell(),
        )
        try:
            hdr.depth_camera  # noqa: B018  (the property validates the header)
        except InputError as e:
            raise SourceError(f"{self.path}: bad depth intrinsics in header: {e.message}") from None
        return hdr

    def records(
        self, indices: list[int] | None = None, on_bad: Callable[[int, SourceError], None] | None = None
    ) -> Iterator[SensRecord]:
        """Yield the stored frames at `indices` (sorted; None = all), skipping the others.

        A frame that is cut short or whose depth does not decompress raises SourceError
        naming it, after every good frame before it was yielded; with `on_bad` it is passed
        there instead (which may raise it) and the frames after it follow, unless the file
        ends inside it (nothing after it can be found then).
        """

        def bad(i: int, error: SourceError) -> None:
            if on_bad is None:
                raise error
            on_bad(i, error)

        h = self.header
        wanted = None if indices is None else set(int(i) for i in indices)
        last = h.num_frames - 1 if wanted is None else (max(wanted) if wanted else -1)
        if last >= h.num_frames:
            raise InputError("frames", f"frame {last} requested, {self.path} has {h.num_frames}")
        with open(self.path, "rb") as fh:
            fh.seek(h.data_offset)
            for i in range(last + 1):
                where = f"{self.path}: frame {i} of {h.num_frames}"
                raw = fh.read(_FRAME.size)
                if len(raw) != _FRAME.size:
                    return bad(
                        i,
                        SourceError(
                            f"{where}: file ends in the frame header (truncated at byte "
                            f"{fh.tell()}; no frame after it can be read)"
                        ),
                    )
                vals = _FRAME.unpack(raw)
                csize, dsize = vals[18], vals[19]
                remaining = self.size - fh.tell()
                if csize + dsize > remaining:
                    return bad(
                        i,
                        SourceError(
                            f"{where}: needs {csize + dsize} bytes of image data, {remaining} "
                            "left (truncated or corrupt; no frame after it can be read)"
                        ),
                    )
                if wanted is not None and i not in wanted:
                    fh.seek(csize + dsize, 1)
                    continue
                color = fh.read(csize)
                try:
                    depth = self._decode_depth(fh.read(dsize), where)
                except SourceError as e:
                    bad(i, e)
                    continue
                yield SensRecord(i, np.array(vals[:16], np.float32).reshape(4, 4), vals[16], vals[17], color, depth)

    def _decode_depth(self, data: bytes, where: str) -> np.ndarray:
        h = self.header
        expect = h.depth_width * h.depth_height * 2
        if h.depth_compression == "zlib_ushort":
            try:  # at most one byte more than a frame needs: a zlib bomb stops there
                data = zlib.decompressobj().decompress(data, expect + 1)
            except zlib.error as e:
                raise SourceError(f"{where}: depth data does not decompress ({e})") from None
        if len(data) != expect:
            raise SourceError(
                f"{where}: depth is {len(data)} bytes, expected {expect} ({h.depth_width}×{h.depth_height} uint16)"
            )
        return np.frombuffer(data, "<u2").reshape(h.depth_height, h.depth_width)

    def decode_color(self, record: SensRecord) -> np.ndarray:
        """The record's colour as H×W×3 uint8 RGB at the colour resolution."""
        import cv2  # heavy: only when a frame is decoded

        h = self.header
        where = f"{self.path}: frame {record.index}"
        if h.color_compression == "raw":
            n = h.color_width * h.color_height * 3
            if len(record.color_data) != n:
                raise SourceError(f"{where}: raw colour is {len(record.color_data)} bytes, expected {n}")
            return np.frombuffer(record.color_data, np.uint8).reshape(h.color_height, h.color_width, 3).copy()
        _check_encoded_size(record.color_data, h.color_width, h.color_height, where)
        img = cv2.imdecode(np.frombuffer(record.color_data, np.uint8), cv2.IMREAD_COLOR_RGB)
        if img is None:
            raise SourceError(
                f"{where}: colour ({h.color_compression}, {len(record.color_data)} bytes) does not decode"
            )
        if img.shape[:2] != (h.color_height, h.color_width):
            raise SourceError(
                f"{where}: colour is {img.shape[1]}×{img.shape[0]}, header says {h.color_width}×{h.color_height}"
            )
        return img


def _check_encoded_size(data: bytes, width: int, height: int, where: str) -> None:
    """An encoded colour image must be the header's size, checked from its own header before
    decoding (a small JPEG may claim gigapixels)."""
    from PIL import Image  # only when a frame is decoded

    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
    except image_decode_errors() as e:
        raise SourceError(f"{where}: colour ({len(data)} bytes) does not decode ({e})") from None
    if size != (width, height):
        raise SourceError(f"{where}: colour is {size[0]}×{size[1]}, header says {width}×{height}")


class SensSource(Source):
    """Frames of a ScanNet .sens file at the depth's resolution: depth in metres
    (value / depth shift), the depth camera's intrinsics, colour resampled onto the depth
    camera's pixel grid through both intrinsics (base.align_to_depth), poses with -inf reported
    as missing."""

    kind = "sens"

    def __init__(self, path, sampling: Sampling | None = None):
        super().__init__(str(path), sampling)
        self.file = SensFile(path)

    def total(self) -> int:
        return self.file.header.num_frames

    def _frames(self, indices) -> Iterator[Frame]:
        h = self.file.header
        cam, ccam = h.depth_camera, self._color_camera()
        for rec in self.file.records(indices, on_bad=self.skip):
            try:
                colour = self.file.decode_color(rec)
            except SourceError as e:
                self.skip(rec.index, e)
                continue
            rgb = align_to_depth(colour, ccam, cam)
            depth = rec.depth.astype(np.float32) / np.float32(h.depth_shift)
            pose = check_pose(rec.camera_to_world.astype(np.float64))
            t = rec.timestamp_color / 1e6 if rec.timestamp_color else rec.index / NOMINAL_FPS
            yield Frame(
                rgb=rgb, depth=depth, camera=cam, pose=pose, index=rec.index, time=t, meta={"source": self.spec}
            )

    def _color_camera(self) -> Camera:
        h = self.file.header
        try:
            return h.color_camera
        except InputError:  # no usable colour intrinsics: assume the depth camera's field of view
            return h.depth_camera.scaled(h.color_width, h.color_height)

    def _describe(self) -> dict:
        h = self.file.header
        return {
            "sensor": h.sensor_name,
            "color_size": [h.color_width, h.color_height],
            "depth_size": [h.depth_width, h.depth_height],
            "depth_shift": h.depth_shift,
            "color_compression": h.color_compression,
            "depth_compression": h.depth_compression,
            "size": [h.depth_width, h.depth_height],
            "camera": camera_dict(h.depth_camera),
            "color_camera": camera_dict(self._color_camera()),
            "has_depth": True,
            "has_pose": True,
            "has_labels": False,
        }
