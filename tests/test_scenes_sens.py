"""ScanNet .sens: writer/reader round trip, an independently packed file, and bad files."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from regiond import scenes
from regiond.core.errors import InputError
from regiond.core.frames import Camera
from regiond.scenes.sens import SensFile
from regiond.scenes.sens_writer import SensWriter, write_sens

W, H = 32, 24
CAM = Camera(30.0, 31.0, 15.5, 11.5, W, H)


def _data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    rgbs = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(n)]
    depths = [rng.integers(0, 5000, (H, W), dtype=np.uint16) for _ in range(n)]
    poses = []
    for _ in range(n):
        p = np.eye(4, dtype=np.float32)
        p[:3, :3] = cv2.Rodrigues(rng.normal(size=3))[0]
        p[:3, 3] = rng.normal(size=3)
        poses.append(p)
    return rgbs, depths, poses


def _write(path, rgbs, depths, poses, color_format="png"):
    with SensWriter(path, (W, H), (W, H), CAM, CAM, depth_shift=1000.0, color_format=color_format) as w:
        for k, (c, d, p) in enumerate(zip(rgbs, depths, poses)):
            w.add(c, d, p, timestamp_color=1000 * k, timestamp_depth=1000 * k + 1)
    return path


def test_round_trip_bit_exact(tmp_path):
    rgbs, depths, poses = _data()
    poses[2] = None  # lost tracking
    path = _write(tmp_path / "a.sens", rgbs, depths, poses)
    sf = SensFile(path)
    assert sf.header.num_frames == 4 and sf.header.depth_shift == 1000.0
    recs = list(sf.records())
    for k, r in enumerate(recs):
        np.testing.assert_array_equal(r.depth, depths[k])
        if poses[k] is None:
            assert np.isneginf(r.camera_to_world).all()
        else:
            np.testing.assert_array_equal(r.camera_to_world, poses[k])
        np.testing.assert_array_equal(sf.decode_color(r), rgbs[k])  # PNG colour is lossless
        assert (r.timestamp_color, r.timestamp_depth) == (1000 * k, 1000 * k + 1)
    frames = list(scenes.open_source(path))
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert frames[2].pose is None and frames[1].pose is not None
    np.testing.assert_array_equal(frames[1].pose, poses[1].astype(np.float64))
    np.testing.assert_array_equal(frames[0].depth, depths[0].astype(np.float32) / np.float32(1000))
    assert frames[0].camera == Camera.from_matrix(CAM.K.astype(np.float32), W, H)
    assert frames[1].time == pytest.approx(0.001)


def _pack_independently(path, rgbs, depths, poses, sensor=b"StructureSensor", shift=1000.0, imu=True, color_K=None):
    """A .sens file packed by hand, field by field as ScanNet's SensorData.py reads it.
    Returns the path and the colour images as a JPEG decoder sees them."""
    K = np.eye(4, dtype=np.float32)
    K[:3, :3] = CAM.K
    out = [struct.pack("I", 4), struct.pack("Q", len(sensor)), sensor]
    for m in (K if color_K is None else color_K, np.eye(4), K, np.eye(4)):
        out.append(struct.pack("f" * 16, *np.asarray(m, np.float32).ravel()))
    out += [
        struct.pack("i", 2),
        struct.pack("i", 1),
        struct.pack("I", W),
        struct.pack("I", H),
        struct.pack("I", W),
        struct.pack("I", H),
        struct.pack("f", shift),
        struct.pack("Q", len(rgbs)),
    ]
    decoded = []
    for k, (c, d, p) in enumerate(zip(rgbs, depths, poses)):
        ok, jpg = cv2.imencode(".jpg", c[:, :, ::-1])
        decoded.append(cv2.imdecode(jpg, cv2.IMREAD_COLOR)[:, :, ::-1])
        dz = zlib.compress(d.astype("<u2").tobytes(), 9)
        out += [
            struct.pack("f" * 16, *np.asarray(p, np.float32).ravel()),
            struct.pack("Q", 77 + k),
            struct.pack("Q", 88 + k),
            struct.pack("Q", len(jpg)),
            struct.pack("Q", len(dz)),
            jpg.tobytes(),
            dz,
        ]
    if imu:
        out.append(struct.pack("Q", 0))
    path.write_bytes(b"".join(out))
    return path, decoded


def test_independently_packed_file_reads_the_same(tmp_path):
    rgbs, depths, poses = _data(3, seed=1)
    poses[0] = np.full((4, 4), -np.inf, np.float32)
    path, decoded = _pack_independently(tmp_path / "hand.sens", rgbs, depths, poses, imu=False)
    src = scenes.open_source(path)
    assert src.describe()["sensor"] == "StructureSensor" and len(src) == 3
    frames = list(src)
    assert frames[0].pose is None
    for k in (1, 2):
        np.testing.assert_array_equal(frames[k].pose, poses[k].astype(np.float64))
    for k in range(3):
        np.testing.assert_array_equal(frames[k].depth, depths[k].astype(np.float32) / np.float32(1000))
        np.testing.assert_array_equal(frames[k].rgb, decoded[k])
        assert frames[k].time == pytest.approx((77 + k) / 1e6)
    # and our writer's JPEG file reads identically frame for frame
    mine = _write(tmp_path / "mine.sens", rgbs, depths, [None] + poses[1:], color_format="jpeg")
    for a, b in zip(scenes.open_source(mine), frames):
        np.testing.assert_array_equal(a.depth, b.depth)
        assert (a.pose is None) == (b.pose is None)
        if a.pose is not None:
            np.testing.assert_array_equal(a.pose, b.pose)


def test_sampling_skips_without_decoding(tmp_path, monkeypatch):
    rgbs, depths, poses = _data(6, seed=2)
    path = _write(tmp_path / "s.sens", rgbs, depths, poses)
    decoded = []  # (what, frame) for every colour image and depth map decoded
    decode_color, decode_depth = SensFile.decode_color, SensFile._decode_depth
    monkeypatch.setattr(
        SensFile, "decode_color", lambda self, rec: decoded.append(("colour", rec.index)) or decode_color(self, rec)
    )
    monkeypatch.setattr(
        SensFile,
        "_decode_depth",
        lambda self, data, where: decoded.append(("depth", where)) or decode_depth(self, data, where),
    )
    assert [f.index for f in scenes.open_source(path, every=2)] == [0, 2, 4]
    assert [i for what, i in decoded if what == "colour"] == [0, 2, 4]
    assert sum(what == "depth" for what, _ in decoded) == 3, decoded
    decoded.clear()
    assert [f.index for f in scenes.open_source(path, count=3)] == [0, 2, 5]
    assert len(decoded) == 6
    f = next(iter(scenes.open_source(path, max_frames=1, size=(16, 12))))
    assert f.rgb.shape == (12, 16, 3) and f.depth.shape == (12, 16)
    # CAM (30, 31, 15.5, 11.5) at half size, by hand: f/2, c' = (c + 0.5)/2 − 0.5
    assert (f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy) == pytest.approx((15.0, 15.5, 7.5, 5.5), abs=1e-5)
    assert (f.camera.width, f.camera.height) == (16, 12)


def test_colour_and_depth_of_different_sizes(tmp_path):
    rng = np.random.default_rng(3)
    Kc = Camera(60.0, 60.0, 31.5, 23.5, 64, 48)
    with SensWriter(tmp_path / "m.sens", (64, 48), (W, H), Kc, CAM, color_format="png") as w:
        w.add(np.full((48, 64, 3), 200, np.uint8), rng.integers(1, 3000, (H, W)).astype(np.uint16), np.eye(4))
    f = next(iter(scenes.open_source(tmp_path / "m.sens")))
    assert f.rgb.shape == (H, W, 3) and f.depth.shape == (H, W)
    assert (f.rgb == 200).all()
    assert f.camera.fx == pytest.approx(CAM.fx)


def test_truncated_file_yields_good_frames_then_names_the_bad_one(tmp_path):
    rgbs, depths, poses = _data(4, seed=4)
    path = _write(tmp_path / "t.sens", rgbs, depths, poses)
    data = path.read_bytes()
    cut = tmp_path / "cut.sens"
    cut.write_bytes(data[: len(data) - 8 - 200])  # into the last frame's data
    got = []
    with pytest.raises(scenes.SourceError, match="frame 3 of 4") as e:
        for f in scenes.open_source(cut):
            got.append(f.index)
    assert got == [0, 1, 2] and e.value.field == "source"
    cut.write_bytes(data[: len(data) // 2])  # ends in an earlier frame
    with pytest.raises(scenes.SourceError, match=r"frame \d of 4"):
        list(scenes.open_source(cut))


def test_corrupt_depth_names_the_frame(tmp_path):
    rgbs, depths, poses = _data(2, seed=5)
    path = _write(tmp_path / "c.sens", rgbs, depths, poses)
    sf = SensFile(path)
    data = bytearray(path.read_bytes())
    # the second frame's depth starts after its header and colour
    recs = list(sf.records())
    tail = zlib.compress(depths[1].astype("<u2").tobytes())
    pos = bytes(data).rfind(tail)
    assert pos > 0 and len(recs) == 2
    data[pos + 2 : pos + 12] = b"\x00" * 10
    path.write_bytes(bytes(data))
    got = []
    with pytest.raises(scenes.SourceError, match="frame 1 of 2.*depth"):
        for f in scenes.open_source(path):
            got.append(f.index)
    assert got == [0]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: struct.pack("<I", 3) + b[4:], "version"),
        (lambda b: b[:20], "truncated header"),
        (lambda b: b[:4] + struct.pack("<Q", 10**9) + b[12:], "sensor name length"),
        (lambda b: b"", "truncated header"),
    ],
)
def test_bad_headers(tmp_path, mutate, message):
    rgbs, depths, poses = _data(1)
    path = _write(tmp_path / "h.sens", rgbs, depths, poses)
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(scenes.SourceError, match=message):
        scenes.open_source(path)


def test_unsupported_depth_compression(tmp_path):
    rgbs, depths, poses = _data(1)
    path = _write(tmp_path / "o.sens", rgbs, depths, poses)
    b = bytearray(path.read_bytes())
    off = 4 + 8 + len(b"regiond") + 256 + 4
    b[off : off + 4] = struct.pack("<i", 2)  # occi_ushort
    path.write_bytes(bytes(b))
    with pytest.raises(scenes.SourceError, match="occi"):
        scenes.open_source(path)


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match="color_format"):
        SensWriter(tmp_path / "x.sens", (W, H), (W, H), CAM, CAM, color_format="gif")
    with SensWriter(tmp_path / "y.sens", (W, H), (W, H), CAM, CAM) as w:
        with pytest.raises(InputError, match="color"):
            w.add(np.zeros((H + 1, W, 3), np.uint8), np.zeros((H, W), np.uint16))
        with pytest.raises(InputError, match="depth"):
            w.add(np.zeros((H, W, 3), np.uint8), np.zeros((H, W + 1), np.uint16))
        with pytest.raises(InputError, match="depth"):
            w.add(np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.int32))
        with pytest.raises(InputError, match="pose"):
            w.add(np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint16), np.eye(3))
        w.add(np.zeros((H, W, 3), np.uint8), np.full((H, W), 1.2346, np.float32))
    f = next(iter(scenes.open_source(tmp_path / "y.sens")))
    assert f.depth[0, 0] == pytest.approx(1.235, abs=1e-6) and f.pose is None
    with pytest.raises(InputError, match="frames"):
        write_sens(tmp_path / "z.sens", [])
    with pytest.raises(scenes.SourceError, match="no such"):
        scenes.open_source(tmp_path / "missing.sens")


def test_reading_is_constant_in_memory(tmp_path):
    """Peak Python memory while streaming does not grow with the number of frames."""
    import tracemalloc

    rng = np.random.default_rng(9)
    big_w, big_h = 128, 96
    cam = Camera(100.0, 100.0, 63.5, 47.5, big_w, big_h)
    with SensWriter(tmp_path / "long.sens", (big_w, big_h), (big_w, big_h), cam, cam) as w:
        for _ in range(40):
            w.add(
                rng.integers(0, 256, (big_h, big_w, 3), dtype=np.uint8),
                rng.integers(0, 4000, (big_h, big_w), dtype=np.uint16),
                np.eye(4),
            )

    def peak(n):
        tracemalloc.start()
        for _ in scenes.open_source(tmp_path / "long.sens", max_frames=n):
            pass
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    peak(2)
    assert peak(40) < 1.5 * peak(4)


def test_colour_with_other_intrinsics_is_registered_to_the_depth(tmp_path):
    """Colour camera with its own focal length and principal point (as ScanNet's): each depth
    pixel gets the colour its own ray sees."""
    dcam = Camera(40.0, 40.0, 31.5, 23.5, 64, 48)
    ccam = Camera(95.0, 96.0, 70.0, 45.0, 128, 96)  # not just dcam scaled ×2

    def pattern(cam):  # colour as a smooth function of the ray direction
        xs = (np.arange(cam.width) - cam.cx) / cam.fx
        ys = (np.arange(cam.height) - cam.cy) / cam.fy
        X, Y = np.meshgrid(xs, ys)
        return np.stack([128 + 150 * X, 128 + 150 * Y, np.full_like(X, 90)], -1).clip(0, 255).astype(np.uint8)

    with SensWriter(tmp_path / "r.sens", (128, 96), (64, 48), ccam, dcam, color_format="png") as w:
        w.add(pattern(ccam), np.full((48, 64), 1000, np.uint16), np.eye(4))
    f = next(iter(scenes.open_source(tmp_path / "r.sens")))
    # depth pixels whose rays fall inside the colour image (away from its border)
    uc = ccam.fx * (np.arange(64) - dcam.cx) / dcam.fx + ccam.cx
    vc = ccam.fy * (np.arange(48) - dcam.cy) / dcam.fy + ccam.cy
    seen = ((vc > 2) & (vc < 93))[:, None] & ((uc > 2) & (uc < 125))[None, :]
    assert seen.mean() > 0.6
    err = np.abs(f.rgb.astype(int) - pattern(dcam))[seen]
    assert err.mean() < 1.5 and err.max() <= 4
    naive = cv2.resize(pattern(ccam), (64, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(naive.astype(int) - pattern(dcam))[seen].mean() > 5  # a plain resize would be off


def test_unusable_colour_intrinsics_fall_back_to_the_depth_view(tmp_path):
    rgbs, depths, poses = _data(1, seed=6)
    path, decoded = _pack_independently(tmp_path / "k.sens", rgbs, depths, poses, color_K=np.zeros((4, 4)))
    src = scenes.open_source(path)
    assert src.describe()["color_camera"]["fx"] == CAM.fx
    np.testing.assert_array_equal(next(iter(src)).rgb, decoded[0])
