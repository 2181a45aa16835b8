"""What an extraction job is made of: its items (ItemSpec: one scene, clip or image folder, with
its name in the cache and how its frames are sampled) and the plan (plan_job) that keeps the
items already in the cache and adopts finished ones under their new names."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.extraction.cache import (
    CLIP_FRAMES,
    KINDS,
    CacheItem,
    TokenCache,
    read_item,
)
from regiond.masks.carry import CarryConfig
from regiond.scenes import open_source
from regiond.scenes.labelled_folders import detect_kind, image_folder_frames, read_clip_labels


@dataclass(frozen=True)
class ItemSpec:
    """One item of a job: its name in the cache, what it reads, and how frames are sampled.

    source      a scene (scenes.open_source), a video file (clips) or an image folder
    count       clips: this many frames, evenly spaced
    every, max_frames  scenes: keep every K-th frame, at most N
    size        resample frames to W×H (None: as recorded)
    keyframe_every  scenes and clips: masks generated every K-th frame only and carried between
                    (regiond.masks.carry; scenes by depth and poses, clips by optical flow); 0: off
    min_coverage    with keyframe_every: the carried share of coverage below which a frame
                    becomes a keyframe (0: the tracker's default)
    """

    name: str
    kind: str
    source: str
    label: str | None = None
    every: int = 1
    count: int | None = None
    max_frames: int | None = None
    size: tuple[int, int] | None = None
    patches: bool = False
    keyframe_every: int = 0
    min_coverage: float = 0.0
    skip_bad: bool = False

    @classmethod
    def scene(
        cls,
        source: str | Path,
        every: int = 1,
        max_frames: int | None = None,
        size: tuple[int, int] | None = None,
        patches: bool = False,
        keyframes: tuple[int, float] = (0, 0.0),
        skip_bad: bool = False,
    ) -> ItemSpec:
        """A scene (anything scenes.open_source opens), named after its file or folder."""
        src = Path(source)
        return cls(
            (src.stem if src.is_file() else src.name).replace(":", "_"),
            "scene",
            str(source),
            every=every,
            max_frames=max_frames,
            size=tuple(size) if size else None,
            patches=patches,
            keyframe_every=keyframes[0],
            min_coverage=keyframes[1],
            skip_bad=skip_bad,
        )

    def sampling(self) -> dict:
        """How the frames were sampled, as the manifest records it (meta["sampling"]); carried
        masks and skipping bad frames are recorded only when on, so older caches still match."""
        out = {
            "every": self.every,
            "count": self.count,
            "max_frames": self.max_frames,
            "size": list(self.size) if self.size else None,
        }
        if self.carry() is not None:
            out["keyframe_every"], out["min_coverage"] = self.keyframe_every, self.min_coverage
        if self.skip_bad:
            out["skip_bad_frames"] = True
        return out

    def carry(self) -> CarryConfig | None:
        """How masks are carried between keyframes in this item (None: generated on every frame)."""
        if self.keyframe_every <= 1 or self.kind == "images":
            return None
        cover = {"min_coverage": self.min_coverage} if self.min_coverage else {}
        return CarryConfig(every=self.keyframe_every, method="depth" if self.kind == "scene" else "flow", **cover)

    def matches(self, item: CacheItem) -> bool:
        """`item` holds what this spec extracts (a re-run skips it)."""
        return (
            item.kind == self.kind
            and item.source == self.source
            and item.patches == self.patches
            and item.label == self.label
            and item.meta.get("sampling") == self.sampling()
        )

    def frames(self) -> Iterable[Frame]:
        if self.kind == "images":
            return image_folder_frames(Path(self.source))
        if self.kind == "clip":
            frames = list(open_frames(self.source, count=self.count, size=self.size))
            if len(frames) != self.count:
                raise InputError("source", f"{self.source}: got {len(frames)} frames, need {self.count}")
            return frames
        return open_frames(self.source, self.every, None, self.max_frames, self.size, skip_bad_frames=self.skip_bad)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ItemSpec:
        d = json.loads(text)
        return cls(**{**d, "size": tuple(d["size"]) if d["size"] else None})


@dataclass
class JobReport:
    """What a job did: items extracted now, items already there, failures (source, error)."""

    cache: TokenCache
    extracted: list[CacheItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return sum(len(i.frames) for i in self.extracted)

    def summary(self) -> str:
        """The line a job ends with."""
        rate = f", {self.frames / self.seconds:.1f} frames/s" if self.seconds and self.frames else ""
        return (
            f"{len(self.extracted)} items extracted ({self.frames} frames), {len(self.skipped)} already in the "
            f"cache, {len(self.failures)} failed, {self.seconds:.1f} s{rate}"
        )


def plan_job(
    cache: TokenCache,
    sources: list[str | Path],
    kind: str = "auto",
    every: int = 1,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    patches: bool = False,
    clip_frames: int = CLIP_FRAMES,
    keyframes: tuple[int, float] = (0, 0.0),
    skip_bad_frames: bool = False,
) -> tuple[list[ItemSpec], JobReport]:
    """The items still to extract, and a report holding what is already in the cache (items
    with the same source and sampling: a re-run skips them) and the sources that could not
    be planned (a clip folder whose labels.csv is bad)."""
    report = JobReport(cache)
    todo: list[ItemSpec] = []
    taken = {i.name for i in cache.items}  # names in the manifest or planned now
    by_source: dict[str, list[CacheItem]] = {}
    for i in cache.items:
        by_source.setdefault(i.source, []).append(i)
    for spec in sources:
        src = Path(spec)
        k = detect_kind(src) if kind == "auto" else kind
        if k not in KINDS:
            raise InputError("kind", f"unknown kind {k!r}; one of auto, {', '.join(KINDS)}")
        if k == "clip":
            try:
                rows = read_clip_labels(src)
            except InputError as e:
                report.failures.append((str(spec), str(e)))
                continue
            specs = [
                ItemSpec(
                    f"{src.name}/{video.stem}",
                    "clip",
                    str(video),
                    label,
                    count=clip_frames,
                    size=size,
                    patches=patches,
                    keyframe_every=keyframes[0],
                    min_coverage=keyframes[1],
                )
                for video, label in rows
            ]
        elif k == "images":
            specs = [ItemSpec(src.name, "images", str(spec), patches=patches)]
        else:
            specs = [ItemSpec.scene(spec, every, max_frames, size, patches, keyframes, skip_bad_frames)]
        for s in specs:
            done = next((i for i in by_source.get(s.source, []) if s.matches(i)), None) or _adopt(cache, s, taken)
            if done is not None:
                report.skipped.append(done.name)
                continue
            name, n = s.name, 1
            while name in taken or (cache.root / name).exists():
                name, n = f"{s.name}_{n}", n + 1
            taken.add(name)
            todo.append(replace(s, name=name))
    return todo, report


def _adopt(cache: TokenCache, spec: ItemSpec, taken: set[str]) -> CacheItem | None:
    """A committed item directory the manifest lacks (its job was killed in between) that holds
    this spec's item: recorded now instead of extracted again."""
    name, k = spec.name, 1
    while (cache.root / name).exists():
        item = read_item(cache.root / name)
        if name not in taken and item is not None and spec.matches(item):
            cache.add(item)
            taken.add(name)
            return item
        name, k = f"{spec.name}_{k}", k + 1
    return None


def open_frames(
    spec: str | Path,
    every: int = 1,
    count: int | None = None,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    skip_bad_frames: bool = False,
) -> Iterable[Frame]:
    """Frames of a scene or video through scenes.open_source with the given sampling."""
    return open_source(
        str(spec),
        every=every,
        count=count,
        max_frames=max_frames,
        size=tuple(size) if size else None,
        skip_bad_frames=skip_bad_frames,
    )
