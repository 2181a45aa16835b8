"""Scan an RGB-D scene through regiond: per-frame region overlays (and label maps when the
daemon serves a scene head), the fused point cloud and a summary.

    python clients/scan_scene.py synthetic:3 --server 127.0.0.1:50051 --out out/scan
    python clients/scan_scene.py scene0000_00.sens --every 10 --out out/scene0000_00
    python clients/scan_scene.py scene0000_00.sens --overlays 20    # an overlay every 20th frame

SCENE is a ScanNet .sens file, a ScanNet exported folder, a 7-Scenes-style folder or
synthetic:SEED. Writes into --out:
    overlays/NNNNNN.jpg         regions drawn over the frames --overlays picks
    labels/<scene>_NNNNNN.png   8-bit NYU40 label maps of every frame (ScanNet benchmark layout;
                                scene head)
    labels_color/NNNNNN.png     the same labels in colour (one colour per NYU40 class), for the
                                frames with overlays
    scene.ply                   the fused (labelled) point cloud, binary PLY
    summary.json                what the daemon reported, plus timings (and mIoU)
    index.html                  a report page of all this: summary, per-class IoU, a strip of
                                overlays and label pictures, the confusion matrix (offline)
    --rerun FILE.rrd            a Rerun recording: frames, depth, cameras, regions, labels,
                                points and the fused cloud in 3D (clients/recording.py)
When the daemon labels the frames and the scene has ground truth (ScanNet label-filt/,
synthetic rooms), the labels (the scene head's refined ones where given) are scored with
ScanNet's 20-class protocol at 640×480 and the mIoU is printed.
Drawing and writing run on a background thread beside the stream, so the client keeps up
with the daemon; memory stays flat however long the scene. Beside a daemon on this machine the
client's reading and writing threads run at a lower CPU priority (--nice): the daemon is the
scan's bottleneck.
If the daemon restarts mid-scan, the client reconnects (with backoff) and scans the scene again
from its first frame, since the fused cloud needs every frame; frames already drawn are kept.
scan-progress.jsonl records which frames' outputs are written: after the client or the daemon
was killed, --resume goes on from there (the daemon sees every frame again, as the fused cloud
and the scene head's final pass need them all, but frames already written are not drawn or
written again) and the final outputs equal an uninterrupted run's. A folder holding a scan's
outputs is refused without --resume or --force (scan again from scratch).
--skip-bad-frames: a frame the scene's files cannot give (bad compression, a truncated image, a
missing depth file) is reported by index and reason and skipped; summary.json lists them.
Exit status: 0 done, 1 bad input or outputs that cannot be written, 2 daemon unreachable or
failed, 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

from regiond import scenes
from regiond.client import common
from regiond.client.connection import InputReadError, RegionError, Unreachable
from regiond.client.messages import frame_encoding
from regiond.client.priority import add_nice_arg, background_niceness, lower_thread_priority
from regiond.client.recording import ScanRecording, add_rerun_args
from regiond.client.region_client import RegionClient
from regiond.client.replies import SceneUpdate
from regiond.client.scan_objects import ScanObjects, add_objects_arg, report_section
from regiond.client.scan_outputs import ScanOutputs, add_overlays_arg, overlay_step
from regiond.client.scan_progress import Progress, ProgressError
from regiond.client.scan_report import DEMO_LABELS, labeller_heads, write_report
from regiond.client.writer import BackgroundWriter, WriterError
from regiond.core.label_spaces import benchmark_scene_id

PROG = "scan_scene"
MAX_AHEAD = 16  # frames sent but not yet answered
WRITE_AHEAD = 8  # frames answered whose outputs are not written yet


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog="scene kinds:\n" + scenes.kinds_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scene", metavar="SCENE", help=".sens file, ScanNet folder, 7-Scenes folder or synthetic:SEED")
    common.add_connection_args(p)
    p.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="output folder (default: out/scan/<scene name>)"
    )
    p.add_argument("--every", type=int, default=1, metavar="K", help="use every K-th frame")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.add_argument("--size", default=None, metavar="WxH", help="resample frames to this size before sending")
    common.add_encoding_arg(p, "colour")
    add_nice_arg(p)
    p.add_argument("--voxel", type=float, default=0.02, metavar="M", help="voxel edge of the fused cloud, metres")
    add_overlays_arg(p)
    common.add_carry_args(p, "reprojected with depth and poses; a frame without them is a keyframe")
    p.add_argument("--no-ply", action="store_true", help="do not ask for the fused point cloud")
    p.add_argument("--scene-id", default=None, help="name of the scene in outputs (default: from SCENE)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on with the scan in --out from the last frame whose outputs were written",
    )
    p.add_argument("--force", action="store_true", help="scan again into an --out folder that holds a scan's outputs")
    p.add_argument(
        "--skip-bad-frames",
        action="store_true",
        help="report and skip frames that cannot be read instead of ending the scan (default: strict)",
    )
    add_objects_arg(p)
    add_rerun_args(p)
    return p


class Scan:
    """One scan's stream state; its outputs (ScanOutputs) are kept across reconnects."""

    def __init__(self, args, source, scene_id: str, outputs: ScanOutputs, recording: ScanRecording | None = None):
        self.args = args
        self.recording = recording
        self.source = source
        self.scene_id = scene_id
        self.outputs = outputs
        self.pending: dict[int, tuple] = {}  # frame sent, not answered: (rgb if pictured, truth, frame if recorded)
        self.ahead = threading.Semaphore(MAX_AHEAD)
        self.errors: list[dict] = []
        self.summary = None
        self.frames_answered = 0
        self.regions = 0
        self.carry = common.KeyframeCount()
        self.objects = ScanObjects(outputs.out, scene_id, outputs.writer) if args.objects else None

    def restart(self) -> None:
        """Before (re)opening the stream: nothing is in flight."""
        self.pending.clear()
        self.ahead = threading.Semaphore(MAX_AHEAD)
        self.errors.clear()
        self.frames_answered = self.regions = 0
        self.carry = common.KeyframeCount()

    def frames(self, stop: threading.Event):
        """The scene's frames, at most MAX_AHEAD unanswered (read and encoded on the stream's
        request thread, at --nice)."""
        lower_thread_priority(self.args.nice)
        for position, frame in enumerate(self.source):
            while not self.ahead.acquire(timeout=0.1):
                if stop.is_set():
                    return
            if stop.is_set():
                return
            picture = self.outputs.wants_picture(position)
            self.pending[int(frame.index)] = (
                frame.rgb if picture else None,
                frame.labels,
                frame if self.recording else None,
                frame.rgb if self.objects else None,  # crops of the objects' best views
            )
            yield frame

    def wants_masks(self, position: int) -> bool:
        """Whether the position-th frame's masks are needed: for its overlay, the recording or
        the objects' id maps (the others' masks are left out of the replies)."""
        return self.recording is not None or self.objects is not None or self.outputs.wants_picture(position)

    def handle(self, u: SceneUpdate, bar) -> None:
        if u.summary is not None:
            self.summary = u.summary
            return
        if u.refined is not None:
            if self.objects is not None:
                self.objects.refined(u.refined.frame_index, u.refined.region_object_ids)
            if u.refined.label_map_png:
                self.outputs.refined(u.refined.frame_index, u.refined.label_map_png)
                if self.recording:
                    self.recording.refined(u.refined.frame_index, u.refined.label_map_png)
            return
        idx = u.frame_index
        rgb, truth, frame, full = self.pending.pop(idx, (None, None, None, None))
        self.ahead.release()
        bar.update(1)
        self.frames_answered += 1
        if u.error is not None:
            self.errors.append({"frame": idx, "field": u.error.field, "message": u.error.message})
            bar.write(f"{PROG}: frame {idx}: {u.error.message}", file=sys.stderr)
            return
        self.regions += len(u.regions)
        self.carry.add(u.regions)
        bar.set_postfix(regions=len(u.regions), refresh=False)
        self.outputs.frame(idx, rgb, u.regions, u.label_map_png, truth)
        if self.objects is not None:
            self.objects.frame(idx, full, u)
        self.outputs.frame_done(idx)
        if frame is not None:
            self.recording.frame(frame, u.regions, u.label_map_png)


def stream(scan: Scan, client: RegionClient, args, total: int | None) -> int:
    """Stream the scene until the daemon sends its summary (re-scanning after a daemon
    restart); returns the number of attempts. Closes the client."""
    attempts = 0
    try:
        while True:
            attempts += 1
            stop = threading.Event()
            scan.restart()
            bar = tqdm(total=total, desc=f"scan {scan.scene_id}", unit="frame", file=sys.stderr, dynamic_ncols=True)
            updates = client.stream_scene(
                scan.frames(stop),
                scene_id=scan.scene_id,
                voxel_size=args.voxel,
                ply=not args.no_ply,
                label_maps=True,
                objects=args.objects,
                masks=scan.wants_masks,
                stop=stop,
                **common.carry_args(args),
            )
            try:
                for update in updates:
                    scan.handle(update, bar)
                return attempts
            except InputReadError as e:  # a bad frame of a strict source
                raise common.ClientExit(common.fail(PROG, str(e), 1)) from None
            except RegionError as e:
                common.wait_for_return(e, client, PROG)
            finally:  # also after Ctrl-C or an output that cannot be written: the stream stops
                updates.close()
                bar.close()
    finally:
        client.close()


def run(args) -> int:
    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            return common.fail(PROG, f"--size {args.size!r}: expected WxH, e.g. 640x480", 1)
    if args.resume and args.force:
        return common.fail(PROG, "--resume and --force exclude each other", 1)
    try:  # without instance maps: the client never looks at them (the daemon finds the objects)
        opts = {"every": args.every, "max_frames": args.max_frames, "skip_bad_frames": args.skip_bad_frames}
        source = scenes.open_source(args.scene, size=size, instances=False, **opts)
    except ValueError as e:  # InputError / SourceError
        return common.fail(PROG, str(e), 1)
    source.on_skip = lambda s: tqdm.write(f"{PROG}: frame {s['frame']} skipped: {s['reason']}", file=sys.stderr)
    scene_id = args.scene_id or benchmark_scene_id(args.scene)
    args.out = args.out or Path("out") / "scan" / scene_id
    args.encoding = frame_encoding(args.encoding, args.server)
    args.nice = background_niceness(args.nice, args.server)
    try:
        progress = Progress.prepare(args.out, scan_settings(args, scene_id), args.resume, args.force)
    except ProgressError as e:
        return common.fail(PROG, str(e), 1)
    if progress.complete:
        print(f"{PROG}: the scan in {args.out} is complete; nothing to resume (--force scans it again)")
        return 0
    try:
        client = common.client_from_args(args, args.encoding)
    except Unreachable as e:
        return common.fail(PROG, str(e))
    try:  # what the labeller was trained on, for the summary and the report page
        heads = labeller_heads(client.info(timeout=args.connect_timeout))
    except RegionError as e:
        client.close()
        return common.fail(PROG, common.describe(e))
    progress.start()
    try:
        total = len(source)
    except TypeError:
        total = None
    t0 = time.perf_counter()
    recording = ScanRecording(args.rerun, args.rerun_connect) if args.rerun or args.rerun_connect else None
    try:
        with BackgroundWriter(WRITE_AHEAD, nice=args.nice) as writer:
            outputs = ScanOutputs(args.out, scene_id, overlay_step(args.overlays, total), writer, progress)
            scan = Scan(args, source, scene_id, outputs, recording)
            if progress.done:
                print(
                    f"{PROG}: resuming: the outputs of {len(progress.done)} frames are written; the daemon "
                    f"sees every frame again (the fused cloud needs them all)",
                    file=sys.stderr,
                )
            attempts = stream(scan, client, args, total)
            outputs.finish()
        seconds = time.perf_counter() - t0
        rc = write_outputs(scan, source, seconds, attempts, heads)
        if rc == 0:
            progress.finish()
        if recording:
            finish_recording(scan, recording)
        return rc
    except WriterError as e:
        return common.fail(PROG, f"cannot write the outputs in {args.out}: {e}", 1)
    finally:
        progress.close()
        if recording:
            recording.close(ok=False)  # after finish_recording: nothing left to drop


def scan_settings(args, scene_id: str) -> dict:
    """What makes two runs the same scan (a resumed run must match the journal's)."""
    return {
        "scene": str(args.scene),
        "scene_id": scene_id,
        "every": args.every,
        "max_frames": args.max_frames,
        "size": args.size,
        "encoding": args.encoding,
        "voxel": args.voxel,
        "overlays": args.overlays,
        "no_ply": args.no_ply,
        "skip_bad_frames": args.skip_bad_frames,
        "keyframe_every": args.keyframe_every,
        "min_coverage": args.min_coverage,
        "objects": args.objects,
    }


def finish_recording(scan: Scan, recording: ScanRecording) -> None:
    """The fused cloud and the camera path, then wait for the recording to be written."""
    s, ply = scan.summary, scan.outputs.out / "scene.ply"
    if s is not None:
        recording.cloud(ply if s.ply else None, s.label_names, s.objects)
    t0 = time.perf_counter()
    recording.close()
    where = recording.path or scan.args.rerun_connect
    print(
        f"{PROG}: Rerun recording {where} ({time.perf_counter() - t0:.1f} s to finish writing); "
        f"open it with `rerun {where}`"
        if recording.path
        else f"{PROG}: Rerun recording streamed to {where}"
    )


def write_outputs(scan: Scan, source, seconds: float, attempts: int, heads: list[dict]) -> int:
    s = scan.summary
    out = scan.outputs.out
    if s is None:
        return common.fail(PROG, "the daemon ended the scan without a summary")
    ply = None
    if s.ply:
        ply = out / "scene.ply"
        ply.write_bytes(s.ply)
    summary = dataclasses.asdict(s)
    summary.pop("ply")
    scores = scan.outputs.scores.result()
    drawn = scan.outputs.drawn
    summary.update(
        {
            "miou": scores,
            "source": source.describe(),
            "client_seconds": round(seconds, 3),
            "client_nice": scan.args.nice,
            "frames_per_second": round(scan.frames_answered / seconds, 2) if seconds > 0 else None,
            "attempts": attempts,
            "heads": heads,
            "frame_errors": scan.errors,
            "skipped_frames": source.skipped,
            "resumed_frames": len(scan.outputs.resumed),
            "keyframes": {"generated": scan.carry.keyframes, "carried": scan.carry.carried},
            "outputs": {
                "overlays": str(out / "overlays") if drawn else None,
                "overlay_frames": len(drawn),
                "overlay_step": scan.outputs.step,
                "labels": str(out / "labels") if (out / "labels").is_dir() else None,
                "ply": str(ply) if ply else None,
            },
        }
    )
    found = scan.objects.finish(s, ply) if scan.objects is not None else None
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    page = write_report(out, summary, scan.outputs.scores.confusion(), scan.args.rerun, [report_section(out)])
    print(
        f"{PROG}: {s.frames} frames ({s.frames_failed} rejected, {s.frames_without_pose} without pose), "
        f"{s.regions} regions, {s.fused_points} fused points in {seconds:.1f} s; outputs in {out} "
        f"(report: {page})"
    )
    if scan.carry.line():
        print(f"{PROG}: {scan.carry.line()}")
    if found:
        print(f"{PROG}: {found}")
    if scores is not None and scores["miou"] is not None:
        print(
            f"{PROG}: mIoU {100 * scores['miou']:.1f} over {scores['classes_present']} classes present "
            f"in {scores['frames']} frames (ScanNet 20-class protocol, 640×480)"
        )
    if heads and all(h["origin"] == "generated" for h in heads):
        print(f"{PROG}: note: {DEMO_LABELS}")
    return 0


def main(argv=None) -> int:
    return common.run_main(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
