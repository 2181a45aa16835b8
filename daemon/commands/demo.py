"""`regiond demo`: the main job on the embedded default, on a real photo that ships inside
scikit-image (no sample data or weights needed).

Each step is its own function so that later parts (streaming) can reuse and extend them.
After the photo, the demo starts the daemon (`regiond serve` on a free loopback port), scans a
generated RGB-D room through it with clients/scan_scene.py (with its 3D objects, counted against
the room's true ones), streams a generated activity clip with clients/stream_video.py, and
stops it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from regiond.commands.regions import add_model_options, process_image
from regiond.commands.serve import spawn_daemon
from regiond.core.analytics import rerun_analytics_off
from regiond.scenes.synthetic import ACTIVITY_CLASSES, SyntheticScene, render_clip, write_video

#: Photos bundled with scikit-image (skimage.data), all real RGB pictures.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def register(sub) -> None:
    p = sub.add_parser("demo", help="regions of a bundled real photo: overlay picture and summary", description=__doc__)
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output directory (default: out/demo)")
    p.add_argument("--photo", default="astronaut", choices=PHOTOS, help="which bundled photo (default: astronaut)")
    add_model_options(p)
    p.add_argument(
        "--no-daemon",
        action="store_true",
        help="only the photo: skip starting the daemon, the scene scan and the video stream",
    )
    p.add_argument(
        "--scene-frames",
        type=int,
        default=8,
        metavar="N",
        help="frames of the generated RGB-D room streamed through the daemon (default: 8)",
    )
    p.add_argument(
        "--heads",
        default=None,
        metavar="DIR",
        help="trained heads for the daemon to serve (labels and activities); default: the "
        "bundled heads for the profile, else small ones trained here (regiond.heads.demo_heads)",
    )
    p.add_argument("--no-heads", action="store_true", help="serve regions only: no labels or activities")
    p.set_defaults(func=run)


def load_photo(name: str = "astronaut") -> np.ndarray:
    """A real photo from scikit-image's bundled data, H×W×3 uint8."""
    from skimage import data  # heavy: only when the command runs (--help stays light)

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose from {PHOTOS}")
    return getattr(data, name)()


def regions_step(extractor, rgb: np.ndarray, name: str, out_dir: Path):
    """Extract regions, write `<name>.regions.npz` and `<name>.overlay.png`; return the ImageResult."""
    return process_image(extractor, rgb, name, out_dir)


def write_summary(result, profile: str, out_dir: Path) -> Path:
    """summary.json with the counts, coverage, timings and files of the demo."""
    path = out_dir / "summary.json"
    path.write_text(json.dumps({"profile": profile, **result.as_dict()}, indent=2) + "\n")
    return path


def run(args) -> int:
    from regiond.extraction.profiles import build_extractor  # torch: only when the command runs (--help stays light)

    out_dir = Path(args.out)
    extractor = build_extractor(
        args.profile, weights_dir=args.weights, device=args.device, sam_generator=args.sam_generator
    )
    rgb = load_photo(args.photo)
    result = regions_step(extractor, rgb, args.photo, out_dir)
    summary = write_summary(result, extractor.profile, out_dir)
    print(f"profile {extractor.profile}: {result.line()}")
    print(f"overlay: {result.files['overlay']}")
    print(f"regions: {result.files['regions']}")
    print(f"summary: {summary}")
    if args.no_daemon:
        return 0
    heads = args.heads
    if heads is None and not args.no_heads:
        from regiond.heads.demo_heads import demo_heads  # torch: only when the command runs (--help stays light)

        heads = demo_heads(out_dir / "heads", extractor)
    return daemon_steps(out_dir, extractor.profile, args.weights, args.scene_frames, heads, args.sam_generator)


# --- the daemon part: serve, scan a generated scene, stream a generated clip ------------------


def start_daemon(
    out_dir: Path, profile: str, weights=None, heads=None, timeout: float = 180.0, sam_generator: str = "fast"
):
    """`regiond serve` on a free loopback port; returns (process, address). Its log goes to
    out_dir/daemon.log."""
    args = [
        "--listen",
        "127.0.0.1:0",
        "--profile",
        profile,
        "--data-dir",
        out_dir / "daemon-data",
        "--grace",
        "5",
        "--sam-generator",
        sam_generator,
    ]
    args += ["--weights", weights] if weights else []
    args += ["--heads", heads] if heads else []
    return spawn_daemon(args, out_dir / "daemon.log", timeout)


def stop_daemon(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_client(module: str, *args, env: dict | None = None) -> None:
    """A client as its own process (as a user runs it); raises when it fails."""
    rc = subprocess.call([sys.executable, "-m", module, *map(str, args)], env=env)
    if rc != 0:
        raise RuntimeError(f"{module} exited with status {rc}")


STRUCTURE = (1, 2, 22)  # NYU40 wall, floor, ceiling


def objects_line(scan_dir: Path, room: SyntheticScene) -> str:
    """How many objects the scan found (objects.json) against the room's true count: things
    (furniture, doors, windows, pictures) and structure (walls, floor, ceiling) apart when a
    scene head named the objects' classes."""
    found = json.loads((scan_dir / "objects.json").read_text())
    structure = sum(o["nyu40"] in STRUCTURE for o in room.objects())
    true = len(room.objects())
    line = f"objects: {len(found)} found in the scan ({scan_dir / 'objects.json'})"
    if any(o.get("class_id") is not None for o in found):
        pieces = sum(o.get("class_id") in STRUCTURE for o in found)
        line += (
            f": {len(found) - pieces} things and {pieces} pieces of wall, floor or ceiling by the scene head's classes"
        )
    return (
        f"{line}; the room has {true - structure} things (furniture, doors, windows, pictures) and {structure} "
        f"walls, floor and ceiling (some may be out of the scanned frames' view)"
    )


def daemon_steps(
    out_dir: Path, profile: str, weights, scene_frames: int, heads=None, sam_generator: str = "fast"
) -> int:
    proc, address = start_daemon(out_dir, profile, weights, heads, sam_generator=sam_generator)
    print(f"daemon: {address} (log {out_dir / 'daemon.log'})")
    scan_dir = out_dir / "scan"
    rrd = scan_dir / "scan.rrd"
    env = rerun_analytics_off(out_dir / "config")  # the demo's own Rerun settings: no usage data sent
    try:
        # frames spread over the room's whole walk: the scene transformer needs views of the
        # whole room (the first 8 consecutive frames: refined mIoU 21, every 6th: 58)
        run_client(
            "regiond.client.scan_scene",
            "synthetic:7",
            "--server",
            address,
            "--out",
            scan_dir,
            "--every",
            max(1, SyntheticScene.frames // scene_frames),
            "--max-frames",
            scene_frames,
            "--size",
            "320x240",
            "--rerun",
            rrd,
            "--objects",
            "--force",
            env=env,
        )
        print(objects_line(scan_dir, SyntheticScene(7)))
        clip = render_clip(label=0, seed=1, frames=32)
        video = write_video(out_dir / "clip.mp4", clip.frames, fps=15.0)
        print(f"clip: {video} ({ACTIVITY_CLASSES[clip.label]}, {len(clip.frames)} frames)")
        # the bundled activity head was trained on 8 frames spread over 16-frame clips
        run_client(
            "regiond.client.stream_video",
            video,
            "--server",
            address,
            "--jsonl",
            out_dir / "clip.jsonl",
            "--window-span",
            16,
            "--rerun",
            out_dir / "clip.rrd",
            env=env,
        )
    finally:
        rc = stop_daemon(proc)
    print(f"daemon stopped (status {rc})")
    print(f"scene scan: {scan_dir} (overlays/, labels_color/, scene.ply, objects.json, instances/, summary.json)")
    print(f"scan report: {scan_dir / 'index.html'} (open it in a browser: works offline)")
    print(f"scan recording: {rrd} (open it in the Rerun viewer: `{Path(sys.executable).parent / 'rerun'} {rrd}`)")
    print(f"video results: {out_dir / 'clip.jsonl'} (and {out_dir / 'clip.rrd'}: frames, regions, activity scores)")
    return 0
