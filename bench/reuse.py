"""Masks carried across frames vs masks generated on every frame, on synthetic data.

    .venv/bin/python bench/reuse.py --seeds 0,1 --every 5 [--room-frames 40] [--clip-frames 32]

The ground-truth masker (regiond.masks.truth, evaluation only: the true instance masks stand in
for SAM's) runs on keyframes; a MaskTracker carries its masks to the frames in between:
- rgbd: synthetic rooms of the given seeds (640×480, a loop of --loop frames, the first
  --room-frames of it), masks reprojected with depth and poses (z-buffer test);
- video: one synthetic clip of every activity class per seed (640×480, --clip-frames frames),
  masks moved by DIS optical flow.
With --decoder MODEL it also times the other way to carry video masks, prompting SAM's decoder
with the carried masks' boxes (one encoder pass per frame, a prompt per mask), beside full
generation (scene preset, 16×16 prompts) and the flow carry, on clip frames (random weights of
the model's size: times are real, masks are not, so only the cost is compared).

Prints one line per kind, rgbd then video:
  `KIND keyframe every K: carried-mask IoU 0.xx, coverage 0.xx of per-frame, mask generations 0.xx per frame`
- carried-mask IoU: for every true instance of at least 1,000 pixels on a frame between
  keyframes, the best IoU among the carried masks (SLIC's gap pieces not counted), averaged;
- coverage: on those frames, the share of the pixels per-frame masks cover (the ground truth of
  the frame) that the carried masks cover, averaged;
- mask generations per frame: keyframes / frames.
Then a `#` line per kind with counts and the time carrying took per frame.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

MIN_INSTANCE = 1000
#: Box prompts timed per frame by --decoder: the carried masks' boxes, repeated up to the tens of
#: masks SAM gives a frame (clips hold only 2–5 shapes; with random weights only the count matters).
PROMPTS = 30


class Score:
    def __init__(self):
        self.ious, self.coverage, self.frames, self.keyframes, self.carried = [], [], 0, 0, 0
        self.seconds = 0.0
        self.turn = []  # degrees the camera turns between consecutive frames (rgbd)

    def add(self, frame, props, info, truth) -> None:
        from regiond.core.regionset import SOURCE_SAM

        self.frames += 1
        if frame.pose is not None:
            if getattr(self, "_pose", None) is not None and frame.index > 0:
                r = self._pose[:3, :3].T @ frame.pose[:3, :3]
                self.turn.append(float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))))
            self._pose = frame.pose
        if info.keyframe:
            self.keyframes += 1
            return
        self.carried += 1
        carried = props.masks[props.source == SOURCE_SAM].reshape(-1, frame.height * frame.width)
        true = truth.masks.reshape(len(truth), -1)
        big = true[true.sum(axis=1) >= MIN_INSTANCE]
        if len(big):
            if len(carried):
                inter = big.astype(np.float32) @ carried.T.astype(np.float32)
                union = big.sum(1)[:, None] + carried.sum(1)[None, :] - inter
                self.ious.extend((inter / np.maximum(union, 1)).max(axis=1).tolist())
            else:
                self.ious.extend([0.0] * len(big))
        covered_true = true.any(axis=0)
        if covered_true.any():
            covered = carried.any(axis=0) if len(carried) else np.zeros_like(covered_true)
            self.coverage.append(float((covered & covered_true).sum() / covered_true.sum()))

    def line(self, kind: str, every: int) -> str:
        return (
            f"{kind} keyframe every {every}: carried-mask IoU {np.mean(self.ious):.2f}, "
            f"coverage {np.mean(self.coverage):.2f} of per-frame, "
            f"mask generations {self.keyframes / self.frames:.2f} per frame"
        )

    def details(self, kind: str) -> str:
        return (
            f"# {kind}: {self.frames} frames, {self.keyframes} keyframes, {self.carried} carried, "
            f"{len(self.ious)} instances scored (min IoU {np.min(self.ious):.2f}), "
            f"carrying + SLIC fill {1000 * self.seconds / max(self.frames, 1):.1f} ms/frame"
            + (f", camera turns {np.mean(self.turn):.1f}° a frame" if self.turn else "")
        )


def run(frames_of, config, score: Score) -> None:
    from regiond.masks.carry import MaskTracker
    from regiond.masks.cover import SamSlicCover
    from regiond.masks.slic import SlicMasker
    from regiond.masks.truth import GroundTruthMasker

    truth = GroundTruthMasker()
    masker = SamSlicCover(truth, SlicMasker())
    for frames in frames_of:
        tracker = MaskTracker(config)
        for frame in frames:
            t0 = time.perf_counter()
            props, info = tracker.propose(frame, masker)
            score.seconds += time.perf_counter() - t0
            score.add(frame, props, info, truth.from_frame(frame))
        tracker.close()


def rooms(seeds, loop: int, count: int):
    from regiond.scenes.synthetic.rgbd import SyntheticScene

    for seed in seeds:
        scene = SyntheticScene(seed, frames=loop, width=640, height=480)
        yield (scene.frame(k) for k in range(min(count, loop)))


def clips(seeds, frames: int):
    from regiond.core.frames import Frame
    from regiond.scenes.synthetic.clips import ACTIVITY_CLASSES, render_clip

    for seed in seeds:
        for label in range(len(ACTIVITY_CLASSES)):
            c = render_clip(label, seed, frames=frames, width=640, height=480)
            yield (Frame(rgb=c.frames[k], index=k, meta={"instances": c.instances[k]}) for k in range(frames))


def decoder_cost(model: str, frames: int, seed: int) -> str:
    """Seconds per frame: SAM's encoder, its decoder prompted with the true masks' boxes, full
    generation, and flow carrying, on frames of a 640×480 clip."""
    import importlib.util

    import torch
    from segment_anything import SamPredictor

    from regiond.masks.carry import CarryConfig, MaskTracker
    from regiond.masks.sam import SamMasker, generator_config
    from regiond.masks.truth import GroundTruthMasker

    spec = importlib.util.spec_from_file_location("bench_amg", Path(__file__).with_name("amg.py"))
    amg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(amg)
    sam = amg._random_sam(model)  # segment-anything's model with the sizes of `model`, seeded
    predictor = SamPredictor(sam)
    full = SamMasker(sam, generator_config("scene"), model_name=model)
    truth = GroundTruthMasker()
    tracker = MaskTracker(CarryConfig(every=frames + 2, min_coverage=0.0, method="flow", grow=False))
    clip = next(clips([seed], frames + 1))
    t = {"encoder": 0.0, "decoder": 0.0, "full": 0.0, "flow": 0.0}
    prompts = 0
    for k, frame in enumerate(clip):
        if k == 0:
            tracker.propose(frame, truth)
            continue
        t0 = time.perf_counter()
        props, _ = tracker.propose(frame, truth)
        t["flow"] += time.perf_counter() - t0
        boxes = []
        for m in props.masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        boxes = (boxes * (-(-PROMPTS // max(len(boxes), 1))))[: max(PROMPTS, len(boxes))]
        prompts += len(boxes)
        with torch.inference_mode():
            t0 = time.perf_counter()
            predictor.set_image(frame.rgb)
            t1 = time.perf_counter()
            b = predictor.transform.apply_boxes_torch(torch.as_tensor(boxes, dtype=torch.float32), frame.rgb.shape[:2])
            predictor.predict_torch(None, None, boxes=b, multimask_output=False)
            t2 = time.perf_counter()
        full(frame.rgb)
        t3 = time.perf_counter()
        t["encoder"] += t1 - t0
        t["decoder"] += t2 - t1
        t["full"] += t3 - t2
    n = frames
    return (
        f"# video carry by decoder prompts ({model} size, random weights, {n} frames, "
        f"{prompts / n:.0f} boxes a frame): "
        f"encoder {t['encoder'] / n:.2f} s + decoder {t['decoder'] / n:.2f} s a frame; full generation "
        f"{t['full'] / n:.2f} s; flow carry {1000 * t['flow'] / n:.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1", help="comma-separated seeds of the synthetic rooms and clips")
    ap.add_argument("--every", type=int, default=5, help="a keyframe at least every K frames")
    ap.add_argument(
        "--min-coverage", type=float, default=None, help="early keyframe below this share (default: the tracker's)"
    )
    ap.add_argument("--loop", type=int, default=300, help="frames of a room's camera loop (sets the motion per frame)")
    ap.add_argument("--room-frames", type=int, default=40, help="frames of each room used")
    ap.add_argument("--clip-frames", type=int, default=32, help="frames of each clip")
    ap.add_argument(
        "--no-grow", action="store_true", help="carried masks do not grow into unseen pixels by superpixels"
    )
    ap.add_argument(
        "--decoder",
        default=None,
        metavar="MODEL",
        help="also time carrying video masks by prompting SAM's decoder (tiny, vit_b, ...)",
    )
    ap.add_argument("--decoder-frames", type=int, default=2, help="frames --decoder times")
    ap.add_argument("--kinds", default="rgbd,video", help="which kinds to run (comma-separated)")
    args = ap.parse_args()

    from regiond.masks.carry import DEFAULT_MIN_COVERAGE, CarryConfig

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    cov = DEFAULT_MIN_COVERAGE if args.min_coverage is None else args.min_coverage
    scores = {}
    for kind, method, source in (
        ("rgbd", "depth", rooms(seeds, args.loop, args.room_frames)),
        ("video", "flow", clips(seeds, args.clip_frames)),
    ):
        if kind not in args.kinds.split(","):
            continue
        scores[kind] = Score()
        run(source, CarryConfig(every=args.every, min_coverage=cov, method=method, grow=not args.no_grow), scores[kind])
        print(scores[kind].line(kind, args.every), flush=True)
    for kind, s in scores.items():
        print(s.details(kind))
    if args.decoder:
        print(decoder_cost(args.decoder, args.decoder_frames, seeds[0]), flush=True)
    print(f"# seeds {seeds}, min coverage {cov}, room loop {args.loop} frames; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
