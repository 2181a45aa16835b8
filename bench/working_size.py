"""What a profile's working size costs and changes: frames larger than it are processed with
their long side at it, masks returned at the frame's own size.

    .venv/bin/python bench/working_size.py [--sides 480,640,800,960,1280,0] [--frames 8]

Lite profile, each working size against the frames at their own size (side 0), in one run:
  cost      extraction ms (CPU, a worker thread) of a 1920x1080 frame (the shared 7-Scenes
            frames upscaled, as bench/live.py streams them)
  regions   how the regions change: per region at the frame's own size, the IoU of the
            working-size region that covers most of it (area-weighted mean)
  labels    the bundled scene heads' per-frame labels on generated rooms rendered at
            1280x960: mIoU against their ground truth
  P@5       temporal P@5 (box queries, regions match) on the shared test.mp4 upscaled 4x
            (1360x1024), every 2nd frame indexed
Prints one row per working size and the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from live import source_images  # bench/ is the script folder, first on sys.path

import regiond  # noqa: F401  (sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "video" / "test.mp4"


def cpu_ms(fn, items) -> float:
    """CPU ms per item of fn over items, in a worker thread (as the daemon runs extraction)."""
    out = []

    def work():
        fn(items[0])
        t0 = time.process_time()
        for x in items:
            fn(x)
        out.append(1000 * (time.process_time() - t0) / len(items))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return out[0]


def region_agreement(ex, native, images) -> float:
    """Area-weighted mean, over the native regions, of the IoU of the working-size region
    covering most of each."""
    import numpy as np

    from regiond.core.frames import Frame
    from regiond.extraction.working_size import at_size, working_frame

    total = weight = 0.0
    for rgb in images:
        a = native.masker(rgb).regions.labels.ravel().astype(np.int64)
        work = working_frame(Frame(rgb=rgb), ex.work_side)
        b = at_size(ex.masker(work.rgb).regions, *rgb.shape[:2]).labels.ravel().astype(np.int64)
        na, nb = a.max() + 1, b.max() + 1
        inter = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb)
        area_a, area_b = inter.sum(1), inter.sum(0)
        best = inter.argmax(1)
        iou = inter[np.arange(na), best] / (area_a + area_b[best] - inter[np.arange(na), best])
        total += float((iou * area_a).sum())
        weight += float(area_a.sum())
    return total / weight


def scene_miou(ex, frames) -> float:
    from regiond.core.label_spaces import UNLABELLED
    from regiond.heads.scores import Confusion
    from regiond.heads.serving import load_serving_heads

    labeler = load_serving_heads("bundled", ex).scene
    conf = Confusion(labeler.meta.class_ids, tuple(labeler.meta.class_names))
    state = labeler.new_scene()
    for f in frames:
        fl = labeler.label_frame(state, f, ex.extract(f))
        keep = f.labels != UNLABELLED
        conf.add_ids(f.labels[keep], fl.label_map[keep])
    return 100 * conf.miou()


def temporal_p5(ex, frames) -> float:
    from regiond.index.evaluation.temporal import evaluate_temporal

    return evaluate_temporal(frames, ex, source="test.mp4 x4", every=2).precision["regions"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sides", default="480,640,800,960,1280,0", help="working sizes (0: the frame's own size)")
    ap.add_argument("--frames", type=int, default=8, help="frames for the cost, regions and labels")
    ap.add_argument("--no-p5", action="store_true", help="skip the temporal P@5 (the slowest part)")
    args = ap.parse_args()
    import cv2

    from regiond import scenes
    from regiond.extraction.profiles import build_extractor
    from regiond.scenes.synthetic import SyntheticScene

    sides = [int(s) for s in args.sides.split(",")]
    images, spec = source_images((1920, 1080))
    images = images[: args.frames]
    room = SyntheticScene(7, args.frames, 1280, 960)
    rooms = [room.frame(k) for k in range(args.frames)]
    video = []
    if not args.no_p5 and VIDEO.is_file():
        for f in scenes.open_source(str(VIDEO), every=2):
            h, w = f.rgb.shape[:2]
            f.rgb = cv2.resize(f.rgb, (4 * w, 4 * h), interpolation=cv2.INTER_LINEAR)
            video.append(f)
    load_start = os.getloadavg()[0]
    native = build_extractor("lite", work_side=None, announce=lambda m: None)
    rows = []
    for side in sides:
        ex = build_extractor("lite", work_side=side or None, announce=lambda m: None)
        cost = cpu_ms(ex.extract, images)
        agree = region_agreement(ex, native, images[:4]) if side else 1.0
        miou = scene_miou(ex, rooms)
        p5 = temporal_p5(ex, video) if video else float("nan")
        rows.append((side, cost, agree, miou, p5))
        print(f"  working size {side or 'native':>6}: done", file=sys.stderr, flush=True)
    print(
        f"bench/working_size: lite profile; cost on {len(images)} 1920x1080 frames of {spec.rsplit('/', 1)[-1]}, "
        f"labels on synthetic:7 at 1280x960 ({len(rooms)} frames), P@5 on test.mp4 x4 ({len(video)} frames); "
        f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, {os.cpu_count()} cpus"
    )
    base = rows[-1][1] if sides[-1] == 0 else float("nan")
    print(f"  {'long side':>9} {'ms/frame':>9} {'vs native':>9} {'region IoU':>10} {'labels mIoU':>11} {'P@5':>6}")
    for side, cost, agree, miou, p5 in rows:
        print(f"  {side or 'native':>9} {cost:9.1f} {cost / base:9.2f} {agree:10.3f} {miou:11.2f} {p5:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
