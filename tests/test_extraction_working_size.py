"""Frames larger than the profile's working size: masks, features and pooling at the working
size, the masks returned at the frame's own size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from support_service import sample_image, stub_for

from regiond.api.v1 import regions_pb2 as pb
from regiond.core.frames import Camera, Frame
from regiond.core.partition import Partition
from regiond.core.rle import MaskPixels
from regiond.extraction.profiles import PROFILES, build_extractor
from regiond.extraction.working_size import at_size, working_frame


def _big(w=1280, h=720):
    return cv2.resize(sample_image(128, 72), (w, h), interpolation=cv2.INTER_NEAREST)


def test_profiles_working_sizes():
    assert PROFILES["lite"].work_side == 640 and PROFILES["balanced"].work_side == 896
    assert PROFILES["paper"].work_side is None  # the paper's native resolution


def test_large_frame_is_processed_at_the_working_size_masks_at_its_own():
    ex = build_extractor("lite", work_side=320, announce=lambda m: None)
    rgb = _big()
    rs = ex.extract(rgb)
    assert (rs.height, rs.width) == (720, 1280) and "resize" in rs.meta["seconds"]
    small = cv2.resize(rgb, (320, 180), interpolation=cv2.INTER_AREA)
    want = build_extractor("lite", work_side=None, announce=lambda m: None).extract(small)
    np.testing.assert_array_equal(rs.features, want.features)  # pooled at the working size
    assert len(rs) == len(want)
    masks = MaskPixels.from_counts(rs.counts, 720, 1280).dense()
    assert masks.shape == (len(rs), 720, 1280) and masks.sum(0).max() == 1  # still a partition, full size
    np.testing.assert_allclose(rs.boxes / 4, want.boxes, atol=1)  # 4x the working size's boxes


def test_frames_within_the_working_size_are_unchanged():
    ex = build_extractor("lite", announce=lambda m: None)
    native = build_extractor("lite", work_side=None, announce=lambda m: None)
    rgb = _big(640, 360)
    a, b = ex.extract(rgb), native.extract(rgb)
    assert all(np.array_equal(x, y) for x, y in zip(a.counts, b.counts)) and len(a) == len(b)
    assert np.array_equal(a.features, b.features) and "resize" not in a.meta["seconds"]


def test_depth_and_camera_follow_and_geometry_is_at_full_size():
    rgb = _big(1280, 960)
    depth = np.full((960, 1280), 2.0, np.float32)
    cam = Camera(1000.0, 1000.0, 639.5, 479.5, 1280, 960)
    frame = Frame(rgb=rgb, depth=depth, camera=cam, pose=np.eye(4))
    work = working_frame(frame, 640)
    assert work.rgb.shape == (480, 640, 3) and work.depth.shape == (480, 640)
    assert work.camera == cam.scaled(640, 480) and frame.rgb.shape == (960, 1280, 3)
    rs = build_extractor("lite", work_side=640, announce=lambda m: None).extract(frame)
    assert int(rs.point_count.sum()) == 1280 * 960  # the statistics read the frame's own depth
    np.testing.assert_allclose(rs.centroids[:, 2], 2.0, atol=1e-5)


def test_at_size_keeps_labels_and_masks():
    labels = np.arange(12).reshape(3, 4) % 5
    up = at_size(Partition(labels, 5), 6, 8)
    assert up.n == 5 and np.array_equal(up.labels[::2, ::2], labels)
    masks = np.stack([labels == k for k in range(5)])
    assert np.array_equal(at_size(masks, 6, 8), np.stack([up.labels == k for k in range(5)]))


@pytest.mark.parametrize("max_side, expect", [(None, (720, 1280)), (0, (720, 1280))])
def test_daemon_returns_masks_at_the_frame_size(tmp_path, max_side, expect):
    from regiond.service.server import RegionServer, ServeConfig

    cfg = ServeConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", index=False, profile="lite", max_side=max_side)
    srv = RegionServer(cfg).start()
    try:
        ch, stub = stub_for(srv)
        rgb = _big()
        img = pb.Image(data=rgb.tobytes(), encoding=pb.Image.RGB8, width=1280, height=720)
        rs = stub.ExtractRegions(pb.ExtractRequest(image=img))
        ch.close()
    finally:
        srv.stop(grace=1)
    assert (rs.height, rs.width) == expect
    assert all(sum(r.mask.counts) == 1280 * 720 for r in rs.regions)
    assert ("resize" in rs.stage_seconds) == (max_side is None)  # lite works at 640 unless --max-side 0


def test_bad_max_side_is_refused():
    from regiond.service.config import ConfigError, ServeConfig

    with pytest.raises(ConfigError, match="--max-side"):
        ServeConfig(max_side=8).check()
