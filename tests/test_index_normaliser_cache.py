"""Fitted normalisers cached between starts (index.normalising.fitted) and the checkpoint
digests their key holds (extraction.fingerprint): a real tiny DINOv2 saved in the official
layout, fitted on a short corpus."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import pytest

from regiond.extraction import Extractor
from regiond.extraction.fingerprint import MEMO_NAME, file_sha256, user_cache_dir
from regiond.features import build_backbone
from regiond.features.dinov2 import create_vit, save_official_checkpoint
from regiond.index.normalising import corpus
from regiond.index.normalising.fitted import NormaliserCache
from regiond.masks import build_masker

IMAGES = 6


@pytest.fixture
def short_corpus(monkeypatch):
    monkeypatch.setattr(corpus, "CORPUS_IMAGES", IMAGES)


def tiny_extractor(checkpoint) -> Extractor:
    """SLIC + a tiny DINOv2 loaded from `checkpoint`, as build_extractor makes one with weights."""
    backbone = build_backbone("dinov2_tiny", checkpoint=checkpoint)
    return Extractor(build_masker("slic"), backbone, profile="tiny", weights={"backbone": str(checkpoint)})


def test_user_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "regiond"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert user_cache_dir() == user_cache_dir().home() / ".cache" / "regiond"


def test_checkpoint_digest_is_memoised_by_size_and_mtime(tmp_path, caplog):
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"a" * 3_000_000)
    memo_dir = tmp_path / "memo"
    digest = file_sha256(ckpt, memo_dir)
    assert digest == "sha256:" + hashlib.sha256(ckpt.read_bytes()).hexdigest()
    memo = json.loads((memo_dir / MEMO_NAME).read_text())
    assert memo[str(ckpt.resolve())]["sha256"] == digest
    # the memo answers while size and mtime hold: a planted value shows it is what was read
    memo[str(ckpt.resolve())]["sha256"] = "sha256:remembered"
    (memo_dir / MEMO_NAME).write_text(json.dumps(memo))
    assert file_sha256(ckpt, memo_dir) == "sha256:remembered"
    # same size, new content, new mtime: hashed again
    ckpt.write_bytes(b"b" * 3_000_000)
    st = ckpt.stat()
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert file_sha256(ckpt, memo_dir) == "sha256:" + hashlib.sha256(ckpt.read_bytes()).hexdigest()
    # a damaged memo costs a hash and a warning, never an error
    (memo_dir / MEMO_NAME).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert file_sha256(ckpt, memo_dir) == "sha256:" + hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert "unreadable" in caplog.text
    assert json.loads((memo_dir / MEMO_NAME).read_text())  # rewritten


def test_fit_is_cached_per_checkpoint_content(tmp_path, short_corpus, caplog):
    ckpt = save_official_checkpoint(create_vit("dinov2_tiny", seed=0), tmp_path / "dinov2_tiny.pth")
    ex = tiny_extractor(ckpt)
    cache = NormaliserCache(tmp_path / "cache")
    with caplog.at_level(logging.INFO):
        first = corpus.normaliser_for(ex, cache=cache)
    assert "fitting a whiten feature normaliser" in caplog.text and f"{IMAGES} generated images" in first.fitted_on
    recipe = cache.recipe(ex, "whiten", first.shrinkage, corpus.corpus_recipe())
    assert recipe["backbone_weights"] == "sha256:" + hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert recipe["corpus"]["images"] == IMAGES and recipe["features"] == "tiny/dinov2_tiny/mean"
    assert cache.path_for(recipe).is_file()

    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = corpus.normaliser_for(ex, cache=cache)
    assert "reusing the cached feature normaliser" in caplog.text and "fitting" not in caplog.text
    assert again.digest == first.digest

    # other weights under the same file name: another key, fitted anew
    save_official_checkpoint(create_vit("dinov2_tiny", seed=1), ckpt)
    other = tiny_extractor(ckpt)
    other_recipe = cache.recipe(other, "whiten", first.shrinkage, corpus.corpus_recipe())
    assert cache.path_for(other_recipe) != cache.path_for(recipe)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        refit = corpus.normaliser_for(other, cache=cache)
    assert "fitting a whiten feature normaliser" in caplog.text and refit.digest != first.digest
    assert len(list(cache.dir.glob("*.npz"))) == 2


def test_damaged_or_unwritable_cache_warns_and_fits(tmp_path, short_corpus, caplog):
    ex = tiny_extractor(save_official_checkpoint(create_vit("dinov2_tiny"), tmp_path / "dinov2_tiny.pth"))
    cache = NormaliserCache(tmp_path / "cache")
    fitted = corpus.normaliser_for(ex, cache=cache)
    (path,) = cache.dir.glob("*.npz")
    for damage in (b"", b"PK\x03\x04 not a zip", path.read_bytes()[:-40]):
        path.write_bytes(damage)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert corpus.normaliser_for(ex, cache=cache).digest == fitted.digest
        assert "the cached normaliser is unusable, fitting it again" in caplog.text
        assert "cached in" in caplog.text  # and written back whole
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache directory would be")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert corpus.normaliser_for(ex, cache=NormaliserCache(blocked / "normalisers")).digest == fitted.digest
    assert "cannot cache the fitted normaliser" in caplog.text
