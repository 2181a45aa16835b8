"""The daemon's CPU per scene frame, stage by stage, in-process: what StreamScene spends on
each 640×480 RGB-D frame, without gRPC or a client (the load-robust figure behind
bench/scan.py's "daemon alone", since CPU time, unlike frames/s, hardly depends on what
else the machine runs).

    python bench/scene_stages.py [--frames 30] [--scene DIR] [--seed 5] [--rounds 2]

Frames: a synthetic room (scenes' synthetic:SEED) rendered once into a ScanNet-style folder
(about 0.5 s a frame; --scene DIR keeps it for the next run), read back as scan_scene reads
it (JPEG colour, mm depth). Stages, as daemon/service/scene_stream.py runs them: extraction with the
lite profile (its 3D statistics also timed alone), per-frame labels of the bundled heads,
the label PNG, the region message, voxel fusion (every 4th pixel), and at the scene's end the scene
transformer's refinement, its label maps and PNGs (painted as they are sent), the fused cloud and
its PLY. Prints CPU ms per frame (process time of this one process, best of --rounds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=30, help="frames in the scene (default 30)")
    ap.add_argument("--seed", type=int, default=5, help="synthetic room seed")
    ap.add_argument(
        "--scene",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the rendered folder here and reuse it (default: a temporary folder)",
    )
    ap.add_argument("--rounds", type=int, default=2, help="passes over the scene (the best is reported)")
    args = ap.parse_args()

    import tempfile

    from regiond import scenes
    from regiond.extraction.profiles import build_extractor
    from regiond.geometry import POINTS_KEY, VoxelFusion, fit_to_size, region_geometry
    from regiond.heads.serving import load_serving_heads
    from regiond.scenes.synthetic import SyntheticScene, write_scene_folder
    from regiond.service.convert import RegionLabels, label_map_png, region_set_pb
    from regiond.service.scene_stream import DEFAULT_VOXEL, FUSION_STRIDE

    with tempfile.TemporaryDirectory(prefix="bench-scene-stages-") as tmp:
        folder = args.scene or Path(tmp) / "scene"
        if not (folder / "color").is_dir() or len(list((folder / "color").iterdir())) != args.frames:
            write_scene_folder(SyntheticScene(args.seed, args.frames, 640, 480), folder)
        frames = list(scenes.open_source(str(folder)))
    extractor = build_extractor("lite")
    labeler = load_serving_heads("bundled", extractor).scene
    best: dict[str, float] = {}

    def painted(fl):  # the label map is painted when first read: as the daemon reads it, at once
        _ = fl.label_map  # not an assert: `python -O` would skip it
        return fl

    load_start = os.getloadavg()[0]
    for _ in range(args.rounds):
        cost: dict[str, float] = {}

        def timed(name, fn):
            t0 = time.process_time()
            result = fn()
            cost[name] = cost.get(name, 0.0) + time.process_time() - t0
            return result

        state, fusion = labeler.new_scene(), VoxelFusion(DEFAULT_VOXEL)
        for f in frames:
            f.meta[POINTS_KEY] = None  # as the daemon asks: the 3D statistics' points go on to the fusion
            regions = timed("extraction (lite, 3D statistics included)", lambda: extractor.extract(f))
            masks = extractor.masker(f.rgb).regions
            timed("  of which 3D statistics", lambda: region_geometry(masks, f.depth, f.camera, f.pose))
            fl = timed("per-frame labels (segment head)", lambda: painted(labeler.label_frame(state, f, regions)))
            timed("label PNG", lambda: label_map_png(fl.label_map))
            labels = RegionLabels(fl.region_labels, fl.region_scores, labeler.meta.names())
            timed(
                "region message",
                lambda: region_set_pb(regions, None, f.index, world=True, labels=labels).SerializeToString(),
            )
            points = f.meta.pop(POINTS_KEY)
            timed(
                "voxel fusion",
                lambda: fusion.add_frame(f, labels=fl.label_map, stride=FUSION_STRIDE, points=points),
            )
        refined = timed("refinement (scene transformer)", lambda: labeler.refine(state))
        timed("refined maps and PNGs", lambda: [label_map_png(r.label_map) for r in refined])
        cloud = timed("fused cloud", fusion.cloud)
        timed("cloud PLY (fit to 48 MiB)", lambda: fit_to_size(cloud, fusion.voxel, 48 << 20))
        for name, seconds in cost.items():
            best[name] = min(best.get(name, float("inf")), 1000 * seconds / len(frames))
    print(
        f"bench/scene_stages: {len(frames)} frames 640x480 of synthetic:{args.seed}, lite + bundled heads, "
        f"best of {args.rounds}; load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, "
        f"{os.cpu_count()} cpus"
    )
    print("daemon CPU per frame, by stage (process time):")
    for name, ms in best.items():
        print(f"  {name:44s} {ms:6.1f} ms")
    total = sum(ms for name, ms in best.items() if not name.startswith("  "))
    print(f"  {'total':44s} {total:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
