"""The region index on both backends (FAISS over SQLite, Milvus Lite): add, search, filters,
remove, reopen, index kinds, probes, searches while adding, bad input; and each backend's own
refusals (foreign files, another extractor's collection, a second process)."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest
from support_index import BACKENDS, DIM, image_id, location, open_at, region_set

from regiond.core.errors import InputError
from regiond.index import IndexConfig, IndexFileError, RegionIndex, SearchFilter
from regiond.index.query.queries import probe_from_examples, train_probe

backends = pytest.mark.parametrize("backend", BACKENDS)


def fill(idx, n: int, start: int = 0):
    for i in range(start, start + n):
        idx.add(image_id(i), region_set(i), {"parity": "odd" if i % 2 else "even"})


@backends
def test_add_search_finds_each_region_with_its_mask(tmp_path, backend):
    with open_at(tmp_path, backend) as idx:
        fill(idx, 30)
        assert len(idx) == 30 and idx.num_regions == sum(len(region_set(i)) for i in range(30))
        rs = region_set(7)
        hits = idx.search(rs.features[2], k=5, regions_per_image=2)
        assert hits[0].image_id == image_id(7)
        top = hits[0].regions[0]
        assert top.region_id == 2 and top.score == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_array_equal(top.counts, rs.counts[2])
        np.testing.assert_array_equal(top.box, rs.boxes[2])
        assert hits[0].metadata == {"parity": "odd"}
        assert [h.score for h in hits] == sorted([h.score for h in hits], reverse=True)
        assert len({h.image_id for h in hits}) == 5


@backends
def test_ranking_is_by_best_region_and_matches_brute_force(tmp_path, backend):
    with open_at(tmp_path, backend) as idx:
        fill(idx, 40)
        q = np.random.default_rng(5).normal(size=DIM).astype(np.float32)
        qn = q / np.linalg.norm(q)
        expect = {}
        for i in range(40):
            f = region_set(i).features
            expect[image_id(i)] = float((f / np.linalg.norm(f, axis=1, keepdims=True) @ qn).max())
        want = sorted(expect, key=lambda k: -expect[k])[:10]
        hits = idx.search(q, k=10)
        assert [h.image_id for h in hits] == want
        assert [h.score for h in hits] == pytest.approx([expect[k] for k in want], abs=1e-5)
        scores = idx.score_images(q)
        assert set(scores) == set(expect)
        assert scores == pytest.approx(expect, abs=1e-5)


@backends
def test_dot_metric_uses_raw_inner_product(tmp_path, backend):
    with open_at(tmp_path, backend, config=IndexConfig(metric="dot")) as idx:
        fill(idx, 5)
        q = region_set(3).features[0]
        best = max((float((region_set(i).features @ q).max()), image_id(i)) for i in range(5))
        hit = idx.search(q, k=1)[0]
        assert (hit.score, hit.image_id) == (pytest.approx(best[0], rel=1e-5), best[1])


@backends
def test_filters_by_prefix_metadata_and_exclusion(tmp_path, backend):
    with open_at(tmp_path, backend) as idx:
        fill(idx, 30)
        q = region_set(3).features[0]
        hits = idx.search(q, k=30, filter=SearchFilter(metadata={"parity": "even"}))
        assert hits and all(int(h.image_id[3:]) % 2 == 0 for h in hits) and len(hits) == 15
        hits = idx.search(q, k=30, filter=SearchFilter(image_id_prefix="img0001"))
        assert sorted(h.image_id for h in hits) == [image_id(i) for i in range(10, 20)]
        hits = idx.search(q, k=3, exclude_image_ids=[image_id(3)])
        assert image_id(3) not in [h.image_id for h in hits] and len(hits) == 3
        assert idx.search(q, k=3, filter=SearchFilter(metadata={"parity": "none"})) == []
        idx.add('odd "id" \\ é', region_set(99), {"k\\q": 'v\\"'})  # quotes and backslashes stay data
        hits = idx.search(q, k=5, filter=SearchFilter(image_id_prefix='odd "', metadata={"k\\q": 'v\\"'}))
        assert [h.image_id for h in hits] == ['odd "id" \\ é']
        assert image_id(3) not in [h.image_id for h in idx.search(q, k=40, exclude_image_ids=['x"]', image_id(3)])]


@backends
def test_remove_and_reopen_keep_state(tmp_path, backend):
    with open_at(tmp_path, backend) as idx:
        fill(idx, 12)
        assert idx.remove(image_id(4)) and not idx.remove("nope")
        assert (len(idx), idx.num_regions) == (11, sum(len(region_set(i)) for i in range(12) if i != 4))
        assert image_id(4) not in [h.image_id for h in idx.search(region_set(4).features[0], k=12)]
        assert image_id(4) not in idx and image_id(5) in idx
    with open_at(tmp_path, backend) as idx:  # FAISS: from the snapshot written at close
        assert len(idx) == 11 and idx.num_regions == sum(len(region_set(i)) for i in range(12) if i != 4)
        assert idx.search(region_set(9).features[1], k=1)[0].image_id == image_id(9)
        fill(idx, 3, start=12)


def test_faiss_is_a_cache_rebuilt_from_sqlite(tmp_path):
    with RegionIndex(tmp_path, dim=DIM) as idx:
        fill(idx, 14)
        idx.remove(image_id(4))
        assert (len(idx), idx.num_regions) == (idx.store.count_images(), idx.store.count_regions())
        assert idx.vectors.ntotal == idx.num_regions
    (tmp_path / "faiss.snapshot").unlink()  # the FAISS index is a cache: rebuilt from SQLite
    with RegionIndex(tmp_path, dim=DIM) as idx:
        assert len(idx) == 13 and idx.vectors.ntotal == idx.num_regions
        assert idx.search(region_set(13).features[0], k=1)[0].image_id == image_id(13)


@backends
def test_duplicate_ids_error_skip_or_replace(tmp_path, backend):
    with open_at(tmp_path, backend) as idx:
        fill(idx, 2)
        with pytest.raises(InputError) as e:
            idx.add(image_id(0), region_set(0))
        assert e.value.field == "image_id"
        assert not idx.add(image_id(0), region_set(0), on_exists="skip").added
        big, small = region_set(50, n=7), region_set(51, n=3)
        idx.add(image_id(0), big, on_exists="replace")
        assert len(idx) == 2 and idx.num_regions == 7 + len(region_set(1))
        idx.add(image_id(0), small, on_exists="replace")  # fewer regions: none of the old ones stay
        assert len(idx) == 2 and idx.num_regions == 3 + len(region_set(1))
        hit = idx.search(small.features[2], k=1, regions_per_image=5)[0]
        assert hit.image_id == image_id(0) and sorted(r.region_id for r in hit.regions) == [0, 1, 2]
        with pytest.raises(InputError, match="regions 0..2"):
            idx.region_vector(image_id(0), 5)


@pytest.mark.parametrize(
    "config",
    [
        IndexConfig(kind="hnsw", hnsw_m=8),
        IndexConfig(kind="ivfpq", nlist=4, pq_m=4, pq_nbits=4, train_size=200, nprobe=4),
    ],
    ids=["hnsw", "ivfpq"],
)
def test_faiss_approximate_kinds_train_remove_and_reopen(tmp_path, config):
    with RegionIndex(tmp_path, dim=DIM, config=config) as idx:
        fill(idx, 150)  # > 39·16 regions: IVF-PQ trains on a sample partway through
        assert idx.vectors.trained
        assert idx.search(region_set(21).features[1], k=1)[0].image_id == image_id(21)
        idx.remove(image_id(21))
        assert image_id(21) not in [h.image_id for h in idx.search(region_set(21).features[1], k=5)]
    with RegionIndex(tmp_path, dim=DIM, config=config) as idx:
        assert idx.vectors.trained and len(idx) == 149
        assert image_id(21) not in [h.image_id for h in idx.search(region_set(21).features[1], k=5)]
        assert idx.search(region_set(90).features[0], k=1)[0].image_id == image_id(90)
    # another kind over the same data: the snapshot is not reused, FAISS is rebuilt
    with RegionIndex(tmp_path, dim=DIM, config=IndexConfig()) as idx:
        assert idx.config.kind == "flat" and idx.vectors.ntotal == idx.num_regions


def test_milvus_hnsw_removes_reopens_and_lite_refuses_pq(tmp_path):
    config = IndexConfig(kind="hnsw", hnsw_m=8, ef_search=32)
    with open_at(tmp_path, "milvus-lite", config=config) as idx:
        fill(idx, 150)
        assert idx.index_params["index_type"] == "HNSW"
        assert idx.search(region_set(21).features[1], k=1)[0].image_id == image_id(21)
        idx.remove(image_id(21))
        assert image_id(21) not in [h.image_id for h in idx.search(region_set(21).features[1], k=5)]
    with open_at(tmp_path, "milvus-lite") as idx:  # the kind is the collection's, recorded with it
        assert idx.config.kind == "hnsw" and idx.config.hnsw_m == 8 and len(idx) == 149
        assert idx.search(region_set(90).features[0], k=1)[0].image_id == image_id(90)
    with pytest.raises(ValueError, match="no product-quantised indexes"):
        open_at(tmp_path, "milvus-lite", "pq", config=IndexConfig(kind="ivfpq"))
    assert not (tmp_path / "pq").exists() or not any((tmp_path / "pq").rglob("*.parquet"))


@backends
def test_probe_trained_from_examples_finds_the_class(tmp_path, backend):
    rng = np.random.default_rng(0)
    centre = rng.normal(size=DIM).astype(np.float32) * 3
    with open_at(tmp_path, backend) as idx:
        fill(idx, 40)
        for i in range(40, 50):  # images holding one region near `centre`
            rs = region_set(i)
            rs.features[0] = centre + rng.normal(size=DIM).astype(np.float32) * 0.3
            idx.add(image_id(i), rs)
        probe = probe_from_examples(idx, [(image_id(40), 0), (image_id(41), 0), (image_id(42), 0)], negatives=100)
        hits = idx.search(probe.weights, k=10, bias=probe.bias, normalize=False)
        assert {h.image_id for h in hits} == {image_id(i) for i in range(40, 50)}
        assert all(h.regions[0].region_id == 0 for h in hits)
        with pytest.raises(InputError, match="positives"):
            train_probe(np.zeros((0, DIM)), np.ones((3, DIM)), idx.prepare)


@backends
def test_search_while_adding_from_threads(tmp_path, backend):
    with open_at(tmp_path, backend) as idx:
        fill(idx, 20)
        errors, done = [], threading.Event()

        def searcher():
            try:
                while not done.is_set():
                    hits = idx.search(region_set(5).features[0], k=3)
                    assert hits[0].image_id == image_id(5)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=searcher) for _ in range(3)]
        for t in threads:
            t.start()
        fill(idx, 100, start=20)
        done.set()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(idx) == 120 and idx.num_regions == sum(len(region_set(i)) for i in range(120))


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda idx: idx.search(np.ones(DIM + 1), k=1), "vector"),
        (lambda idx: idx.search(np.full(DIM, np.nan), k=1), "vector"),
        (lambda idx: idx.search(np.zeros(DIM), k=1), "vector"),
        (lambda idx: idx.search(np.ones(DIM), k=0), "k"),
        (lambda idx: idx.region_vector("missing", 0), "image_id"),
        (lambda idx: idx.region_vector(image_id(0), 99), "region_id"),
        (lambda idx: idx.add("", region_set(1)), "image_id"),
        (lambda idx: idx.add("x", region_set(1, dim=DIM + 2)), "features"),
        (lambda idx: idx.add("x", region_set(1), {"k": 3}), "metadata"),
        (lambda idx: idx.search(np.ones(DIM), filter=SearchFilter(metadata={'a"b': "1"})), "filter.metadata"),
    ],
)
@backends
def test_bad_input_names_the_field(tmp_path, backend, call, field):
    with open_at(tmp_path, backend) as idx:
        fill(idx, 2)
        with pytest.raises(InputError) as e:
            call(idx)
        assert e.value.field == field
        assert len(idx) == 2  # nothing lost


def test_foreign_and_damaged_files_are_refused_untouched(tmp_path):
    d = tmp_path / "notours"
    d.mkdir()
    (d / "regions.sqlite").write_bytes(b"hello, I am a text file\n" * 10)
    before = (d / "regions.sqlite").read_bytes()
    with pytest.raises(IndexFileError, match="not a regiond index"):
        RegionIndex(d, dim=DIM)
    assert (d / "regions.sqlite").read_bytes() == before

    d2 = tmp_path / "othersqlite"
    d2.mkdir()
    con = sqlite3.connect(d2 / "regions.sqlite")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = (d2 / "regions.sqlite").read_bytes()
    with pytest.raises(IndexFileError, match="not a regiond index"):
        RegionIndex(d2, dim=DIM)
    assert (d2 / "regions.sqlite").read_bytes() == before

    d3 = tmp_path / "ok"
    with RegionIndex(d3, dim=DIM) as idx:
        fill(idx, 3)
    with pytest.raises(IndexFileError, match="8-d"):
        RegionIndex(d3, dim=8)
    d4 = tmp_path / "features"
    RegionIndex(d4, dim=DIM, features="lite/classic/mean").close()
    with pytest.raises(IndexFileError, match="holds lite/classic/mean features"):
        RegionIndex(d4, dim=DIM, features="balanced/dinov2_vitb14/mean")
    RegionIndex(d4, dim=DIM, features="lite/classic/mean").close()
    snap = d3 / "faiss.snapshot"
    data = bytearray(snap.read_bytes())
    data[-5] ^= 0xFF
    snap.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="checksum"):
        RegionIndex(d3, dim=DIM)
    assert snap.read_bytes() == bytes(data)
    snap.write_bytes(b"garbage")
    with pytest.raises(IndexFileError, match="not a regiond FAISS snapshot"):
        RegionIndex(d3, dim=DIM)


@backends
def test_second_process_cannot_open_the_same_index(tmp_path, backend):
    import subprocess
    import sys

    with open_at(tmp_path, backend):
        code = f"from regiond.index import open_index\nopen_index({location(tmp_path, backend)!r}, dim={DIM})"
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode != 0 and "is open in another process" in r.stderr, r.stderr[-500:]


def test_a_milvus_collection_refuses_another_extractor(tmp_path):
    open_at(tmp_path, "milvus-lite", features="lite/classic/mean").close()
    with pytest.raises(IndexFileError, match="holds lite/classic/mean features"):
        open_at(tmp_path, "milvus-lite", features="balanced/dinov2_vitb14/mean")
    with pytest.raises(IndexFileError, match="holds 16-d features"):
        open_at(tmp_path, "milvus-lite", dim=8, features="lite/classic/mean")
    with open_at(tmp_path, "milvus-lite", features="lite/classic/mean") as idx:
        assert idx.features == "lite/classic/mean" and idx.dim == DIM


def test_settings_persist_in_index_json(tmp_path):
    import json

    with RegionIndex(tmp_path, dim=DIM, config=IndexConfig(kind="hnsw", hnsw_m=8)) as idx:
        fill(idx, 5)
    assert json.loads((tmp_path / "index.json").read_text())["kind"] == "hnsw"
    with RegionIndex(tmp_path, dim=DIM) as idx:  # no config given: the stored one
        assert idx.config.kind == "hnsw" and idx.config.hnsw_m == 8
    (tmp_path / "index.json").write_text('{"kind": "annoy"}')
    with pytest.raises(IndexFileError, match="bad index configuration"):
        RegionIndex(tmp_path, dim=DIM)


def test_damaged_database_is_refused_untouched(tmp_path):
    with RegionIndex(tmp_path, dim=DIM) as idx:
        fill(idx, 60)
    db = tmp_path / "regions.sqlite"
    data = bytearray(db.read_bytes())
    blob = region_set(30).features.astype("<f4").tobytes()
    at = bytes(data).find(blob)
    assert at > 0
    data[at + 20 : at + 24] = b"\xa5" * 4  # bit rot inside one image's vectors: SQLite cannot tell
    db.write_bytes(bytes(data))
    (tmp_path / "faiss.snapshot").unlink()  # the rebuild has to read every page
    with pytest.raises(IndexFileError, match="damaged .*checksum"):
        RegionIndex(tmp_path, dim=DIM)
    assert db.read_bytes() == bytes(data)


def test_milvus_locations_parse_and_pick_an_index_by_scale():
    from regiond.index.milvus.schema import HNSW_MAX_REGIONS, MilvusLocation, after_prefix, filter_expr

    loc = MilvusLocation.parse("milvus://db.example:19530/photos?expected_regions=2.5e9&db=prod")
    assert (loc.uri, loc.collection, loc.db, loc.expected_regions) == (
        "http://db.example:19530",
        "photos",
        "prod",
        2_500_000_000,
    )
    big = loc.config(1024, None)
    assert big.kind == "ivfpq" and 1024 % big.pq_m == 0 and big.nlist == 65536
    assert MilvusLocation.parse(f"milvus://h:1?expected_regions={HNSW_MAX_REGIONS}").config(384, None).kind == "hnsw"
    lite = MilvusLocation.parse("milvus-lite:/data/idx?collection=c1&expected_regions=1e12")
    assert (lite.uri, lite.lite_path, lite.collection) == (None, "/data/idx", "c1")
    assert lite.config(64, None).kind == "hnsw"  # Milvus Lite has no PQ
    assert MilvusLocation.parse("milvus://h:1?index=flat").config(8, IndexConfig(kind="hnsw")).kind == "hnsw"
    for bad, msg in [
        ("milvus://nohost", "HOST:PORT"),
        ("milvus://h:1?speed=fast", "unknown options"),
        ("milvus://h:1?index=annoy", "one of auto"),
        ("milvus-lite:", "needs a directory"),
    ]:
        with pytest.raises(ValueError, match=msg):
            MilvusLocation.parse(bad)
    assert after_prefix("img0001") == "img0002" and after_prefix("") is None
    assert filter_expr("a", {"k": 'v"'}, ["x"]) == (
        'region >= 0 and image_id >= "a" and image_id < "b" and metadata["k"] == "v\\"" and image_id not in ["x"]'
    )
