"""The one extraction loop: frames → RegionSets saved in a token cache.

`extract_to_cache` is what `regiond extract` runs; `extract_frames` is the loop itself (also
used by the demo's heads). Each saved RegionSet carries per-region labels by the paper's >50%
rule when its frame has a ground-truth label map, and optionally the frame's patch tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from core.errors import InputError
from core.frames import Frame
from core.labels import write_label_png
from core.regionset import region_labels
from scenes import open_source
from scenes.collections import detect_kind, image_folder_frames, read_clip_labels

from ..features.patches import patch_regions
from .cache import CLIP_FRAMES, KINDS, CacheItem, TokenCache, extractor_versions
from .extractor import Extractor


def extract_frames(extractor, frames: Iterable[Frame], out_dir: Path, patches: bool, progress=None) -> tuple[list, dict]:
    """Extract and save every frame; returns (stems, meta). Labels come from frame.labels."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stems, indices, sizes = [], [], set()
    for k, frame in enumerate(frames):
        frame = frame.validated(extractor.max_pixels)
        regions = extractor.extract(frame)
        stem = f"{k:06d}"
        if frame.labels is not None:
            regions.labels = region_labels(regions, frame.labels)
            write_label_png(out_dir / f"{stem}.labels.png", frame.labels)
        regions.save(out_dir / f"{stem}.npz")
        if patches:
            pr = patch_regions(extractor.backbone(frame.rgb), frame.height, frame.width,
                               meta={"frame_index": frame.index})
            if frame.labels is not None:
                pr.labels = region_labels(pr, frame.labels)
            pr.save(out_dir / f"{stem}.patches.npz")
        stems.append(stem)
        indices.append(int(frame.index))
        sizes.add((frame.width, frame.height))
        if progress is not None:
            progress.update(1)
            progress.set_postfix(regions=len(regions))
    return stems, {"frame_indices": indices, "sizes": sorted(sizes)}


def extract_to_cache(sources: list, out, extractor, kind: str = "auto", every: int = 1,
                     max_frames: int | None = None, size: tuple | None = None, patches: bool = False,
                     show_progress: bool = True) -> TokenCache:
    """Extract each source into the cache at `out` (created, or extended when compatible).

    sources     scene folders / .sens files / synthetic:SEED (scenes.open_source), clip folders with a
                labels.csv, or image folders with images/ and labels/
    kind        "auto" (detect_kind) or one of KINDS
    every, max_frames, size  scene sampling (scenes.Sampling); clips always take 8 frames
    patches     also store patch tokens for the patch-token baselines
    """
    from tqdm import tqdm

    cache = TokenCache.create(out, extractor_versions(extractor))
    for spec in sources:
        src = Path(spec)
        k = detect_kind(src) if kind == "auto" else kind
        if k not in KINDS:
            raise InputError("kind", f"unknown kind {k!r}; one of auto, {', '.join(KINDS)}")
        if k == "clip":
            rows = read_clip_labels(src)
            bar = tqdm(total=len(rows) * CLIP_FRAMES, desc=f"clips {src.name}", unit="frame",
                       disable=not show_progress)
            for video, label in rows:
                frames = open_frames(video, count=CLIP_FRAMES, size=size)
                name = cache.unique_name(f"{src.name}/{video.stem}")
                stems, meta = extract_frames(extractor, frames, cache.root / name, patches, bar)
                if len(stems) != CLIP_FRAMES:
                    raise InputError("source", f"{video}: got {len(stems)} frames, need {CLIP_FRAMES}")
                cache.add(CacheItem(name, "clip", stems, label, str(video), patches, meta))
            bar.close()
            continue
        if k == "images":
            frames = image_folder_frames(src)
        else:
            frames = open_frames(spec, every=every, max_frames=max_frames, size=size)
        name = cache.unique_name((src.stem if src.is_file() else src.name).replace(":", "_"))
        with tqdm(desc=f"{k} {src.name}", unit="frame", disable=not show_progress) as bar:
            stems, meta = extract_frames(extractor, frames, cache.root / name, patches, bar)
        if not stems:
            raise InputError("source", f"{src} yielded no frames")
        cache.add(CacheItem(name, k, stems, None, str(spec), patches, meta))
    return cache


def open_frames(spec, every: int = 1, count: int | None = None, max_frames: int | None = None,
                size: tuple | None = None):
    """Frames of a scene or video through scenes.open_source with the given sampling."""
    return open_source(str(spec), every=every, count=count, max_frames=max_frames,
                       size=tuple(size) if size else None)
