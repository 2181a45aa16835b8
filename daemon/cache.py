"""Token caches: RegionSets extracted once, read by training and evaluation many times.

Layout of a cache directory:

    manifest.json            format, profile, model versions, items (see CacheItem)
    <item>/000000.npz        RegionSet of frame 0 (with per-region labels by the >50% rule)
    <item>/000000.labels.png ground-truth label map (NYU40 ids; 8-bit, 16-bit if needed)
    <item>/000000.patches.npz  the same frame's patch tokens (optional, for the baselines)

An item is one scene (all sampled frames), one clip (8 evenly spaced frames, a class), or
one image folder. A cache holds tokens of one extractor only: adding a source extracted with
another profile or other models is refused, since their features are not comparable.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import InputError
from .frames import Frame
from .tokens import RegionSet

FORMAT = "regiond.tokencache/1"
MANIFEST = "manifest.json"
KINDS = ("scene", "clip", "images")
CLIP_FRAMES = 8
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass
class CacheItem:
    """One scene, clip or image folder in a cache.

    name    sub-directory of the cache holding its frames
    kind    "scene", "clip" or "images"
    frames  file stems of its frames, in order
    label   the clip's class name (clips only)
    source  where it was extracted from
    patches whether patch tokens were stored beside the regions
    meta    anything else (frame indices, image sizes, ...)
    """

    name: str
    kind: str
    frames: list = field(default_factory=list)
    label: str | None = None
    source: str = ""
    patches: bool = False
    meta: dict = field(default_factory=dict)


def extractor_versions(extractor) -> dict:
    """What makes tokens comparable: the profile, models, feature width and pooling."""
    from . import __version__

    return {"profile": extractor.profile, "masker": extractor.masker.name,
            "backbone": extractor.backbone.name, "dim": int(extractor.dim),
            "pooling": extractor.pooling, "regiond": __version__}


class TokenCache:
    """A cache directory; open() reads one, create() starts or extends one."""

    def __init__(self, root, versions: dict, items: list[CacheItem]):
        self.root = Path(root)
        self.versions = versions
        self.items = items

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, root) -> "TokenCache":
        root = Path(root)
        man = root / MANIFEST
        if not man.is_file():
            raise InputError("cache", f"{root} is not a token cache (no {MANIFEST}); make one with `regiond extract`")
        doc = json.loads(man.read_text())
        if doc.get("format") != FORMAT:
            raise InputError("cache", f"{man}: format {doc.get('format')!r}, expected {FORMAT!r}")
        return cls(root, doc["versions"], [CacheItem(**it) for it in doc["items"]])

    @classmethod
    def create(cls, root, versions: dict) -> "TokenCache":
        """A new cache, or an existing one made with the same versions (else InputError)."""
        root = Path(root)
        if (root / MANIFEST).is_file():
            cache = cls.open(root)
            check_compatible(cache.versions, versions, str(root))
            return cache
        root.mkdir(parents=True, exist_ok=True)
        cache = cls(root, dict(versions), [])
        cache._write_manifest()
        return cache

    def _write_manifest(self) -> None:
        doc = {"format": FORMAT, "versions": self.versions, "items": [asdict(i) for i in self.items]}
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, self.root / MANIFEST)

    # --- items -------------------------------------------------------------------------

    def add(self, item: CacheItem) -> None:
        """Record a finished item (replacing one of the same name)."""
        self.items = [i for i in self.items if i.name != item.name] + [item]
        self._write_manifest()

    def unique_name(self, base: str) -> str:
        taken = {i.name for i in self.items}
        name, k = base, 1
        while name in taken or (self.root / name).exists():
            name, k = f"{base}_{k}", k + 1
        return name

    def of_kind(self, kind: str) -> list[CacheItem]:
        return [i for i in self.items if i.kind == kind]

    def regions(self, item: CacheItem, i: int, patches: bool = False) -> RegionSet:
        stem = item.frames[i]
        if patches and not item.patches:
            raise InputError("cache", f"{self.root}/{item.name} has no patch tokens; extract with --patches")
        return RegionSet.load(self.root / item.name / f"{stem}{'.patches' if patches else ''}.npz")

    def frames(self, item: CacheItem, patches: bool = False) -> list[RegionSet]:
        return [self.regions(item, i, patches) for i in range(len(item.frames))]

    def label_map(self, item: CacheItem, i: int) -> np.ndarray | None:
        path = self.root / item.name / f"{item.frames[i]}.labels.png"
        return read_label_png(path) if path.is_file() else None

    def clip_classes(self) -> list[str]:
        return sorted({i.label for i in self.of_kind("clip") if i.label is not None})

    def region_class_ids(self) -> list[int]:
        """Every class id that labels some region of the cache (sorted)."""
        ids: set[int] = set()
        for item in self.items:
            if item.kind == "clip":
                continue
            for i in range(len(item.frames)):
                r = self.regions(item, i)
                if r.labels is not None:
                    ids.update(int(v) for v in np.unique(r.labels) if v >= 0)
        return sorted(ids)


def check_compatible(have: dict, new: dict, where: str) -> None:
    keys = ("profile", "masker", "backbone", "dim", "pooling")
    diff = [f"{k}: {have.get(k)!r} vs {new.get(k)!r}" for k in keys if have.get(k) != new.get(k)]
    if diff:
        raise InputError("profile", f"cache {where} holds tokens of another extractor ({'; '.join(diff)}); "
                                    f"use a new --out directory")


# --- label maps as PNG --------------------------------------------------------------------

def write_label_png(path, labels: np.ndarray) -> Path:
    """Integer label map → PNG: 8-bit when every id fits (ScanNet's benchmark form), else 16-bit."""
    from PIL import Image

    a = np.asarray(labels)
    if a.min(initial=0) < 0 or a.max(initial=0) > 65535:
        raise ValueError(f"label ids must lie in 0..65535, got [{a.min()}, {a.max()}]")
    img = Image.fromarray(a.astype(np.uint8)) if a.max(initial=0) < 256 else Image.fromarray(a.astype(np.uint16))
    path = Path(path)
    img.save(path)
    return path


def read_label_png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img).astype(np.int32)


# --- extraction ----------------------------------------------------------------------------

def detect_kind(path: Path) -> str:
    """clip folder (has labels.csv), image folder (images/ + labels/), else a scene."""
    if path.is_dir() and (path / "labels.csv").is_file():
        return "clip"
    if path.is_dir() and (path / "images").is_dir():
        return "images"
    return "scene"


def extract_frames(extractor, frames: Iterable[Frame], out_dir: Path, patches: bool, progress=None) -> tuple[list, dict]:
    """Extract and save every frame; returns (stems, meta). Labels come from frame.labels."""
    from .heads.labels import region_labels
    from .heads.patches import patch_regions

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


def read_clip_labels(folder: Path) -> list[tuple[Path, str]]:
    """(video path, class name) rows of folder/labels.csv: a header naming a file column
    (file/path/video/clip) and a label column (label/class/activity), or two bare columns."""
    rows = list(csv.reader((folder / "labels.csv").read_text().splitlines()))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise InputError("labels.csv", f"{folder / 'labels.csv'} is empty")
    head = [c.strip().lower() for c in rows[0]]
    fcol = next((i for i, c in enumerate(head) if c in ("file", "path", "video", "clip", "filename")), None)
    lcol = next((i for i, c in enumerate(head) if c in ("label", "class", "activity", "class_name")), None)
    if fcol is not None and lcol is not None:
        rows = rows[1:]
    else:
        fcol, lcol = 0, 1
    out = []
    for n, r in enumerate(rows, start=2 if fcol is not None else 1):
        if len(r) <= max(fcol, lcol):
            raise InputError("labels.csv", f"row {n} has {len(r)} columns: {r}")
        p = (folder / r[fcol].strip())
        if not p.is_file():
            raise InputError("labels.csv", f"row {n}: video {p} not found")
        out.append((p, r[lcol].strip()))
    return out


def image_folder_frames(folder: Path) -> list[Frame]:
    """folder/images/*.{png,jpg} with folder/labels/<same stem>.png label maps (optional)."""
    from PIL import Image

    files = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise InputError("source", f"{folder / 'images'} has no images")
    frames = []
    for k, p in enumerate(files):
        with Image.open(p) as img:
            rgb = np.asarray(img.convert("RGB"))
        lab_path = folder / "labels" / (p.stem + ".png")
        labels = read_label_png(lab_path) if lab_path.is_file() else None
        if labels is not None and labels.shape != rgb.shape[:2]:
            raise InputError("labels", f"{lab_path} is {labels.shape[::-1]}, image {p.name} is {rgb.shape[1::-1]}")
        frames.append(Frame(rgb=rgb, labels=labels, index=k, meta={"file": p.name}))
    return frames


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
    from scenes import open_source

    return open_source(str(spec), every=every, count=count, max_frames=max_frames,
                       size=tuple(size) if size else None)
