"""Feature normalisers: fitting, what an index records, every query kind in one space, set
queries, and indexes built before normalisation (format 1: a fixture written by that code)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from support_index import BACKENDS, DIM, image_id, open_at, region_set

from regiond.index import IndexConfig, IndexFileError, RegionIndex, SearchFilter
from regiond.index.normalising.normaliser import IDENTITY, Normaliser, fit_normaliser
from regiond.index.query.queries import probe_from_examples

FIXTURE_V1 = Path(__file__).parent / "fixtures" / "index_v1"


def skewed(n: int, seed: int = 0) -> np.ndarray:
    """Features like raw backbone ones: a large shared offset and very unequal variances."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(5.0, 0.05, DIM)
    return (rng.normal(size=(n, DIM)) * scales + 10.0).astype(np.float32)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fill_skewed(idx: RegionIndex, n: int = 30):
    for i in range(n):
        rs = region_set(i)
        rs.features = skewed(len(rs), seed=100 + i)
        idx.add(image_id(i), rs, {"parity": "odd" if i % 2 else "even"})


def brute_force(idx, q: np.ndarray, normaliser: Normaliser, ids=None) -> dict[str, float]:
    """Each image's best-region cosine after `normaliser`, computed from the stored raw features
    of `ids` (default: the images the tests add, img00000...)."""
    qn = unit(normaliser.apply(q))
    ids = ids or [image_id(i) for i in range(100) if image_id(i) in idx]
    return {iid: float((unit(normaliser.apply(idx._raw_features(iid))) @ qn).max()) for iid in ids}


def legacy_ids(idx: RegionIndex) -> list[str]:
    return list(idx.store.image_ids().values())


def test_fits_whiten_and_standardise_and_survive_bytes():
    x = skewed(4000)
    w = fit_normaliser(x, "whiten", shrinkage=0.0)
    z = w.apply(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(DIM), atol=2e-3)  # white
    shrunk = fit_normaliser(x, "whiten", shrinkage=0.1).apply(x)
    assert np.all(np.var(shrunk, 0) < 1) and np.var(shrunk, 0).max() > 0.9  # weak directions damped most
    s = fit_normaliser(x, "standardise", shrinkage=0.0)
    np.testing.assert_allclose(s.apply(x).std(0), 1, atol=1e-3)
    for n in (w, s, IDENTITY):
        back = Normaliser.from_bytes(n.to_bytes())
        assert back.digest == n.digest and back.kind == n.kind
        np.testing.assert_array_equal(back.apply(x[:5]), n.apply(x[:5]))
    assert w.digest != s.digest and IDENTITY.digest == "none"
    bad = bytearray(w.to_bytes())
    bad[-200] ^= 0xFF
    with pytest.raises(ValueError, match="normaliser"):
        Normaliser.from_bytes(bytes(bad))
    with pytest.raises(ValueError, match="16-d"):
        w.apply(np.ones((2, 5)))


def test_shipped_lite_statistics_are_what_a_fresh_fit_gives():
    """Fails when the classic features change: rebuild with `regiond index fit-normaliser --profile lite`."""
    from regiond.extraction.profiles import build_extractor
    from regiond.index.normalising.corpus import fit_for, normaliser_for, shipped_path

    ex = build_extractor("lite")
    shipped = normaliser_for(ex)
    assert shipped_path(ex.features_name).is_file() and shipped.kind == "whiten" and shipped.dim == ex.dim
    fresh = fit_for(ex)
    np.testing.assert_allclose(fresh.mean, shipped.mean, atol=1e-4)
    # eigenvector signs may flip between machines: compare the metric W·Wᵀ they define
    np.testing.assert_allclose(
        fresh.transform @ fresh.transform.T, shipped.transform @ shipped.transform.T, rtol=1e-3, atol=1e-3
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_query_kind_scores_in_the_normalised_space(tmp_path, backend):
    norm = fit_normaliser(skewed(3000, seed=9), "whiten")
    with open_at(tmp_path, backend, normaliser=norm) as idx:
        fill_skewed(idx)
        assert idx.normaliser.digest == norm.digest and "whiten" in idx.normaliser_note()
        q = skewed(1, seed=77)[0]
        expect = brute_force(idx, q, norm)
        raw = brute_force(idx, q, IDENTITY)
        assert min(raw.values()) > 0.95 and np.ptp(list(expect.values())) > 0.3  # raw cosine saturates
        hits = idx.search(q, k=10)
        want = sorted(expect, key=lambda k: -expect[k])[:10]
        assert [h.image_id for h in hits] == want
        assert [h.score for h in hits] == pytest.approx([expect[k] for k in want], abs=1e-5)
        assert idx.score_images(q) == pytest.approx(expect, abs=1e-5)
        # filtered (exact over a few images) and FAISS paths agree
        sub = idx.search(q, k=30, filter=SearchFilter(metadata={"parity": "even"}))
        assert [h.score for h in sub] == pytest.approx(
            sorted((v for k, v in expect.items() if int(k[3:]) % 2 == 0), reverse=True), abs=1e-5
        )
        # a stored region found by its raw vector scores 1: queries and regions share the map
        v = idx.region_vector(image_id(4), 1)
        assert idx.search(v, k=1)[0].regions[0].score == pytest.approx(1.0, abs=1e-5)
        # a linear probe acts on prepared vectors: weights = prepared query reproduce the scores
        lin = idx.search(idx.prepare(q[None])[0] * 2, k=10, bias=1.0, normalize=False)
        assert [h.score for h in lin] == pytest.approx([2 * expect[k] + 1 for k in want], abs=1e-4)
        # probe trained from examples, in the same space, finds regions planted near one point
        centre = skewed(1, seed=5)[0]
        rng = np.random.default_rng(1)
        for i in range(30, 38):
            rs = region_set(i)
            rs.features = skewed(len(rs), seed=200 + i)
            rs.features[0] = centre + rng.normal(size=DIM).astype(np.float32) * 0.01
            idx.add(image_id(i), rs)
        probe = probe_from_examples(idx, [(image_id(30), 0), (image_id(31), 0)], negatives=200)
        found = idx.search(probe.weights, k=8, bias=probe.bias, normalize=False)
        assert {h.image_id for h in found} == {image_id(i) for i in range(30, 38)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_queries_score_the_weighted_mean_of_best_matches(tmp_path, backend):
    norm = fit_normaliser(skewed(3000, seed=9), "whiten")
    with open_at(tmp_path, backend, normaliser=norm) as idx:
        fill_skewed(idx)
        qs, w = skewed(3, seed=55), np.array([1.0, 2.0, 1.0])
        per_row = [brute_force(idx, q, norm) for q in qs]
        expect = {k: sum(wi * r[k] for wi, r in zip(w / w.sum(), per_row)) for k in per_row[0]}
        want = sorted(expect, key=lambda k: -expect[k])
        assert idx.score_images(qs, weights=w) == pytest.approx(expect, abs=1e-5)
        hits = idx.search(qs, k=5, weights=w, regions_per_image=2, exclude_image_ids=[want[0]])
        assert [h.image_id for h in hits] == want[1:6]
        assert [h.score for h in hits] == pytest.approx([expect[k] for k in want[1:6]], abs=1e-5)
        assert len(hits[0].regions) == 2
        only_odd = idx.search(qs, k=30, weights=w, filter=SearchFilter(metadata={"parity": "odd"}))
        assert [h.image_id for h in only_odd] == [k for k in want if int(k[3:]) % 2][:30]
        with pytest.raises(Exception, match="weights"):
            idx.search(qs, k=3, weights=[1.0, -1.0, 1.0])


def test_an_index_keeps_its_normaliser_and_a_stale_snapshot_is_rebuilt(tmp_path):
    a = fit_normaliser(skewed(3000, seed=1), "whiten")
    b = fit_normaliser(skewed(3000, seed=2), "standardise")
    with RegionIndex(tmp_path, dim=DIM, normaliser=a) as idx:
        fill_skewed(idx, 12)
    with RegionIndex(tmp_path, dim=DIM, normaliser=b) as idx:  # recorded one wins: no silent switch
        assert idx.normaliser.digest == a.digest
        idx.renormalise(b)
    q = skewed(1, seed=3)[0]
    with RegionIndex(tmp_path, dim=DIM) as idx:  # snapshot of b reused
        assert idx.normaliser.digest == b.digest and idx.store.format == "regiond.index/2"
        assert idx.score_images(q) == pytest.approx(brute_force(idx, q, b), abs=1e-5)
        idx.store.set_normaliser(a)  # as if a crash came between recording and rebuilding
    with RegionIndex(tmp_path, dim=DIM) as idx:  # the snapshot holds b's vectors: rebuilt, not reused
        assert idx.normaliser.digest == a.digest
        assert idx.score_images(q) == pytest.approx(brute_force(idx, q, a), abs=1e-5)


def test_a_milvus_collection_keeps_its_normaliser_in_milvus(tmp_path):
    """The normaliser is stored in the collection (in chunks: a 600-d whitening is 1.4 MB), so
    every daemon that opens it maps queries with exactly that one, whatever it would fit."""
    big = fit_normaliser(np.random.default_rng(0).normal(size=(2000, 600)).astype(np.float32), "whiten")
    open_at(tmp_path, "milvus-lite", dim=600, normaliser=big).close()
    with open_at(tmp_path, "milvus-lite", dim=600, normaliser=IDENTITY) as idx:
        assert idx.normaliser.digest == big.digest and idx.normaliser_note() == big.describe()
        np.testing.assert_array_equal(idx.normaliser.transform, big.transform)


def test_a_damaged_or_unknown_index_is_refused_with_a_clear_message(tmp_path):
    with RegionIndex(tmp_path, dim=DIM, normaliser=fit_normaliser(skewed(500), "whiten")) as idx:
        fill_skewed(idx, 3)
    con = sqlite3.connect(tmp_path / "regions.sqlite")
    data = bytearray(con.execute("SELECT data FROM normaliser").fetchone()[0])
    data[-100] ^= 0xFF
    con.execute("UPDATE normaliser SET data = ?", (bytes(data),))
    con.commit()
    with pytest.raises(IndexFileError, match="normaliser is missing or damaged.*renormalise"):
        RegionIndex(tmp_path, dim=DIM)
    con.execute("UPDATE meta SET value = 'regiond.index/3' WHERE key = 'format'")
    con.commit()
    con.close()
    with pytest.raises(IndexFileError, match="format 'regiond.index/3'"):
        RegionIndex(tmp_path, dim=DIM)


@pytest.fixture
def index_v1(tmp_path) -> Path:
    d = tmp_path / "data" / "index"
    shutil.copytree(FIXTURE_V1, d)
    return d


def test_an_index_built_before_normalisation_keeps_its_raw_scores(index_v1, caplog):
    """tests/fixtures/index_v1 was written by the code before normalisation (make_index_v1.py)."""
    with RegionIndex(index_v1, dim=32, features="lite/classic/mean", normaliser=lambda: pytest.fail("fitted")) as idx:
        assert idx.store.format == "regiond.index/1" and idx.store.legacy and len(idx) == 8
        assert "built before feature normalisation" in caplog.text and "regiond index renormalise" in caplog.text
        assert idx.normaliser_note().startswith("none (built before feature normalisation")
        q = idx.region_vector(idx.store.image_ids()[3], 2)
        assert idx.score_images(q) == pytest.approx(
            brute_force(idx, q, IDENTITY, legacy_ids(idx)), abs=1e-5
        )  # as it always was
        rs = region_set(1, dim=32)
        idx.add("new.png", rs)  # still writable, still format 1 (old code can keep opening it)
        assert idx.search(rs.features[0], k=1)[0].image_id == "new.png"
    with RegionIndex(index_v1) as idx:
        assert idx.store.format == "regiond.index/1" and len(idx) == 9


def test_regiond_index_renormalise_upgrades_an_old_index_in_place(index_v1, capsys):
    from regiond.cli import main
    from regiond.extraction.profiles import build_extractor
    from regiond.index.normalising.corpus import normaliser_for

    data_dir = index_v1.parent
    assert main(["index", "info", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "regiond.index/1" in out and "8 images" in out and "built before feature normalisation" in out
    with RegionIndex(index_v1) as idx:
        raw = idx.store.features_of(1)
    assert main(["index", "renormalise", str(data_dir)]) == 0  # the index's own profile: lite
    out = capsys.readouterr().out
    assert "was  none" in out and "now  whiten" in out
    lite = normaliser_for(build_extractor("lite"))
    with RegionIndex(index_v1) as idx:
        assert idx.store.format == "regiond.index/2" and idx.normaliser.digest == lite.digest
        np.testing.assert_array_equal(idx.store.features_of(1), raw)  # features untouched, nothing re-extracted
        q = raw[0]
        assert idx.score_images(q) == pytest.approx(brute_force(idx, q, lite, legacy_ids(idx)), abs=1e-5)
    assert main(["index", "info", str(tmp_missing := data_dir / "nope")]) == 1
    assert "no region index" in capsys.readouterr().err and not tmp_missing.exists()


def test_dot_metric_and_identity_keep_the_old_raw_scores(tmp_path):
    with RegionIndex(tmp_path, dim=DIM, config=IndexConfig(metric="dot")) as idx:
        fill_skewed(idx, 5)
        assert idx.normaliser.digest == IDENTITY.digest and idx.normaliser_note() == "none (raw features)"
        q = skewed(1, seed=4)[0]
        best = max(float((idx.store.features_of(k) @ q).max()) for k in idx.store.image_ids())
        assert idx.search(q, k=1)[0].score == pytest.approx(best, rel=1e-5)


def test_tiny_profile_gets_a_normaliser_fitted_on_the_corpus(tmp_path, monkeypatch):
    """DINOv2 profiles have no shipped statistics: a new index fits them (tiny random weights
    show only the mechanism, not retrieval quality)."""
    from regiond.extraction.profiles import build_extractor
    from regiond.index.normalising import corpus

    monkeypatch.setattr(corpus, "CORPUS_IMAGES", 12)
    ex = build_extractor("tiny")
    assert not corpus.shipped_path(ex.features_name).exists()
    with RegionIndex(
        tmp_path, dim=ex.dim, features=ex.features_name, normaliser=lambda: corpus.normaliser_for(ex)
    ) as idx:
        assert idx.normaliser.kind == "whiten" and "12 generated images" in idx.normaliser.fitted_on
        assert "tiny/dinov2_tiny/mean" in idx.normaliser_note()
