"""Token caches: RegionSets extracted once, read by training and evaluation many times.

Layout of a cache directory:

    manifest.json            format, profile, model versions, items (see CacheItem)
    <item>/000000.npz        RegionSet of frame 0 (with per-region labels by the >50% rule)
    <item>/000000.labels.png ground-truth label map (NYU40 ids; 8-bit, 16-bit if needed)
    <item>/000000.patches.npz  the same frame's patch tokens (optional, for the baselines)
    <item>/item.json         the item's CacheItem, written before the item moves into place
    .partial/                items being written (by this process or by Ray actors), each
                             moved to <item> in one rename once complete
    .lock                    held (flock) by the one job writing the manifest

Items are atomic: a frame of an item never appears without the others. A writer fills a
directory under .partial/ and renames it to <item> when every frame is there, then the job
records it in the manifest; a directory whose item.json is in place but which the manifest
lacks (a job killed between the two) is adopted by the next job that plans the same item.

An item is one scene (all sampled frames), one clip (8 evenly spaced frames, a class), or
one image folder. A cache holds tokens of one extractor only: adding a source extracted with
another profile or other models is refused, since their features are not comparable.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from regiond import __version__
from regiond.core.errors import InputError
from regiond.core.json_docs import need, read_json_object
from regiond.core.label_spaces import read_label_png
from regiond.core.regionset import RegionSet

FORMAT = "regiond.tokencache/1"
MANIFEST = "manifest.json"
ITEM_FILE = "item.json"
PARTIAL = ".partial"
LOCK = ".lock"
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
    return versions(extractor.profile, extractor.masker.name, extractor.backbone.name, extractor.dim, extractor.pooling)


def versions(profile: str, masker: str, backbone: str, dim: int, pooling: str) -> dict:
    """A cache's `versions` (also known before any model loads: profiles.profile_versions)."""
    return {
        "profile": profile,
        "masker": masker,
        "backbone": backbone,
        "dim": int(dim),
        "pooling": pooling,
        "regiond": __version__,
    }


class TokenCache:
    """A cache directory; open() reads one, create() starts or extends one."""

    def __init__(self, root, versions: dict, items: list[CacheItem]):
        self.root = Path(root)
        self.versions = versions
        self.items = items
        self._names = {i.name for i in items}

    # --- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, root) -> TokenCache:
        root = Path(root)
        man = root / MANIFEST
        if not man.is_file():
            raise InputError("cache", f"{root} is not a token cache (no {MANIFEST}); make one with `regiond extract`")
        doc = read_json_object(man, "cache")
        if doc.get("format") != FORMAT:
            raise InputError("cache", f"{man}: format {str(doc.get('format'))[:80]!r}, expected {FORMAT!r}")
        versions = need(doc, "versions", dict, man, "cache")
        return cls(root, versions, [_item(it, man) for it in need(doc, "items", list, man, "cache")])

    @classmethod
    def create(cls, root, versions: dict) -> TokenCache:
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

    def add(self, item: CacheItem, save: bool = True) -> None:
        """Record a finished item (replacing one of the same name); save=False leaves writing
        the manifest to a later add or save() (jobs of many items: the manifest is rewritten
        whole, and an item committed but not yet recorded is adopted by the next job)."""
        if item.name in self._names:  # rare: a replaced item
            self.items = [i for i in self.items if i.name != item.name]
        self.items.append(item)
        self._names.add(item.name)
        if save:
            self.save()

    def save(self) -> None:
        self._write_manifest()

    def order(self, names: list[str]) -> None:
        """Put the items in this order (a job's plan), the others first as they were."""
        rank = {n: k for k, n in enumerate(names)}
        self.items.sort(key=lambda i: rank.get(i.name, -1))  # stable: unplanned items keep theirs
        self._write_manifest()

    def writing(self):
        """job_lock on the cache."""
        return job_lock(self.root)

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


# --- writing one item atomically ------------------------------------------------------------


@contextmanager
def job_lock(root: str | Path) -> Iterator[None]:
    """Held by the one job writing a directory of items (a cache, a labelling job's output):
    a second job is refused; what killed writers left in .partial/ is cleared on both sides."""
    root = Path(root)
    with open(root / LOCK, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError("out", f"{root} is being written by another job (its {LOCK} is held)") from None
        try:
            shutil.rmtree(root / PARTIAL, ignore_errors=True)
            yield
        finally:
            shutil.rmtree(root / PARTIAL, ignore_errors=True)
            fcntl.flock(fh, fcntl.LOCK_UN)


def partial_dir(root: str | Path, name: str) -> Path:
    """A fresh directory under root/.partial/ for item `name`, named after the writing
    process (so a writer killed mid-item is easy to tell from a live one)."""
    d = Path(root) / PARTIAL / f"{name.replace('/', '__')}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    d.mkdir(parents=True)
    return d


def dead_attempts(root: str | Path, name: str) -> int:
    """Writers of item `name` that died under it in this job: the partial directories they
    left (a writer that fails cleanly removes its own; the job clears them at its end)."""
    d = Path(root) / PARTIAL
    return len(list(d.glob(f"{name.replace('/', '__')}.*.*"))) if d.is_dir() else 0


def commit_item(root: str | Path, tmp: Path, item: CacheItem) -> None:
    """Move a complete item from `tmp` (partial_dir) to root/<item.name>, replacing one there."""
    (tmp / ITEM_FILE).write_text(json.dumps(asdict(item), indent=1))
    final = Path(root) / item.name
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def _item(doc, where: Path) -> CacheItem:
    """A manifest's item entry as a CacheItem; InputError("cache", ...) when it is not one."""
    if not isinstance(doc, dict):
        raise InputError("cache", f"{where}: an item must be an object, got {type(doc).__name__}")
    try:
        item = CacheItem(**doc)
    except TypeError as e:
        raise InputError("cache", f"{where}: bad item ({e})") from None
    for key, kind in (("name", str), ("kind", str), ("frames", list), ("source", str), ("meta", dict)):
        need(asdict(item), key, kind, where, "cache")
    name = Path(item.name)
    if not all(isinstance(f, str) for f in item.frames) or not item.name or name.is_absolute() or ".." in name.parts:
        raise InputError("cache", f"{where}: item {item.name[:80]!r} has a bad name or frame list")
    return item


def read_item(directory: Path) -> CacheItem | None:
    """The CacheItem a committed item directory records, None when there is none."""
    try:
        return _item(read_json_object(directory / ITEM_FILE, "cache"), directory / ITEM_FILE)
    except (OSError, InputError):
        return None


def check_compatible(have: dict, new: dict, where: str) -> None:
    keys = ("profile", "masker", "backbone", "dim", "pooling")
    diff = [f"{k}: {have.get(k)!r} vs {new.get(k)!r}" for k in keys if have.get(k) != new.get(k)]
    if diff:
        raise InputError(
            "profile", f"cache {where} holds tokens of another extractor ({'; '.join(diff)}); use a new --out directory"
        )
