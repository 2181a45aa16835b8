"""Partitions (label maps of regions that never overlap) give exactly what their mask stacks give:
RLE counts, boxes and areas, pooled features (to 1e-5), 3D statistics, whole RegionSets; and the
lite pipeline's features are the ones the bundled heads were trained on."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from test_features_pooling import SIZES, make_grid

from regiond.core import rle
from regiond.core.errors import InputError
from regiond.core.frames import Camera, Frame
from regiond.core.partition import Partition
from regiond.core.regionset import RegionSet
from regiond.extraction.extractor import Extractor
from regiond.extraction.profiles import build_extractor
from regiond.features import build_backbone
from regiond.features.partition_pooling import PartitionPooling
from regiond.features.pooling import naive_pool, pool_masks
from regiond.geometry import region_geometry
from regiond.masks.generator import MaskGenerationError, MaskProposals
from regiond.masks.slic import SlicConfig, SlicMasker


def random_partition(h: int, w: int, n: int, seed: int, block: int = 1) -> Partition:
    """Labels -1..n (so some pixels belong to no region, and label n is outside the
    partition), drawn per block×block tile; some regions end up empty."""
    rng = np.random.default_rng(seed)
    tiles = rng.integers(-1, n + 1, (h // block + 1, w // block + 1))
    labels = np.repeat(np.repeat(tiles, block, 0), block, 1)[:h, :w].astype(np.int32)
    return Partition(labels, n)


def partitions():
    """Odd and padded sizes, pixel-level and blocky maps, a map with one label, edge pixels."""
    out = []
    for i, (h, w) in enumerate(SIZES):
        out += [random_partition(h, w, 7, seed=i), random_partition(h, w, 5, seed=100 + i, block=4)]
    out.append(Partition(np.zeros((9, 11), np.int32), 3))  # one region + two empty
    corners = np.full((10, 12), -1, np.int16)
    corners[0, 0], corners[-1, -1], corners[0, -1], corners[-1, 0] = 0, 1, 2, 2
    out.append(Partition(corners, 4))
    return out


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo at an odd size (its grid needs padding on every side)."""
    return np.ascontiguousarray(data.coffee()[::2, ::2][:197, :293])


@pytest.fixture(scope="module")
def slic_partition(photo) -> Partition:
    return SlicMasker()(photo).partition


def test_rle_boxes_and_areas_equal_the_mask_stacks():
    empty_images = [Partition(np.zeros(shape, np.int32), 2) for shape in ((0, 5), (4, 0))]
    for p in partitions() + empty_images:
        counts, boxes, areas = rle.encode_partition(p)
        want_counts, want_boxes, want_areas = rle.encode_batch(p.masks())
        assert len(counts) == p.n
        for got, want in zip(counts, want_counts):
            assert got.dtype == np.uint32 and np.array_equal(got, want)
        assert boxes.dtype == np.float32 and np.array_equal(boxes, want_boxes)
        assert np.array_equal(areas, want_areas) and np.array_equal(p.areas(), want_areas)


def test_without_empty_closes_gaps_in_the_numbering():
    labels = np.array([[4, 4, -1, 1], [1, 7, 9, 4]], np.int16)  # 0, 2, 3, 5, 6 empty; 9 outside (n = 8)
    p = Partition(labels, 8).without_empty()
    assert p.n == 3 and p.labels.tolist() == [[1, 1, -1, 0], [0, 2, -1, 1]]  # 1, 4, 7 → 0, 1, 2
    full = Partition.from_labels(np.array([[0, 1], [2, 1]]))
    assert full.without_empty() is full


def test_regionset_from_a_partition(slic_partition):
    got = RegionSet.from_masks(slic_partition)
    want = RegionSet.from_masks(slic_partition.masks())
    assert (got.height, got.width, len(got)) == (want.height, want.width, len(want))
    assert all(np.array_equal(a, b) for a, b in zip(got.counts, want.counts))
    assert np.array_equal(got.boxes, want.boxes) and np.array_equal(got.areas, want.areas)
    assert np.array_equal(got.masks(), slic_partition.masks())


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_pooling_equals_mask_pooling_on_random_partitions(mode):
    for i, p in enumerate(partitions()):
        grid = make_grid(*p.shape, seed=i)
        got = pool_masks(grid, p, mode)
        assert got.dtype == torch.float32 and got.shape == (p.n, grid.dim)
        torch.testing.assert_close(got, pool_masks(grid, p.masks(), mode), rtol=0, atol=1e-5)
        torch.testing.assert_close(got, naive_pool(grid, p.masks(), mode), rtol=0, atol=1e-5)
        empty = p.areas() == 0
        assert torch.all(got[torch.from_numpy(empty)] == 0), "empty regions pool to zeros"


def test_pooling_equals_mask_pooling_on_slic_with_classic_features(photo, slic_partition):
    grid = build_backbone("classic")(photo)
    assert grid.pad != (0, 0, 0, 0) and grid.pad[0] != grid.pad[1]
    got = pool_masks(grid, slic_partition)
    torch.testing.assert_close(got, pool_masks(grid, slic_partition.masks()), rtol=0, atol=1e-5)
    torch.testing.assert_close(got, naive_pool(grid, slic_partition.masks()), rtol=0, atol=1e-5)


def test_pooling_a_capped_grid_at_the_original_size(photo, slic_partition):
    """The backbone capped the image: the partition is at the original size."""
    grid = build_backbone("classic", max_side=150)(photo)
    assert grid.source_size == slic_partition.shape != grid.image_size
    torch.testing.assert_close(
        pool_masks(grid, slic_partition), naive_pool(grid, slic_partition.masks()), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("max_side", [None, 150])
def test_pooling_prepared_from_the_layout_alone(photo, slic_partition, max_side):
    """The partition's pooling prepared before the features exist (from the backbone's layout,
    as lite does while the backbone runs) gives pool_masks' features; a grid of another
    layout is refused."""
    backbone = build_backbone("classic", max_side=max_side)
    grid = backbone(photo)
    prepared = PartitionPooling.of(backbone.layout(*photo.shape[:2]), slic_partition)
    assert torch.equal(prepared(grid), pool_masks(grid, slic_partition))
    with pytest.raises(InputError, match="laid out"):
        prepared(build_backbone("classic", max_side=100)(photo))


def test_pooling_refuses_a_partition_of_another_size(photo, slic_partition):
    grid = build_backbone("classic")(photo[:100])
    with pytest.raises(InputError, match="mask size"):
        pool_masks(grid, slic_partition)


@pytest.mark.parametrize("with_pose", [True, False])
def test_geometry_equals_the_mask_stacks(with_pose):
    rng = np.random.default_rng(5)
    for p in partitions():
        h, w = p.shape
        depth = rng.uniform(0.5, 4.0, (h, w)).astype(np.float32)
        depth[rng.random((h, w)) < 0.2] = 0
        camera = Camera(40.0, 40.0, w / 2, h / 2, w, h)
        pose = np.eye(4) if with_pose else None
        got, want = region_geometry(p, depth, camera, pose), region_geometry(p.masks(), depth, camera, pose)
        for name in ("centroids", "extents", "valid_fraction", "point_count"):
            assert np.array_equal(getattr(got, name), getattr(want, name), equal_nan=True), name


def test_slic_proposals_carry_the_partition_and_build_masks_on_demand(photo):
    props = SlicMasker()(photo)
    assert isinstance(props.partition, Partition) and props.regions is props.partition
    assert props.partition.n == len(props) and props._masks is None
    assert np.array_equal(props.masks, props.partition.masks())
    with pytest.raises(ValueError, match="masks or a partition"):
        MaskProposals(None, np.zeros(0, np.uint8), np.zeros(0, np.float32))


def test_slic_labels_do_not_depend_on_the_thread_count(photo):
    one, two = SlicMasker(SlicConfig(num_threads=1)), SlicMasker(SlicConfig(num_threads=2))
    for image in (photo, np.ascontiguousarray(data.astronaut()[::2, ::2])):
        assert np.array_equal(one.labels(image), two.labels(image))


class _DenseMasks:
    """The same masker, handing on the mask stack only (the pre-partition pipeline)."""

    def __init__(self, masker):
        self.masker, self.name = masker, masker.name

    def __call__(self, rgb):
        props = self.masker(rgb)
        return MaskProposals(props.masks, props.source, props.scores)


def test_lite_extraction_equals_the_mask_stack_pipeline(photo):
    lite = build_extractor("lite", announce=lambda m: None)
    dense = build_extractor("lite", announce=lambda m: None)
    dense.masker = _DenseMasks(dense.masker)
    depth = np.random.default_rng(0).uniform(0.5, 3.0, photo.shape[:2]).astype(np.float32)
    frame = Frame(
        rgb=photo, depth=depth, camera=Camera(200.0, 200.0, 146.0, 98.0, photo.shape[1], photo.shape[0]), pose=np.eye(4)
    )
    got, want = lite.extract(frame), dense.extract(frame)
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got.counts, want.counts))
    for name in ("boxes", "areas", "source", "centroids", "extents", "valid_depth", "point_count"):
        assert np.array_equal(getattr(got, name), getattr(want, name), equal_nan=True), name
    np.testing.assert_allclose(got.features, want.features, rtol=0, atol=1e-5)


def test_classic_features_are_the_ones_the_bundled_heads_learned():
    """Features of fixed photos, computed by the classic backbone the bundled heads
    (daemon/heads/pretrained/classic-32) were trained with: any change to the backbone
    that moves them beyond float rounding needs the heads retrained."""
    with np.load(Path(__file__).parent / "data" / "classic_reference.npz") as ref:
        coffee, astronaut, chelsea = data.coffee(), data.astronaut(), data.chelsea()
        images = {
            "coffee_97x61": coffee[::5, ::5][:61, :97],
            "astronaut_171x127": astronaut[::4, ::3][:127, :171],
            "chelsea_224x140": chelsea[::2, ::2][:140, :224],
            "chelsea_capped": chelsea[:250, :333],
        }
        for name, image in images.items():
            backbone = build_backbone("classic", max_side=200 if name == "chelsea_capped" else None)
            got = backbone(np.ascontiguousarray(image)).features.numpy()
            np.testing.assert_allclose(got, ref[name], rtol=1e-6, atol=1e-6, err_msg=name)


class _Failing:
    """A masker or backbone that raises."""

    name, dim, stride = "failing", 32, 14

    def __init__(self, error: Exception):
        self.error = error

    def __call__(self, rgb):
        raise self.error


def test_overlapped_masks_and_features_give_the_same_regions(photo):
    """lite computes masks and features at the same time (Extractor.overlap): the same
    regions as one after the other, and either stage's error comes through."""
    lite = build_extractor("lite", announce=lambda m: None)
    assert lite.overlap
    serial = Extractor(lite.masker, lite.backbone, profile="lite", overlap=False)
    got, want = lite.extract(photo), serial.extract(photo)
    assert np.array_equal(got.features, want.features) and np.array_equal(got.boxes, want.boxes)
    assert set(got.meta["seconds"]) == {"masks", "features", "pooling"}
    assert any(t.name.startswith("regiond-features") for t in threading.enumerate())
    broken = Extractor(lite.masker, _Failing(RuntimeError("backbone broke")), overlap=True)
    with pytest.raises(RuntimeError, match="backbone broke"):
        broken.extract(photo)
    both = Extractor(_Failing(ValueError("masker broke")), _Failing(RuntimeError("backbone broke")), overlap=True)
    with pytest.raises(MaskGenerationError, match="masker broke") as e:  # the masker's error, named
        both.extract(photo)
    assert isinstance(e.value.__cause__, ValueError)
