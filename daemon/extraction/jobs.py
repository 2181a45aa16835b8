"""The one extraction loop: frames → RegionSets saved in a token cache.

`extract_to_cache` is what `regiond extract` runs over sources; `extract_item` puts one
scene's or clip's frames into a cache (the demo's heads use it on frames rendered in memory);
`extract_frames` is the loop itself. Each saved RegionSet carries per-region labels by the paper's >50%
rule when its frame has a ground-truth label map, and optionally the frame's patch tokens.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from core.errors import InputError
from core.frames import Frame
from core.labels import write_label_png
from core.regionset import region_labels
from scenes import open_source
from scenes.collections import detect_kind, image_folder_frames, read_clip_labels

from ..features.patches import patch_regions
from .cache import CLIP_FRAMES, KINDS, CacheItem, TokenCache, extractor_versions
from .extractor import Extractor


def extract_frames(extractor: Extractor, frames: Iterable[Frame], out_dir: Path, patches: bool,
                   progress: tqdm | None = None) -> tuple[list[str], dict]:
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


def extract_item(cache: TokenCache, extractor: Extractor, name: str, kind: str, frames: Iterable[Frame],
                 label: str | None = None, source: str = "", patches: bool = False,
                 progress: tqdm | None = None) -> CacheItem:
    """Extract one scene, clip or image folder's frames into the cache as item `name`."""
    stems, meta = extract_frames(extractor, frames, cache.root / name, patches, progress)
    if not stems:
        raise InputError("source", f"{source or name} yielded no frames")
    item = CacheItem(name, kind, stems, label, source, patches, meta)
    cache.add(item)
    return item


def extract_to_cache(sources: list[str | Path], out: str | Path, extractor: Extractor, kind: str = "auto",
                     every: int = 1, max_frames: int | None = None, size: tuple[int, int] | None = None,
                     patches: bool = False, clip_frames: int = CLIP_FRAMES, show_progress: bool = True) -> TokenCache:
    """Extract each source into the cache at `out` (created, or extended when compatible).

    sources      scene folders / .sens files / synthetic:SEED (scenes.open_source), clip folders with a
                 labels.csv, or image folders with images/ and labels/
    kind         "auto" (detect_kind) or one of KINDS
    every, max_frames, size  scene sampling (scenes.Sampling)
    patches      also store patch tokens for the patch-token baselines
    clip_frames  frames taken evenly from each clip (the activity head's window)
    """
    cache = TokenCache.create(out, extractor_versions(extractor))
    for spec in sources:
        src = Path(spec)
        k = detect_kind(src) if kind == "auto" else kind
        if k not in KINDS:
            raise InputError("kind", f"unknown kind {k!r}; one of auto, {', '.join(KINDS)}")
        if k == "clip":
            rows = read_clip_labels(src)
            with tqdm(total=len(rows) * clip_frames, desc=f"clips {src.name}", unit="frame",
                      disable=not show_progress) as bar:
                for video, label in rows:
                    frames = list(open_frames(video, count=clip_frames, size=size))
                    if len(frames) != clip_frames:
                        raise InputError("source", f"{video}: got {len(frames)} frames, need {clip_frames}")
                    extract_item(cache, extractor, cache.unique_name(f"{src.name}/{video.stem}"), "clip",
                                 frames, label, str(video), patches, bar)
            continue
        frames = image_folder_frames(src) if k == "images" else open_frames(spec, every, None, max_frames, size)
        name = cache.unique_name((src.stem if src.is_file() else src.name).replace(":", "_"))
        with tqdm(desc=f"{k} {src.name}", unit="frame", disable=not show_progress) as bar:
            extract_item(cache, extractor, name, k, frames, None, str(spec), patches, bar)
    return cache


def open_frames(spec: str | Path, every: int = 1, count: int | None = None, max_frames: int | None = None,
                size: tuple[int, int] | None = None) -> Iterable[Frame]:
    """Frames of a scene or video through scenes.open_source with the given sampling."""
    return open_source(str(spec), every=every, count=count, max_frames=max_frames,
                       size=tuple(size) if size else None)
