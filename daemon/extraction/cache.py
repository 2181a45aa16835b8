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

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.labels import read_label_png
from core.regionset import RegionSet
from daemon import __version__

FORMAT = "regiond.tokencache/1"
MANIFEST = "manifest.json"
KINDS = ("scene", "clip", "images")
#: Frames a clip item holds by default: the paper's 8 evenly spaced frames. An activity head
#: records the clip length it was trained on (its config's `window`), which serving then uses.
CLIP_FRAMES = 8


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
