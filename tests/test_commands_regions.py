"""`regiond regions`, `regiond models` and `regiond demo` on real photos and real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from regiond.cli import main
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC, RegionSet
from regiond.core.viz import overlay_regions

REPO = Path(__file__).resolve().parents[1]


def regiond(*args, env_weights: Path):
    env = dict(os.environ, REGIOND_WEIGHTS=str(env_weights))
    return subprocess.run(
        [sys.executable, "-m", "regiond", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("images")
    photo = data.coffee()[::2, ::2]  # 200×300 real photo
    Image.fromarray(photo).save(d / "coffee.png")
    gray16 = (photo[:, :, 1].astype(np.uint16) << 8) | 0x7F
    Image.fromarray(gray16).save(d / "coffee16.png")  # 16-bit grayscale PNG
    Image.fromarray(data.astronaut()[::4, ::4]).save(d / "astronaut.jpg", quality=90)
    (d / "broken.png").write_text("not an image")
    return {p.stem: p for p in d.iterdir()}


def test_regions_lite_on_real_photos_with_one_bad_file(tmp_path, images):
    out = tmp_path / "out"
    r = regiond(
        "regions",
        images["coffee"],
        images["broken"],
        images["coffee16"],
        tmp_path / "absent.png",
        images["astronaut"],
        "--profile",
        "lite",
        "--out",
        out,
        env_weights=tmp_path / "no-weights",
    )
    assert r.returncode == 1, r.stderr  # two images failed ...
    assert "broken.png: image:" in r.stderr and "cannot read as an image" in r.stderr
    assert "absent.png: image:" in r.stderr
    assert "2 of 5 images failed" in r.stderr
    assert "regions:" in r.stderr and "image" in r.stderr  # the tqdm bar (several images)
    for stem, (h, w) in {"coffee": (200, 300), "coffee16": (200, 300), "astronaut": (128, 128)}.items():
        rs = RegionSet.load(out / f"{stem}.regions.npz")  # ... the others were all written
        assert (rs.height, rs.width) == (h, w)
        assert len(rs) > 20 and (rs.source == SOURCE_SLIC).all()
        assert rs.features is not None and rs.features.shape[0] == len(rs)
        assert rs.meta["profile"] == "lite"
        overlay = np.asarray(Image.open(out / f"{stem}.overlay.png"))
        assert overlay.shape == (h, w, 3)
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(f"{stem}:"))
        assert f"{len(rs)} regions" in line and "coverage 100.0%" in line
        assert "masks" in line and "features" in line and "pooling" in line and " ms" in line
    assert not (out / "broken.regions.npz").exists()


def test_regions_with_heads_write_label_maps_and_pictures(tmp_path, images):
    """`regiond regions IMAGE --heads bundled`: the scene labeller's labels as ExtractRegions
    gives them (segment head on the image), a label PNG, a label picture, and the word that the
    bundled heads are a demonstration."""
    from regiond.core.label_spaces import read_label_png
    from regiond.extraction.profiles import build_extractor
    from regiond.heads.serving import load_serving_heads

    out = tmp_path / "out"
    r = regiond(
        "regions", images["coffee"], "--heads", "bundled", "--profile", "lite", "--out", out, env_weights=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "heads segment: trained on 6 synthetic rooms" in r.stdout
    assert "note: these heads were trained on generated data only" in r.stdout
    labels = read_label_png(out / "coffee.labels.png")
    rs = RegionSet.load(out / "coffee.regions.npz")
    assert labels.shape == (200, 300) and rs.labels is not None and len(rs.labels) == len(rs)
    labeler = load_serving_heads("bundled", build_extractor("lite")).scene
    assert set(np.unique(labels)) <= set(labeler.meta.class_ids)  # SLIC covers every pixel: none unlabelled
    for k, mask in enumerate(rs.masks()):  # one region, one class: the map paints its label
        assert (labels[mask] == rs.labels[k]).all()
    shares = next(ln for ln in r.stdout.splitlines() if ln.strip().startswith("labels:"))
    top = labeler.meta.names()[int(np.bincount(labels.ravel()).argmax())]
    assert shares.strip().startswith(f"labels: {top} ")
    picture = np.asarray(Image.open(out / "coffee.labels_color.png").convert("RGB"))
    assert picture.shape[0] > 200 and picture.shape[1] == 300  # the map with a legend under it
    assert "heads" in next(ln for ln in r.stdout.splitlines() if ln.startswith("coffee:"))
    r = regiond("regions", images["coffee"], "--heads", "bundled", "--no-features", "--out", out, env_weights=tmp_path)
    assert r.returncode == 1 and "--heads labels regions by their features" in r.stderr


def test_regions_explicit_profile_without_weights_names_the_file(tmp_path, images):
    r = regiond(
        "regions",
        images["coffee"],
        "--profile",
        "balanced",
        "--weights",
        tmp_path,
        "--out",
        tmp_path / "out",
        env_weights=tmp_path / "elsewhere",
    )
    assert r.returncode == 1
    assert str(tmp_path / "sam_vit_b_01ec64.pth") in r.stderr
    assert not (tmp_path / "out").exists()


def test_regions_auto_falls_back_to_lite_and_says_so(tmp_path, images, capsys, monkeypatch):
    monkeypatch.setenv("REGIOND_WEIGHTS", str(tmp_path))
    assert main(["regions", str(images["astronaut"]), "--out", str(tmp_path / "o")]) == 0
    cap = capsys.readouterr()
    assert "using the 'lite' profile" in cap.err and "profile lite" in cap.out
    assert (tmp_path / "o" / "astronaut.overlay.png").is_file()


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory) -> Path:
    """Tiny random checkpoints saved under official names, in the official layouts."""
    from regiond.features.dinov2 import create_vit, save_official_checkpoint
    from regiond.masks.sam import build_sam_model, save_sam_checkpoint

    d = tmp_path_factory.mktemp("weights")
    save_sam_checkpoint(build_sam_model("tiny"), d / "sam_vit_b_01ec64.pth")
    save_official_checkpoint(create_vit("dinov2_tiny"), d / "dinov2_vitb14_pretrain.pth")
    return d


def test_models_lists_found_and_missing(fake_weights, tmp_path):
    r = regiond("models", "--weights", fake_weights, "--inspect", env_weights=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"weights directory: {fake_weights}" in out
    rows = {
        ln.split()[0]: ln
        for ln in out.splitlines()
        if ln and ln.split()[0] in ("vit_h", "vit_l", "vit_b", "dinov2_vitb14", "dinov2_vitl14")
    }
    assert "found" in rows["vit_b"] and "width 32" in rows["vit_b"]  # tiny SAM encoder width
    assert "found" in rows["dinov2_vitb14"]
    assert rows["vit_h"].rstrip().endswith("missing") and rows["dinov2_vitl14"].rstrip().endswith("missing")
    prof = {ln.split()[0]: ln for ln in out.split("profiles:")[1].splitlines() if ln.strip()}
    assert "ready" in prof["balanced"] and "ready" in prof["lite"]
    assert "sam_vit_h_4b8939.pth" in prof["paper"] and "dinov2_vitl14_pretrain.pth" in prof["paper"]
    assert "--profile auto uses: balanced" in out


def test_models_with_no_weights_dir(tmp_path, capsys):
    assert main(["models", "--weights", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "(does not exist)" in out and "--profile auto uses: lite" in out
    assert "sam_vit_b_01ec64.pth" in out


def test_demo_writes_overlay_and_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REGIOND_WEIGHTS", str(tmp_path / "none"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--profile", "lite", "--photo", "coffee", "--no-daemon"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "lite" and summary["regions"] > 20 and summary["coverage"] == 1.0
    assert Path(summary["files"]["overlay"]).is_file() and str(out / "summary.json") in printed
    assert len(RegionSet.load(summary["files"]["regions"])) == summary["regions"]


def test_overlay_tells_sam_from_slic():
    rgb = np.full((40, 60, 3), 100, np.uint8)
    masks = np.zeros((2, 40, 60), bool)
    masks[0, 5:35, 5:28] = True  # SAM
    masks[1, 5:35, 32:55] = True  # SLIC
    colors = np.array([[255, 0, 0], [255, 0, 0]], np.uint8)  # same colour: only the style differs
    img = overlay_regions(rgb, masks, np.array([SOURCE_SAM, SOURCE_SLIC]), colors=colors).astype(int)
    sam_inside, slic_inside = img[10:30, 10:23].reshape(-1, 3), img[10:30, 37:50].reshape(-1, 3)
    background = img[0, 0]
    assert (sam_inside[:, 0] > background[0]).all()  # SAM: filled everywhere
    tinted = slic_inside[:, 0] > background[0]
    assert 0.15 < tinted.mean() < 0.6  # SLIC: hatched
    sam_edge, slic_edge = img[5, 5:28], img[5, 32:55]
    assert (sam_edge == [255, 0, 0]).all()  # solid outline
    assert 0.3 < (slic_edge == [255, 0, 0]).all(1).mean() < 0.7  # dashed outline
