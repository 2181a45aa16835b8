"""Scene labelling as a batch job (`regiond label`): every frame of many scenes labelled by a
scene head, in ScanNet's benchmark layout, in this process or on a pool of Ray actors.

    OUT/labels/<scene>_<frame:06d>.png   8-bit NYU40 ids of every frame (the scene transformer's
                                         labels, with all the scene's frames in view)
    OUT/scenes/<scene>.json              written last, once the scene's label maps are all in
                                         place: source, sampling, frames, seconds, and the
                                         ScanNet-20 confusion counts when it has ground truth

A scene is one item (extraction.pool): a worker reads its frames where they are, extracts
the regions, labels every frame (TrainedSceneLabeler, as the daemon does for StreamScene),
writes the maps under OUT/.partial/ and moves them into labels/. A re-run skips the scenes
whose json is there; a scene that fails is reported and skipped; on Ray an actor killed
mid-scene is restarted and the scene done again (at most `max_tries` times).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from regiond.core.confusion import Confusion, EvalProtocol
from regiond.core.label_spaces import benchmark_scene_id, write_label_png
from regiond.extraction import Extractor, build_extractor
from regiond.extraction.cache import dead_attempts, job_lock, partial_dir
from regiond.extraction.job_plan import ItemSpec
from regiond.extraction.pool import RayOptions, run_items
from regiond.heads.serving import load_serving_heads

LABELS, SCENES = "labels", "scenes"


@dataclass
class LabelReport:
    """What a labelling job did; `confusion` sums every labelled scene with ground truth
    (done now or before)."""

    out: Path
    labelled: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    confusion: Confusion | None = None

    def summary(self) -> str:
        frames = sum(s["frames"] for s in self.labelled)
        line = (
            f"{len(self.labelled)} scenes labelled ({frames} frames), {len(self.skipped)} already done, "
            f"{len(self.failures)} failed, {self.seconds:.1f} s"
        )
        if self.confusion is not None and self.confusion.counts.sum():
            line += f"; mIoU (ScanNet-20, scenes with ground truth) {100 * self.confusion.miou():.1f}"
        return line


class LabelWorker:
    """A labelling job's worker (pool.run_items): payload = a scene's ItemSpec as JSON →
    the scene's record (what scenes/<scene>.json holds) as JSON.

    extractor  an Extractor, or build_extractor's arguments (a Ray actor builds its own)
    heads      a heads directory with scene/ (and/or segment/), or "bundled"
    """

    def __init__(
        self,
        out: str | Path,
        extractor: Extractor | dict,
        heads: str,
        threads: int | None = None,
        max_tries: int = 3,
        progress: tqdm | None = None,
    ):
        if threads:
            import torch  # heavy: only where a worker sets its threads (a Ray actor)

            torch.set_num_threads(threads)
        self.extractor = build_extractor(**extractor) if isinstance(extractor, dict) else extractor
        self.labeler = load_serving_heads(heads, self.extractor).scene
        if self.labeler is None:
            raise ValueError(f"--heads {heads}: no scene or segment head there")
        self.out, self.max_tries, self.progress = Path(out), max_tries, progress
        self.protocol = EvalProtocol.scannet20()

    def __call__(self, payload: str) -> str:
        spec = ItemSpec.from_json(payload)
        if (dead := dead_attempts(self.out, spec.name)) >= self.max_tries:
            raise RuntimeError(f"its writer died on each of {dead} tries")
        t0 = time.perf_counter()
        tmp = partial_dir(self.out, spec.name)
        try:
            state, truth = self.labeler.new_scene(), {}
            for frame in spec.frames():
                frame = frame.validated(self.extractor.max_pixels)
                self.labeler.label_frame(state, frame, self.extractor.extract(frame))
                if frame.labels is not None:
                    truth[int(frame.index)] = frame.labels.astype(np.int32)
                if self.progress is not None:
                    self.progress.update(1)
            refined = self.labeler.refine(state)
            if not refined:
                raise ValueError(f"{spec.source} yielded no frames")
            conf = self.protocol.confusion()
            for fl in refined:
                write_label_png(tmp / f"{spec.name}_{fl.frame_index:06d}.png", fl.label_map)
                if fl.frame_index in truth:
                    self.protocol.add(conf, truth[fl.frame_index], fl.label_map)
            record = {
                "scene": spec.name,
                "source": spec.source,
                "sampling": spec.sampling(),
                "frames": len(refined),
                "seconds": round(time.perf_counter() - t0, 3),
                "truth_frames": len(truth),
                "confusion": conf.counts.tolist() if truth else None,
                "miou": conf.miou() if truth else None,
            }
            (self.out / LABELS).mkdir(parents=True, exist_ok=True)
            for png in sorted(tmp.iterdir()):
                os.replace(png, self.out / LABELS / png.name)
            _write_json(self.out / SCENES / f"{spec.name}.json", record)  # last: the scene is done
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return json.dumps(record)


def _write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def plan_scenes(
    out: Path, sources: list[str], every: int = 1, max_frames: int | None = None, size: tuple[int, int] | None = None
) -> tuple[list[ItemSpec], list[dict]]:
    """(scenes to label, records of the scenes already labelled with the same sampling)."""
    done: dict[str, dict] = {}
    for p in sorted((out / SCENES).glob("*.json")):
        try:
            done[p.stem] = json.loads(p.read_text())
        except ValueError:
            continue  # a damaged record: the scene is labelled again
    todo, skipped, taken = [], [], set(done)
    for source in sources:
        spec = ItemSpec.scene(source, every, max_frames, size)
        spec = replace(spec, name=benchmark_scene_id(str(source)))  # as clients/scan_scene.py names it
        same = next(
            (r for r in done.values() if r.get("source") == spec.source and r.get("sampling") == spec.sampling()), None
        )
        if same is not None:
            skipped.append(same)
            continue
        name, k = spec.name, 1
        while name in taken:
            name, k = f"{spec.name}_{k}", k + 1
        taken.add(name)
        todo.append(replace(spec, name=name))
    return todo, skipped


def label_scenes(
    sources: list[str],
    out: str | Path,
    extractor: Extractor | dict,
    heads: str,
    every: int = 1,
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    ray: RayOptions | None = None,
    show_progress: bool = True,
) -> LabelReport:
    """Label every frame of each scene into `out` (see the module docstring): in this process
    with `extractor`, or on the connected Ray cluster (pool.ray_cluster) when `ray` is given,
    each actor building build_extractor(**extractor). Paths must be reachable from every node."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = LabelReport(out)
    with job_lock(out):
        todo, done = plan_scenes(out, sources, every, max_frames, size)
        report.skipped = [r["scene"] for r in done]
        by_name = {s.name: s for s in todo}

        def on_result(name: str, ok: bool, result: str, error: str) -> None:
            if ok:
                report.labelled.append(json.loads(result))
            else:
                report.failures.append((by_name[name].source, error))

        rows = [(s.name, s.to_json()) for s in todo]
        with tqdm(desc="label", unit="frame", disable=not show_progress or ray is not None) as bar:
            if ray is None:
                run_items(rows, lambda: LabelWorker(out, extractor, heads, progress=bar), on_result)
            else:
                run_items(
                    rows, partial(LabelWorker, str(out), extractor, heads, ray.threads, ray.max_tries), on_result, ray
                )
    report.confusion = EvalProtocol.scannet20().confusion()
    for r in done + report.labelled:
        if r.get("confusion"):
            report.confusion.counts += np.asarray(r["confusion"], np.int64)
    report.seconds = time.perf_counter() - t0
    return report
