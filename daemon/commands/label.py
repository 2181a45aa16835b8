"""`regiond label SCENE... --heads HEADS --out OUT`: label every frame of many scenes with a
scene head, as a batch job (in this process, or on Ray with --ray).

SCENE is anything `regiond scene` reads (a ScanNet .sens file or exported folder, a
7-Scenes-style folder, synthetic:SEED). Writes, in ScanNet's benchmark layout:

  OUT/labels/<scene>_<frame:06d>.png   8-bit NYU40 label maps of every frame (the scene
                                       transformer's, with all the scene's frames in view)
  OUT/scenes/<scene>.json              per scene, written once its maps are all there: frames,
                                       seconds, and its ScanNet-20 mIoU when it has ground truth

The same labels as streaming the scene to `regiond serve --heads HEADS` (clients/scan_scene.py),
without a daemon. A re-run skips the scenes already done; a scene that fails is reported and
skipped (exit status 1). The last line sums up: scenes, failures, seconds, and the mIoU over
the scenes with ground truth. `regiond eval labels OUT/labels --scene SCENE` scores one scene
again.

On Ray (--ray [ADDRESS]) each actor loads the models and the heads once and labels whole
scenes; the scenes, OUT, the weights and HEADS must be on paths every node reaches:

  regiond label scans/*.sens --heads out/heads --out /shared/labels --ray HEAD:6379 --device cuda
"""

from __future__ import annotations

import argparse
import sys

from regiond.commands.extract import actor_build, add_ray_options, ray_options
from regiond.commands.regions import add_model_options


def register(sub) -> None:
    p = sub.add_parser(
        "label",
        help="label every frame of scenes with a scene head (batch job, optionally on Ray)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenes", nargs="+", metavar="SCENE", help=".sens files, ScanNet / 7-Scenes folders, synthetic:SEED")
    p.add_argument(
        "--heads",
        required=True,
        metavar="DIR|bundled",
        help="trained heads (scene/ and/or segment/, as `regiond train` writes them), or 'bundled': "
        "the heads shipped for the profile",
    )
    p.add_argument("--out", required=True, metavar="OUT", help="output directory (labels/, scenes/)")
    p.add_argument("--every", type=int, default=1, metavar="K", help="keep every K-th frame (default 1)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="at most N frames per scene")
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=None,
        metavar=("W", "H"),
        help="resample frames to W×H before extraction; default: as recorded",
    )
    add_model_options(p)
    add_ray_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from regiond.extraction.pool import ray_cluster  # torch: only when the command runs (--help stays light)
    from regiond.extraction.profiles import build_extractor
    from regiond.heads.label_job import label_scenes

    job = dict(every=args.every, max_frames=args.max_frames, size=args.size)
    ray = ray_options(args)
    if ray is None:
        extractor = build_extractor(
            args.profile, args.weights, device=args.device, preset="scene", sam_generator=args.sam_generator
        )
        report = label_scenes(args.scenes, args.out, extractor, args.heads, **job)
    else:
        with ray_cluster(ray):
            report = label_scenes(
                args.scenes,
                args.out,
                actor_build(args, preset="scene", sam_generator=args.sam_generator),
                args.heads,
                ray=ray,
                **job,
            )
    for source, error in report.failures:
        print(f"regiond label: {source}: {error}", file=sys.stderr)
    for s in report.labelled:
        miou = f", mIoU {100 * s['miou']:.1f}" if s.get("miou") is not None else ""
        print(f"{s['scene']}: {s['frames']} frames in {s['seconds']:.1f} s{miou}")
    print(report.summary())
    return 1 if report.failures else 0
