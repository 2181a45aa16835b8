"""Scan an RGB-D scene through regiond: per-frame region overlays (and label maps when the
daemon serves a scene head), the fused point cloud and a summary.

    python clients/scan_scene.py synthetic:3 --server 127.0.0.1:50051 --out out/scan
    python clients/scan_scene.py scene0000_00.sens --every 10 --out out/scene0000_00

SCENE is a ScanNet .sens file, a ScanNet exported folder, a 7-Scenes-style folder or
synthetic:SEED. Writes into --out:
    overlays/NNNNNN.png         regions drawn over each frame
    labels/<scene>_NNNNNN.png   8-bit NYU40 label maps (ScanNet benchmark layout; scene head)
    labels_color/NNNNNN.png     the same labels as a colour picture (one colour per NYU40 class)
    scene.ply                   the fused (labelled) point cloud, binary PLY
    summary.json                what the daemon reported, plus timings (and mIoU)
When the daemon labels the frames and the scene has ground truth (ScanNet label-filt/,
synthetic rooms), the labels (the scene head's refined ones where given) are scored with
ScanNet's 20-class protocol at 640×480 and the mIoU is printed.
If the daemon restarts mid-scan, the client reconnects (with backoff) and scans the scene again
from its first frame, since the fused cloud needs every frame; frames already drawn are kept.
Exit status: 0 done, 1 bad input, 2 daemon unreachable or failed.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python clients/scan_scene.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
import numpy as np
from google.protobuf.json_format import MessageToDict
from tqdm import tqdm

import scenes
from clients import common
from core.labels import BENCHMARK_NAMES, nyu40_to_benchmark
from core.viz import colorize_labels, overlay_regions, save_png
from regions.v1 import regions_pb2 as pb

PROG = "scan_scene"
MAX_AHEAD = 16  # frames sent but not yet answered


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split("\n\n")[0],
        epilog="scene kinds:\n" + scenes.kinds_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scene", metavar="SCENE", help=".sens file, ScanNet folder, 7-Scenes folder or synthetic:SEED")
    common.add_connection_args(p)
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="output folder (default: out/scan/<scene name>)")
    p.add_argument("--every", type=int, default=1, metavar="K", help="use every K-th frame")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--size", default=None, metavar="WxH", help="resample frames to this size before sending")
    p.add_argument("--encoding", choices=("jpeg", "png", "raw"), default="jpeg",
                   help="how colour travels (raw: no coding cost, for a daemon on this machine)")
    p.add_argument("--voxel", type=float, default=0.02, metavar="M", help="voxel edge of the fused cloud, metres")
    p.add_argument("--no-overlays", action="store_true", help="do not draw region overlays")
    p.add_argument("--no-ply", action="store_true", help="do not ask for the fused point cloud")
    p.add_argument("--scene-id", default=None, help="name of the scene in outputs (default: from SCENE)")
    return p


def scene_name(spec: str) -> str:
    name = spec.replace("synthetic:", "synthetic-") if spec.startswith("synthetic:") else Path(spec.rstrip("/")).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "scene"


class Scan:
    """One scan's outputs, kept across reconnects."""

    def __init__(self, args, source, scene_id: str):
        self.args = args
        self.source = source
        self.scene_id = scene_id
        self.out: Path = args.out
        self.rgb: dict[int, object] = {}      # frames sent, not answered yet (for overlays)
        self.ahead = threading.Semaphore(MAX_AHEAD)
        self.drawn: set[int] = set()
        self.errors: list[dict] = []
        self.summary = None
        self.frames_answered = 0
        self.regions = 0
        self.truth: dict[int, object] = {}   # frame → benchmark class map (uint8, 255 ignored)
        self.pred: dict[int, object] = {}    # frame → latest predicted NYU40 map

    def requests(self, stop: threading.Event):
        opts = pb.SceneOptions(scene_id=self.scene_id, voxel_size=self.args.voxel, return_ply=not self.args.no_ply,
                               return_label_maps=True)
        first = True
        for frame in self.source:
            while not self.ahead.acquire(timeout=0.1):
                if stop.is_set():
                    return
            if stop.is_set():
                return
            self.rgb[int(frame.index)] = frame.rgb
            if frame.labels is not None:
                self.truth[int(frame.index)] = _benchmark_640(frame.labels)
            msg = common.scene_frame_pb(frame, self.args.encoding)
            if first:
                msg.options.CopyFrom(opts)
                first = False
            yield msg

    def handle(self, u, bar) -> None:
        if u.HasField("summary"):
            self.summary = u.summary
            return
        if u.HasField("refined"):
            if u.refined.label_map_png:
                self._write_labels(u.refined.frame_index, u.refined.label_map_png)
            return
        idx = int(u.frame_index)
        rgb = self.rgb.pop(idx, None)
        self.ahead.release()
        bar.update(1)
        self.frames_answered += 1
        if u.HasField("error"):
            self.errors.append({"frame": idx, "field": u.error.field, "message": u.error.message})
            bar.write(f"{PROG}: frame {idx}: {u.error.message}", file=sys.stderr)
            return
        self.regions += len(u.regions.regions)
        bar.set_postfix(regions=len(u.regions.regions), refresh=False)
        if u.label_map_png:
            self._write_labels(idx, u.label_map_png)
        if not self.args.no_overlays and rgb is not None and idx not in self.drawn:
            save_png(self.out / "overlays" / f"{idx:06d}.png",
                     overlay_regions(rgb, common.region_masks(u.regions), common.region_sources(u.regions)))
            self.drawn.add(idx)

    def _write_labels(self, idx: int, png: bytes) -> None:
        import cv2  # heavy: only when the daemon returns label maps

        d = self.out / "labels"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{self.scene_id}_{idx:06d}.png").write_bytes(png)
        # the benchmark PNG holds raw ids (near black to the eye): a picture to look at beside it
        labels = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        if labels is not None:
            save_png(self.out / "labels_color" / f"{idx:06d}.png", colorize_labels(labels))
        if idx in self.truth:
            self.pred[idx] = _benchmark_640(common.decode_png(png))

    def miou(self) -> dict | None:
        """ScanNet 20-class scores over the frames with both truth and a prediction."""
        both = [i for i in self.pred if i in self.truth]
        return miou_scores([self.truth[i] for i in both], [self.pred[i] for i in both]) if both else None


def miou_scores(truths, preds) -> dict:
    """Per-class IoU and their mean from benchmark class maps (0..19; anything else in the truth
    is ignored, anything else in a prediction counts as wrong). Classes absent from both the
    truth and the predictions have no IoU and are left out of the mean."""
    n = len(BENCHMARK_NAMES)
    conf = np.zeros((n, n + 1), np.int64)  # truth × prediction (last column: not a class)
    for t, p in zip(truths, preds):
        t, p = np.asarray(t).ravel(), np.asarray(p).ravel()
        keep = t < n
        p = np.where(p[keep] < n, p[keep], n).astype(np.int64)
        conf += np.bincount(t[keep].astype(np.int64) * (n + 1) + p, minlength=n * (n + 1)).reshape(n, n + 1)
    tp = np.diag(conf[:, :n]).astype(np.float64)
    denom = conf.sum(1) + conf[:, :n].sum(0) - tp
    iou = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
    present = np.isfinite(iou)
    return {"frames": len(truths), "miou": float(np.nanmean(iou)) if present.any() else None,
            "classes_present": int(present.sum()),
            "iou": {name: (None if np.isnan(v) else round(float(v), 4)) for name, v in zip(BENCHMARK_NAMES, iou)}}


def _benchmark_640(labels):
    """NYU40 ids → benchmark classes (255 elsewhere) at 640×480, nearest, as the benchmark compares."""
    import cv2  # heavy: only when label maps are scored

    a = np.asarray(labels)
    if a.shape != (480, 640):
        a = cv2.resize(a.astype(np.uint16), (640, 480), interpolation=cv2.INTER_NEAREST)
    return nyu40_to_benchmark(a)


def run(args) -> int:
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            return common.fail(PROG, f"--size {args.size!r}: expected WxH, e.g. 640x480", 1)
    try:
        source = scenes.open_source(args.scene, every=args.every, max_frames=args.max_frames, size=size)
    except ValueError as e:  # InputError / SourceError
        return common.fail(PROG, str(e), 1)
    scene_id = args.scene_id or scene_name(args.scene)
    args.out = args.out or Path("out") / "scan" / scene_id
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        conn = common.connect_from_args(args)
    except common.Unreachable as e:
        return common.fail(PROG, str(e))
    try:
        total = len(source)
    except TypeError:
        total = None
    scan = Scan(args, source, scene_id)
    t0 = time.perf_counter()
    attempts = 0
    while True:
        attempts += 1
        stop = threading.Event()
        scan.rgb.clear()
        scan.ahead = threading.Semaphore(MAX_AHEAD)
        bar = tqdm(total=total, desc=f"scan {scene_id}", unit="frame", file=sys.stderr, dynamic_ncols=True)
        feed = common.RequestFeed(scan.requests(stop), stop)
        call = conn.stub.StreamScene(feed, metadata=conn.metadata)
        try:
            for update in call:
                scan.handle(update, bar)
            break
        except grpc.RpcError as e:
            feed.close()
            bar.close()
            conn = common.reopen_after(e, call, conn, args, PROG)
            scan.errors.clear()
            scan.frames_answered = scan.regions = 0
        finally:
            feed.close()
            bar.close()
    conn.close()
    seconds = time.perf_counter() - t0
    return write_outputs(scan, source, seconds, attempts)


def write_outputs(scan: Scan, source, seconds: float, attempts: int) -> int:
    s = scan.summary
    out = scan.out
    if s is None:
        return common.fail(PROG, "the daemon ended the scan without a summary")
    ply = None
    if s.ply:
        ply = out / "scene.ply"
        ply.write_bytes(s.ply)
    summary = MessageToDict(s, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    summary.pop("ply", None)
    scores = scan.miou()
    summary.update({
        "miou": scores,
        "source": source.describe(), "client_seconds": round(seconds, 3),
        "frames_per_second": round(scan.frames_answered / seconds, 2) if seconds > 0 else None,
        "attempts": attempts, "frame_errors": scan.errors,
        "outputs": {"overlays": str(out / "overlays") if scan.drawn else None,
                    "labels": str(out / "labels") if (out / "labels").is_dir() else None,
                    "ply": str(ply) if ply else None},
    })
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"{PROG}: {s.frames} frames ({s.frames_failed} rejected, {s.frames_without_pose} without pose), "
          f"{s.regions} regions, {s.fused_points} fused points in {seconds:.1f} s; outputs in {out}")
    if scores is not None and scores["miou"] is not None:
        print(f"{PROG}: mIoU {100 * scores['miou']:.1f} over {scores['classes_present']} classes present "
              f"in {scores['frames']} frames (ScanNet 20-class protocol, 640×480)")
    return 0


def main(argv=None) -> int:
    return common.run_main(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
