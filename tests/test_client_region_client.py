"""RegionClient against real lite daemons on loopback ports: every method with the project's own
types in and out, and the connection: a bad address, a bad token, TLS, timeouts, and a daemon
that restarts on the same port (unary calls wait for it, streams reconnect)."""

from __future__ import annotations

import threading
import time

import grpc
import numpy as np
import pytest
from support_service import (
    free_port,
    lite_extractor,
    png_bytes,
    running_server,
    sample_image,
    self_signed_cert,
    write_video,
)

from regiond.client import (
    IndexSummary,
    InputReadError,
    RegionClient,
    RegionError,
    SceneUpdate,
    ServerInfo,
    Unreachable,
    VideoUpdate,
)
from regiond.core.regionset import RegionSet

TOKEN = "s3cret"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A lite daemon with the bundled heads (scene labels, activity windows) and an index."""
    with running_server(lite_extractor(), tmp_path_factory.mktemp("d"), index=True, heads="bundled") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(daemon):
    with RegionClient(daemon.address, token="") as c:
        yield c


def synthetic_frames(n: int = 3):
    from regiond import scenes

    return list(scenes.open_source("synthetic:3", max_frames=n, size=(160, 120)))


def test_info_is_a_dataclass(client):
    info = client.info()
    assert isinstance(info, ServerInfo) and info.profile == "lite" and info.feature_dim > 0
    assert {m.role for m in info.models} == {"masker", "backbone"}
    assert {h.kind for h in info.heads} >= {"scene", "activity"} and all(h.class_names for h in info.heads)


def test_extract_takes_a_path_bytes_or_pixels_and_gives_a_region_set(client, tmp_path):
    rgb = sample_image(96, 72)
    path = tmp_path / "p.png"
    path.write_bytes(png_bytes(rgb))
    got = [client.extract(path), client.extract(path.read_bytes()), client.extract(rgb)]
    for rs in got:
        assert isinstance(rs, RegionSet) and (rs.height, rs.width) == (72, 96) and len(rs) > 3
        assert rs.features.shape == (len(rs), client.info().feature_dim) and rs.features.dtype == np.float32
        assert rs.masks().any(axis=0).all()  # lite: SLIC covers every pixel
        assert (rs.areas == rs.masks().sum(axis=(1, 2))).all() and rs.meta["profile"] == "lite"
        assert rs.centroids is None  # no depth
        # the daemon serves a scene labeller: every region has a class of its scene head
        scene = next(h for h in client.info().heads if h.kind == "scene")
        assert rs.labels is not None and set(rs.labels.tolist()) <= set(scene.class_ids)
    assert client.extract(rgb, labels=False).labels is None
    # the same pixels whichever way they came (PNG is lossless, raw RGB travels as is)
    assert all(np.array_equal(a.features, got[0].features) for a in got[1:])
    light = client.extract(rgb, features=None, masks=False)
    assert light.features is None and (light.areas == got[0].areas).all()
    assert np.array_equal(light.boxes, got[0].boxes)
    half = client.extract(rgb, features="float16")
    assert np.allclose(half.features, got[0].features, atol=2e-2 * np.abs(got[0].features).max())


def test_extract_with_depth_gives_3d_positions(client):
    f = synthetic_frames(1)[0]
    rs = client.extract(f.rgb, depth=f.depth, intrinsics=f.camera, pose=f.pose)
    assert rs.meta["world"] is True and rs.centroids.shape == (len(rs), 3)
    valid = rs.valid_depth > 0.5
    assert valid.any() and np.isfinite(rs.centroids[valid]).all() and (rs.point_count[valid] > 0).all()
    camera = client.extract(f.rgb, depth=f.depth, intrinsics=f.camera.K)  # K for the image's size, no pose
    assert camera.meta["world"] is False and camera.centroids.shape == rs.centroids.shape


def test_bad_input_is_a_region_error_naming_the_field(client):
    with pytest.raises(RegionError) as e:
        client.extract(b"not an image")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.details.startswith("image:")
    rgb = sample_image(96, 72)
    with pytest.raises(RegionError) as e:
        client.extract(rgb, depth=np.ones((10, 10), np.float32), intrinsics=np.eye(3))
    assert e.value.details.startswith("depth:")
    with pytest.raises(ValueError, match="features"):
        client.extract(rgb, features="int8")


def test_stream_video_from_frames_arrays_and_a_file(client, tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=12)
    from_file = list(client.stream_video(video))
    assert [u.frame_index for u in from_file] == list(range(12))
    assert all(isinstance(u, VideoUpdate) and u.error is None and len(u.regions) > 0 for u in from_file)
    windows = [w for u in from_file for w in u.windows]  # the bundled activity head
    classes = next(len(h.class_ids) for h in client.info().heads if h.kind == "activity")
    assert windows and all(w.end_frame - w.start_frame == 7 and len(w.scores) == classes for w in windows)
    assert windows[0].scores == sorted(windows[0].scores, key=lambda s: -s.score)
    arrays = [sample_image(96, 72, seed=k) for k in range(4)]
    ups = list(client.stream_video(iter(arrays), keyframe_every=2, min_coverage=0.01))
    assert [u.frame_index for u in ups] == [0, 1, 2, 3]
    assert [u.regions.meta["carry"]["keyframe"] for u in ups] == [True, False, True, False]


def test_stream_masks_of_the_frames_a_function_picks(client):
    """masks=f(position): only the frames it picks come back with masks; the others keep their
    boxes, areas and 3D statistics (a scan that draws a few frames skips the rest's bytes)."""
    frames = synthetic_frames(4)
    picked = list(client.stream_scene(frames, masks=lambda k: k % 2 == 0))
    every = list(client.stream_scene(frames))
    regions = [u.regions for u in picked if u.regions is not None]
    full = [u.regions for u in every if u.regions is not None]
    assert [r.meta["frame_index"] for r in regions] == [f.index for f in frames]
    for k, (r, f) in enumerate(zip(regions, full)):
        np.testing.assert_array_equal(r.boxes, f.boxes)
        np.testing.assert_array_equal(r.areas, f.areas)
        np.testing.assert_array_equal(r.centroids, f.centroids)
        if k % 2 == 0:
            np.testing.assert_array_equal(r.masks(), f.masks())
        else:
            assert f.masks().any() and not r.masks().any()  # sent without masks
    video = list(client.stream_video(iter(f.rgb for f in frames), masks=lambda k: k == 3))
    assert [bool(u.regions.masks().any()) for u in video] == [False, False, False, True]


def test_stream_scene_gives_labels_refined_frames_and_the_summary(client):
    frames = synthetic_frames(3)
    ups = list(client.stream_scene(frames, scene_id="s3", ply=True, label_maps=True))
    assert all(isinstance(u, SceneUpdate) for u in ups)
    per_frame = [u for u in ups if u.regions is not None]
    refined = [u.refined for u in ups if u.refined is not None]
    summary = ups[-1].summary
    assert [u.frame_index for u in per_frame] == [f.index for f in frames]
    for u in per_frame:
        n = len(u.regions)
        assert u.regions.meta["world"] and u.regions.centroids.shape == (n, 3)
        assert u.regions.labels.shape == (n,) and u.label_scores.shape[0] == n
        assert set(u.regions.meta["label_names"]) >= set(u.regions.labels[u.regions.labels >= 0].tolist())
        assert u.label_map.shape == (120, 160) and u.label_map.dtype == np.uint8
    assert [r.frame_index for r in refined] == [f.index for f in frames]
    assert all(r.label_map.shape == (120, 160) for r in refined)
    assert summary.scene_id == "s3" and summary.frames == 3 and summary.frames_failed == 0
    assert summary.fused_points > 0 and summary.ply.startswith(b"ply") and summary.ply_voxel_size == 0.02


def test_a_failing_frames_iterator_is_an_input_read_error(client):
    def frames():
        yield sample_image(96, 72)
        raise OSError("frame 1: truncated file")

    with pytest.raises(InputReadError, match="frame 1: truncated file") as e:
        list(client.stream_video(frames()))
    assert isinstance(e.value.__cause__, OSError)


def test_leaving_a_stream_early_cancels_it(daemon, client):
    from support_service import wait_until

    endless = (sample_image(96, 72, seed=k % 3) for k in range(10_000))
    updates = client.stream_video(endless)
    assert next(updates).frame_index == 0
    updates.close()
    assert wait_until(lambda: daemon.servicer.sessions.count() == 0, 10)


def test_index_search_and_remove(client, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for k in range(3):
        (folder / ("sub" if k == 2 else "") / f"p{k}.png").write_bytes(png_bytes(sample_image(96, 72, seed=k)))
    s = client.index(folder, metadata={"set": "one"})
    assert isinstance(s, IndexSummary) and (s.indexed, s.skipped, s.errors) == (3, 0, [])
    again = client.index({"p0.png": folder / "p0.png", "bad": b"nope"})
    assert (again.indexed, again.skipped) == (0, 1) and [e.image_id for e in again.errors] == ["bad"]
    assert again.errors[0].field == "image"
    files = client.index([folder / "p1.png", str(folder / "sub" / "p2.png")])  # ids: the paths as given
    assert files.indexed == 2 and files.total_images == 5
    assert client.remove([str(folder / "p1.png"), str(folder / "sub" / "p2.png")]).total_images == 3
    extra = client.index([("x/arr", sample_image(96, 72, seed=9), {"set": "two"})])
    assert extra.indexed == 1 and extra.total_images == s.total_images + 1

    hits = client.search(folder / "p1.png", box=(10, 10, 60, 50), top_k=3, regions_per_image=2, masks=True)
    assert hits[0].image_id == "p1.png" and hits.searched_images == extra.total_images and len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = hits[0]
    assert top.metadata == {"set": "one", "path": str((folder / "p1.png").resolve())}
    assert all(r.mask.shape == (72, 96) and r.mask.dtype == bool for r in top.regions)
    assert all(r.mask.sum() > 0 for r in top.regions)
    # a box left to the daemon is matched by its regions
    default = client.search(folder / "p1.png", box=(10, 10, 60, 50), top_k=3)
    regions = client.search(folder / "p1.png", box=(10, 10, 60, 50), top_k=3, match="regions")
    pooled = client.search(folder / "p1.png", box=(10, 10, 60, 50), top_k=3, match="pooled")
    assert [(h.image_id, h.score) for h in default] == [(h.image_id, h.score) for h in regions]
    assert [(h.image_id, h.score) for h in pooled] != [(h.image_id, h.score) for h in regions]
    assert all(r.mask is None for h in default for r in h.regions)
    # a mask: a bool array or a PNG; filters
    mask = np.zeros((72, 96), bool)
    mask[36:, 24:72] = True
    rgb = sample_image(96, 72, seed=2)
    by_array = client.search(rgb, mask=mask, where={"set": "one"})
    by_png = client.search(rgb, mask=png_bytes(mask.astype(np.uint8) * 255), where={"set": "one"})
    assert by_array[0].image_id == "sub/p2.png" and [h.image_id for h in by_array] == [h.image_id for h in by_png]
    assert {h.metadata["set"] for h in by_array} == {"one"}
    assert [h.image_id for h in client.search(rgb, mask=mask, prefix="x/")] == ["x/arr"]
    assert "sub/p2.png" not in [h.image_id for h in client.search(rgb, mask=mask, exclude=["sub/p2.png"])]
    with pytest.raises(ValueError, match="a mask or a box"):
        client.search(rgb, mask=mask, box=(0, 0, 5, 5))
    with pytest.raises(ValueError, match="match 'both'"):
        client.search(rgb, box=(0, 0, 5, 5), match="both")
    with pytest.raises(RegionError) as e:
        client.search(rgb, mask=np.ones((5, 5), bool))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.details.startswith("mask.mask")

    gone = client.remove(["x/arr", "never-indexed"])
    assert gone.removed == 1 and gone.total_images == s.total_images


def test_an_address_without_a_daemon_is_a_clear_error():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(Unreachable, match=f"cannot reach regiond at 127.0.0.1:{port} within 0.5 s"):
        RegionClient(f"127.0.0.1:{port}", connect_timeout=0.5)
    assert time.monotonic() - t0 < 5


def test_the_address_and_token_come_from_the_environment(tmp_path, monkeypatch):
    with running_server(lite_extractor(), tmp_path, token=TOKEN) as srv:
        monkeypatch.setenv("REGIOND_SERVER", srv.address)
        monkeypatch.delenv("REGIOND_TOKEN", raising=False)
        with RegionClient() as c:  # the address from $REGIOND_SERVER, no token
            assert c.address == srv.address
            with pytest.raises(RegionError) as e:
                c.info()
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with RegionClient(token="wrong") as c, pytest.raises(RegionError) as e:
            c.info()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        monkeypatch.setenv("REGIOND_TOKEN", TOKEN)
        with RegionClient() as c:
            assert c.info().profile == "lite"


def test_tls_with_a_self_signed_certificate(tmp_path):
    key, cert = self_signed_cert(tmp_path)
    with running_server(lite_extractor(), tmp_path, tls_cert=cert, tls_key=key, token=TOKEN) as srv:
        port = srv.address.rpartition(":")[2]
        with RegionClient(srv.address, token=TOKEN, tls_ca=cert) as c:
            assert len(c.extract(sample_image())) > 0
        # the certificate names localhost and 127.0.0.1: another name is overridden to match it
        with RegionClient(f"127.0.0.1:{port}", token=TOKEN, tls_ca=cert.read_bytes(), tls_name="localhost") as c:
            assert c.info().profile == "lite"
        with pytest.raises(Unreachable, match="with TLS"):
            RegionClient(srv.address, tls_ca=cert, tls_name="not-the-name", connect_timeout=1)
        with pytest.raises(Unreachable):  # plaintext to a TLS port
            RegionClient(srv.address, token=TOKEN, connect_timeout=1)


def test_timeouts(daemon):
    with RegionClient(daemon.address, timeout=1e-4) as c:  # the client's default for every call
        with pytest.raises(RegionError) as e:
            c.extract(sample_image())
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert len(c.extract(sample_image(), timeout=60)) > 0  # a call's own timeout wins
    with RegionClient(daemon.address) as c, pytest.raises(RegionError) as e:
        list(c.stream_video(iter([sample_image()] * 50), timeout=1e-3))
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_calls_wait_for_a_daemon_that_restarts_on_the_same_port(tmp_path):
    from regiond.service.server import RegionServer, ServeConfig

    cfg = dict(listen=f"127.0.0.1:{free_port()}", data_dir=tmp_path / "d", index=False)
    first = RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start()
    later: list = []
    try:
        with RegionClient(cfg["listen"], retry_for=60) as c:
            rgb = sample_image()
            before = c.extract(rgb)
            first.stop(grace=0)
            # a stream that loses the daemon says so; reconnect() waits for its return
            with pytest.raises(RegionError) as e:
                list(c.stream_video(iter([rgb] * 3)))
            assert e.value.code == grpc.StatusCode.UNAVAILABLE

            def come_back():
                time.sleep(1.5)
                later.append(RegionServer(ServeConfig(**cfg), extractor=lite_extractor()).start())

            threading.Thread(target=come_back).start()
            t0 = time.monotonic()
            after = c.extract(rgb)  # waits for the daemon instead of failing
            assert time.monotonic() - t0 >= 1.0 and np.array_equal(after.features, before.features)
            later[0].stop(grace=0)
            threading.Thread(target=come_back).start()
            c.reconnect()
            assert [u.frame_index for u in c.stream_video(iter([rgb] * 3))] == [0, 1, 2]
        with RegionClient(cfg["listen"], retry_for=0.5) as c:
            later[-1].stop(grace=0)
            t0 = time.monotonic()
            with pytest.raises(Unreachable, match="did not come back within 0.5 s"):
                c.info()
            assert time.monotonic() - t0 < 5
            with pytest.raises(Unreachable, match="did not come back within 0.2 s"):
                c.reconnect(0.2)
    finally:
        for s in [first, *later]:
            s.stop(grace=0)


def test_the_context_manager_closes_the_channel(daemon):
    with RegionClient(daemon.address) as c:
        assert c.info().profile == "lite"
    with pytest.raises(ValueError, match="closed channel"):
        c.info()


def test_depth_travels_in_millimetres_with_non_finite_values_as_none():
    from regiond.client.messages import depth_pb

    metres = np.array([[0.0, 0.0004, 0.0005, 1.2344], [np.nan, np.inf, -np.inf, -0.5], [65.535, 70.0, 1e38, 2.0]])
    msg = depth_pb(metres)
    mm = np.frombuffer(msg.data, "<u2").reshape(msg.height, msg.width)
    assert (msg.width, msg.height, msg.scale) == (4, 3, pytest.approx(0.001))
    np.testing.assert_array_equal(mm, [[0, 0, 0, 1234], [0, 0, 0, 0], [65535, 65535, 65535, 2000]])
