"""The one extraction loop: frames → RegionSets saved in a token cache.

A job (`regiond extract`) is planned into items (job_plan.plan_job: one per scene, clip or
image folder, each with a name in the cache and how its frames are sampled), then each item not
already in the cache is extracted by an ExtractWorker (build_item) — in this process one
after the other (extract_to_cache), or on a pool of Ray actors (extract_on_ray: the same
worker in each actor, reading the frames where they are; pool.py). `extract_frames` is
the loop itself; `extract_item` puts frames made in memory into a cache (the demo's heads).
Each saved RegionSet carries per-region labels by the paper's >50% rule when its frame has a
ground-truth label map, and optionally the frame's patch tokens.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from functools import partial
from pathlib import Path

from tqdm import tqdm

from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.core.label_spaces import write_label_png
from regiond.core.regionset import region_labels
from regiond.extraction.cache import (
    CLIP_FRAMES,
    CacheItem,
    TokenCache,
    commit_item,
    dead_attempts,
    extractor_versions,
    partial_dir,
)
from regiond.extraction.extractor import Extractor
from regiond.extraction.job_plan import ItemSpec, JobReport, plan_job
from regiond.extraction.pool import MakeWorker, RayOptions, run_items
from regiond.extraction.profiles import build_extractor, profile_versions
from regiond.features.patches import patch_regions
from regiond.masks.carry import CarryConfig, MaskTracker
from regiond.masks.generator import MaskGenerationError

log = logging.getLogger(__name__)


def extract_frames(
    extractor: Extractor,
    frames: Iterable[Frame],
    out_dir: Path,
    patches: bool,
    progress: tqdm | None = None,
    carry: CarryConfig | None = None,
) -> tuple[list[str], dict]:
    """Extract and save every frame; returns (stems, meta). Labels come from frame.labels.
    With `carry`, masks are generated on keyframes only and carried between them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stems, indices, sizes = [], [], set()
    tracker = MaskTracker(carry) if carry is not None else None
    keyframes = 0
    for k, frame in enumerate(frames):
        frame = frame.validated(extractor.max_pixels)
        try:
            regions = extractor.extract(frame, carry=tracker.ticket() if tracker is not None else None)
        except MaskGenerationError as e:  # the item fails; its report names the frame
            raise MaskGenerationError(f"frame {frame.index}: {e}") from e
        keyframes += bool(regions.meta.get("carry", {"keyframe": True})["keyframe"])
        stem = f"{k:06d}"
        if frame.labels is not None:
            regions.labels = region_labels(regions, frame.labels)
            write_label_png(out_dir / f"{stem}.labels.png", frame.labels)
        regions.save(out_dir / f"{stem}.npz")
        if patches:
            pr = patch_regions(
                extractor.backbone(frame.rgb), frame.height, frame.width, meta={"frame_index": frame.index}
            )
            if frame.labels is not None:
                pr.labels = region_labels(pr, frame.labels)
            pr.save(out_dir / f"{stem}.patches.npz")
        stems.append(stem)
        indices.append(int(frame.index))
        sizes.add((frame.width, frame.height))
        if progress is not None:
            progress.update(1)
            progress.set_postfix(regions=len(regions))
    if tracker is not None:
        tracker.close()
    return stems, {"frame_indices": indices, "sizes": sorted(sizes), "keyframes": keyframes}


def write_item(
    root: Path,
    extractor: Extractor,
    name: str,
    kind: str,
    frames: Iterable[Frame],
    label: str | None = None,
    source: str = "",
    patches: bool = False,
    meta: dict | None = None,
    progress: tqdm | None = None,
    carry: CarryConfig | None = None,
) -> CacheItem:
    """Extract frames into item `name` of the cache at `root`, atomically (cache.commit_item);
    the caller records the returned item in the manifest."""
    tmp = partial_dir(root, name)
    try:
        stems, frame_meta = extract_frames(extractor, frames, tmp, patches, progress, carry)
        if not stems:
            raise InputError("source", f"{source or name} yielded no frames")
        skipped = getattr(frames, "skipped", None)  # a scene opened with skip_bad_frames
        if skipped:
            frame_meta["skipped_frames"] = list(skipped)
        item = CacheItem(name, kind, stems, label, source, patches, {**frame_meta, **(meta or {})})
        commit_item(root, tmp, item)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when committed
    return item


def extract_item(
    cache: TokenCache,
    extractor: Extractor,
    name: str,
    kind: str,
    frames: Iterable[Frame],
    label: str | None = None,
    source: str = "",
    patches: bool = False,
    progress: tqdm | None = None,
) -> CacheItem:
    """Extract one scene, clip or image folder's frames into the cache as item `name`."""
    item = write_item(cache.root, extractor, name, kind, frames, label, source, patches, progress=progress)
    cache.add(item)
    return item


# --- jobs: planned items, extracted once ------------------------------------------------------


def build_item(root: Path, extractor: Extractor, spec: ItemSpec, progress: tqdm | None = None) -> CacheItem:
    """Extract one planned item into the cache at `root` (atomically; not yet in the manifest)."""
    return write_item(
        Path(root),
        extractor,
        spec.name,
        spec.kind,
        spec.frames(),
        spec.label,
        spec.source,
        spec.patches,
        {"sampling": spec.sampling()},
        progress,
        spec.carry(),
    )


class ExtractWorker:
    """A job's worker (pool.run_items): payload = an ItemSpec as JSON → the item extracted into
    the cache at `root` (committed, not yet in the manifest) as CacheItem JSON.

    extractor  an Extractor, or build_extractor's arguments (a Ray actor builds its own)
    versions   the cache's versions: a worker whose extractor differs (another regiond, other
               weights on its node) fails its items instead of mixing tokens
    threads    torch threads (None: leave as they are)
    max_tries  an item under which this many writers died (their partial directories are
               left) is failed, not tried again: Ray would retry it for ever
    """

    def __init__(
        self,
        root: str | Path,
        extractor: Extractor | dict,
        versions: dict | None = None,
        threads: int | None = None,
        max_tries: int = 3,
        progress: tqdm | None = None,
    ):
        if threads:
            import torch  # heavy: only where a worker sets its threads (a Ray actor)

            torch.set_num_threads(threads)
        if isinstance(extractor, dict):
            extractor = build_extractor(**extractor)
        self.root, self.extractor, self.max_tries, self.progress = Path(root), extractor, max_tries, progress
        have = extractor_versions(extractor)
        self.mismatch = "; ".join(
            f"{k}: {have.get(k)!r} vs {v!r}" for k, v in (versions or {}).items() if have.get(k) != v
        )

    def __call__(self, payload: str) -> str:
        if self.mismatch:
            raise RuntimeError(f"this worker's extractor differs from the cache's ({self.mismatch})")
        spec = ItemSpec.from_json(payload)
        if (dead := dead_attempts(self.root, spec.name)) >= self.max_tries:
            raise RuntimeError(f"its writer died on each of {dead} tries")
        if self.progress is not None:
            self.progress.set_description(f"extract {spec.name}")
        return json.dumps(asdict(build_item(self.root, self.extractor, spec, self.progress)))


#: Seconds between manifest writes while a job's items come in (it is rewritten whole).
MANIFEST_EVERY = 5.0


def run_job(
    sources: list[str | Path],
    out: str | Path,
    versions: dict,
    make_worker: Callable[[Path], MakeWorker],
    ray: RayOptions | None = None,
    kind: str = "auto",
    every: int = 1,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    patches: bool = False,
    clip_frames: int = CLIP_FRAMES,
    keyframes: tuple[int, float] = (0, 0.0),
    skip_bad_frames: bool = False,
) -> JobReport:
    """Plan the job against the cache at `out` (created, or extended when `versions` match),
    extract the items it lacks with the workers make_worker(cache root) makes, here or on Ray
    (pool.run_items), record them in the manifest as they come, in plan order at the end."""
    t0 = time.perf_counter()
    cache = TokenCache.create(out, versions)
    with cache.writing():
        todo, report = plan_job(
            cache, sources, kind, every, max_frames, size, patches, clip_frames, keyframes, skip_bad_frames
        )
        by_name = {s.name: s for s in todo}
        saved = time.monotonic()

        def on_result(name: str, ok: bool, result: str, error: str) -> None:
            nonlocal saved
            if not ok:
                report.failures.append((by_name[name].source, error))
                log.warning("extract: %s failed: %s", by_name[name].source, error)
                return
            item = CacheItem(**json.loads(result))
            due = time.monotonic() - saved > MANIFEST_EVERY
            cache.add(item, save=due)  # committed already: a job killed before the manifest adopts it
            saved = time.monotonic() if due else saved
            report.extracted.append(item)

        run_items([(s.name, s.to_json()) for s in todo], make_worker(cache.root), on_result, ray)
        cache.order([s.name for s in todo])
    report.seconds = time.perf_counter() - t0
    return report


def extract_to_cache(
    sources: list[str | Path],
    out: str | Path,
    extractor: Extractor,
    kind: str = "auto",
    every: int = 1,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    patches: bool = False,
    clip_frames: int = CLIP_FRAMES,
    show_progress: bool = True,
    keyframes: tuple[int, float] = (0, 0.0),
    skip_bad_frames: bool = False,
) -> JobReport:
    """Extract each source into the cache at `out` in this process, with `extractor` (see
    run_job): items already in the cache are skipped, a source that fails is reported.

    sources      scene folders / .sens files / synthetic:SEED (scenes.open_source), clip folders with a
                 labels.csv, or image folders with images/ and labels/
    kind         "auto" (detect_kind) or one of KINDS
    every, max_frames, size  scene sampling (scenes.Sampling)
    skip_bad_frames  scenes: frames that cannot be read are skipped and listed in the item's
                 meta["skipped_frames"] instead of failing the scene
    patches      also store patch tokens for the patch-token baselines
    clip_frames  frames taken evenly from each clip (the activity head's window)
    keyframes    (K, min coverage): masks generated on every K-th frame of a scene or clip only and
                 carried between (K 0: off; min coverage 0: the default)
    """
    with tqdm(desc="extract", unit="frame", disable=not show_progress) as bar:
        return run_job(
            sources,
            out,
            extractor_versions(extractor),
            lambda root: lambda: ExtractWorker(root, extractor, progress=bar),
            None,
            kind,
            every,
            max_frames,
            size,
            patches,
            clip_frames,
            keyframes,
            skip_bad_frames,
        )


def extract_on_ray(
    sources: list[str | Path], out: str | Path, build: dict, ray: RayOptions, kind: str = "auto", **sampling
) -> JobReport:
    """extract_to_cache on Ray: each actor builds its extractor with build_extractor(**build)
    (its `profile` must be a real one, not "auto") and extracts whole items, reading frames
    where they are and writing into `out`: paths every node must reach. Connect first
    (pool.ray_cluster)."""
    versions = profile_versions(build["profile"], build.get("weights_dir"), pooling=build.get("pooling"))

    def make(root: Path) -> MakeWorker:
        return partial(ExtractWorker, str(root), build, versions, ray.threads, ray.max_tries)

    return run_job(sources, out, versions, make, ray, kind, **sampling)
