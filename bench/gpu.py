"""The first thing to run on a machine with a GPU: one table of what regiond does on CUDA,
each figure beside the CPU's where one can be had in the time.

    .venv/bin/python bench/gpu.py [--budget 480] [--frames 8]

Rows (random weights of the official shapes: the cost does not depend on the weights' values):
  CUDA tests           the tests that need a CUDA device (DINOv2 and exact pooling on the GPU
                       against the CPU)
  amg ViT-H            bench/amg.py at ViT-H size, the paper's image preset (32x32 prompts),
                       segment-anything's generator and regiond's fast one, s/frame
  DINOv2 ViT-L/14      features of a 640x480 frame with exact mean pooling of 100 masks, ms/frame
  balanced stream      StreamVideo through a daemon in this process: SAM ViT-B + SLIC, DINOv2
                       ViT-B/14, 640x480 7-Scenes frames, frames/s
  paper stream         the same with SAM ViT-H + SLIC, DINOv2 ViT-L/14
  carried masks        the balanced stream with masks generated every 5th frame and carried by
                       optical flow between (CarryOptions.keyframe_every = 5)
The random SAM decoders are calibrated as bench/amg.py does (75 masks survive the preset's
thresholds, as trained weights leave). Each row runs in a process of its own with a time
limit; the whole run keeps within --budget seconds (8 minutes: GPU rows first, then the CPU
figures while time is left; a CPU figure that does not fit says so).
Without CUDA it says so and exits 0. --dry-run runs every row on this machine's CPU with the
tiny random models and small frames (what the tests use), to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CUDA_TESTS = (
    "tests/test_features_dinov2.py::test_gpu_matches_cpu",
    "tests/test_features_pooling.py::test_gpu_matches_cpu",
)
#: row → (what it measures, unit, GPU seconds allowed, CPU seconds allowed; 0: no CPU figure)
ROWS = {
    "tests": ("CUDA tests", "", 120, 0),
    "amg": ("amg ViT-H image preset: reference / fast", "s/frame", 150, 0),
    "dinov2": ("DINOv2 ViT-L/14 + exact pooling, 640x480", "ms/frame", 90, 90),
    "balanced": ("balanced stream (SAM ViT-B, DINOv2 ViT-B/14)", "frames/s", 120, 120),
    "paper": ("paper stream (SAM ViT-H, DINOv2 ViT-L/14)", "frames/s", 150, 0),
    "carry": ("carried masks, balanced, keyframe every 5", "frames/s", 120, 120),
}
RESULT = "RESULT "


# --- rows (each in its own process: `gpu.py --row NAME --device D`) --------------------------


def row_tests(device: str, dry: bool) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", *CUDA_TESTS], cwd=REPO, capture_output=True, text=True
    )
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-200:]
    return {"value": re.sub(r" in [\d.]+s.*", "", tail.strip("= ")), "ok": p.returncode == 0}


def row_amg(device: str, dry: bool) -> dict:
    args = ["--model", "vit_h", "--preset", "image", "--device", device]
    if dry:
        args = ["--model", "tiny", "--preset", "activity", "--survivors", "12", "--size", "160x120"]
    p = subprocess.run([sys.executable, str(BENCH / "amg.py"), *args], cwd=REPO, capture_output=True, text=True)
    total = re.search(r"^total\s+([\d.]+)\s+([\d.]+)", p.stdout, re.M)
    if p.returncode != 0 or not total:
        raise RuntimeError(f"bench/amg.py failed: {(p.stderr or p.stdout)[-400:]}")
    ref, ours = map(float, total.groups())
    return {"value": f"{ref:.2f} / {ours:.2f}"}


def frames_640(n: int, dry: bool) -> list:
    """The shared 7-Scenes frames (a synthetic room without them), 640x480 (dry: 160x120)."""
    from live import SHARED_FRAMES

    from regiond import scenes

    spec = str(SHARED_FRAMES) if SHARED_FRAMES.is_dir() else "synthetic:1"
    size = (160, 120) if dry else (640, 480)
    return [f.rgb for f in scenes.open_source(spec, max_frames=n, size=size)]


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def row_dinov2(device: str, dry: bool, frames: int) -> dict:
    import numpy as np
    import torch
    from pooling import ellipse_masks

    from regiond.features.dinov2 import ARCHS, Dinov2Backbone, create_vit
    from regiond.features.pooling import pool_masks

    name = "dinov2_tiny" if dry else "dinov2_vitl14"
    backbone = Dinov2Backbone(create_vit(ARCHS[name], seed=0, device=device), name, device=device)
    images = frames_640(frames, dry)
    masks = torch.from_numpy(ellipse_masks(100, *images[0].shape[:2])).to(device)
    with torch.inference_mode():
        pool_masks(backbone(images[0]), masks)  # warm-up: kernels, allocator
        _sync(device)
        t0 = time.perf_counter()
        for rgb in images:
            out = pool_masks(backbone(rgb), masks)
        _sync(device)
        seconds = (time.perf_counter() - t0) / len(images)
    assert out.shape[0] == 100 and np.isfinite(out.float().cpu().numpy()).all()
    return {"value": f"{1000 * seconds:.0f}"}


def random_extractor(profile: str, device: str, dry: bool, rgb):
    """The profile's Extractor with random weights of the official shapes, its SAM decoder
    calibrated as bench/amg.py does (75 survivors; dry: the tiny models, 12)."""
    from amg import _random_sam, calibrate

    from regiond.extraction.extractor import Extractor
    from regiond.extraction.profiles import PROFILES
    from regiond.features.dinov2 import ARCHS, Dinov2Backbone, create_vit
    from regiond.masks.cover import SamSlicCover
    from regiond.masks.sam import SamMasker, build_sam_model, generator_config, spread_random_decoder
    from regiond.masks.sam_fast import FastMaskGenerator
    from regiond.masks.slic import SlicMasker

    p = PROFILES[profile]
    sam_model = "tiny" if dry else p.masker.sam_model
    sam = build_sam_model("tiny", seed=0, device=device) if dry else _random_sam(sam_model, device)
    sam = spread_random_decoder(sam)
    preset = "activity" if dry else "image"
    config = generator_config(preset, box_nms_thresh=1.0, crop_nms_thresh=1.0)
    calibrate(sam, FastMaskGenerator(sam, config), rgb, config, 0.35, 12 if dry else 75)
    name = "dinov2_tiny" if dry else p.backbone
    vit = create_vit(ARCHS[name], seed=0, device=device)
    return Extractor(
        masker=SamSlicCover(SamMasker(sam, config, model_name=sam_model), SlicMasker()),
        backbone=Dinov2Backbone(vit, name, max_side=p.max_side, device=device),
        profile=profile,
        work_side=p.work_side,
    )


def stream_rate(extractor, images, options=None) -> float:
    """frames/s of a StreamVideo through a daemon in this process (raw frames, loopback)."""
    import tempfile

    import grpc

    from regiond.api.v1 import regions_pb2 as pb
    from regiond.api.v1 import regions_pb2_grpc as pb_grpc
    from regiond.client.messages import image_pb
    from regiond.service.server import RegionServer, ServeConfig

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        cfg = ServeConfig(listen="127.0.0.1:0", data_dir=Path(tmp), index=False, warmup=False)
        server = RegionServer(cfg, extractor=extractor).start()
        try:
            channel = grpc.insecure_channel(server.address)
            stub = pb_grpc.RegionServiceStub(channel)
            msgs = [pb.VideoFrame(image=image_pb(rgb, "raw"), index=i) for i, rgb in enumerate(images)]
            if options is not None:
                msgs[0].options.CopyFrom(options)
            list(stub.StreamVideo(iter(msgs[:1])))  # warm-up
            t0 = time.perf_counter()
            ups = list(stub.StreamVideo(iter(msgs)))
            seconds = time.perf_counter() - t0
            channel.close()
        finally:
            server.stop(grace=1)
    bad = [u for u in ups if u.HasField("error")]
    if len(ups) != len(images) or bad:
        raise RuntimeError(f"{len(ups)} updates for {len(images)} frames, {len(bad)} errors")
    return len(images) / seconds


def row_stream(profile: str, device: str, dry: bool, frames: int, carry: bool = False) -> dict:
    from regiond.api.v1 import regions_pb2 as pb

    images = frames_640(frames, dry)
    extractor = random_extractor(profile, device, dry, images[0])
    options = pb.VideoOptions(carry=pb.CarryOptions(keyframe_every=5)) if carry else None
    return {"value": f"{stream_rate(extractor, images, options):.2f}"}


def run_row(name: str, device: str, dry: bool, frames: int) -> dict:
    if name == "tests":
        return row_tests(device, dry)
    if name == "amg":
        return row_amg(device, dry)
    if name == "dinov2":
        return row_dinov2(device, dry, frames)
    if name == "carry":
        return row_stream("balanced", device, dry, frames, carry=True)
    return row_stream(name, device, dry, frames)


# --- the table ----------------------------------------------------------------------------


def measure(name: str, device: str, dry: bool, frames: int, limit: float) -> str:
    """One row on one device, in a process of its own, within `limit` seconds."""
    if limit < 5:
        return "no time left"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--row", name, "--device", device, "--frames", str(frames)]
    if dry:
        cmd.append("--dry-run")
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return f"over {limit:.0f} s"
    line = next((x for x in p.stdout.splitlines() if x.startswith(RESULT)), None)
    if p.returncode != 0 or line is None:
        why = (p.stderr.strip().splitlines() or ["failed"])[-1]
        return f"failed: {why[:60]}"
    out = json.loads(line[len(RESULT) :])
    return out["value"] + ("" if out.get("ok", True) else " (FAILED)")


def table(dry: bool, frames: int, budget: float) -> list[tuple[str, str, str, str]]:
    end = time.monotonic() + budget
    gpu = "cpu" if dry else "cuda"
    got: dict[tuple[str, str], str] = {}
    for name, (_, _, gpu_limit, _) in ROWS.items():  # the GPU figures first: they are the point
        got[name, "gpu"] = measure(name, gpu, dry, frames, min(gpu_limit, end - time.monotonic()))
        print(f"  {name} on {gpu}: {got[name, 'gpu']}", file=sys.stderr, flush=True)
    for name, (_, _, _, cpu_limit) in ROWS.items():
        if cpu_limit:
            got[name, "cpu"] = measure(name, "cpu", dry, max(2, frames // 4), min(cpu_limit, end - time.monotonic()))
            print(f"  {name} on cpu: {got[name, 'cpu']}", file=sys.stderr, flush=True)
    return [(what, unit, got[name, "gpu"], got.get((name, "cpu"), "—")) for name, (what, unit, _, _) in ROWS.items()]


def describe_gpu() -> str:
    import torch

    p = torch.cuda.get_device_properties(0)
    return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole table (default 480)")
    ap.add_argument("--frames", type=int, default=8, help="frames per stream and per features row (default 8)")
    ap.add_argument("--dry-run", action="store_true", help="every row on the CPU with the tiny models")
    ap.add_argument("--row", choices=sorted(ROWS), help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(BENCH))  # amg, pooling, live: sibling scripts
    if args.row:
        print(RESULT + json.dumps(run_row(args.row, args.device, args.dry_run, args.frames)), flush=True)
        return 0
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print(
            f"bench/gpu: no CUDA device here (torch {torch.__version__}, torch.cuda.is_available() is False): "
            f"nothing to measure. Run it first thing on a machine with a GPU; its table goes in docs/benchmarks.md."
        )
        return 0
    t0 = time.monotonic()
    rows = table(args.dry_run, args.frames, args.budget)
    machine = "dry run on this machine's CPU, tiny random models" if args.dry_run else describe_gpu()
    print(
        f"bench/gpu: {machine}; {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f}; "
        f"{time.monotonic() - t0:.0f} s (budget {args.budget:.0f} s)"
    )
    print(f"| {'measurement':<46} | {'unit':<8} | {'GPU':>22} | {'CPU':>22} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 24}|{'-' * 24}|")
    for what, unit, g, c in rows:
        print(f"| {what:<46} | {unit:<8} | {g:>22} | {c:>22} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
