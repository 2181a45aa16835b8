"""Synthetic RGB-D scenes: a room, a trajectory and a renderer, as Frames, a Source, a
ScanNet exported folder or a .sens file.

Labels are NYU40 ids (0 = nothing hit). The exported folder's label-filt/N.png holds NYU40 ids
directly (not ScanNet raw ids) and its regiond-scene.json says so ("label_space": "nyu40"),
which ScanNetFolderSource reads; instance-filt/N.png holds object index + 1 per pixel.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regiond.core.errors import InputError
from regiond.core.frames import Camera, Frame
from regiond.scenes.folders import NOMINAL_FPS, SCENE_META
from regiond.scenes.sens_writer import write_sens
from regiond.scenes.source import Sampling, Source
from regiond.scenes.synthetic.clutter import add_clutter
from regiond.scenes.synthetic.render import Renderer, default_camera, trajectory
from regiond.scenes.synthetic.room import Room, make_room
from regiond.scenes.synthetic.sensor import sensor_model

SCENE_FORMAT = "regiond.synthetic-scene/1"
DEPTH_SHIFT = 1000.0  # stored depth = millimetres, as ScanNet


@dataclass
class SyntheticScene:
    """A deterministic scene: the same (seed, frames, width, height) → the same pixels.

    seed    picks the room and the trajectory
    frames  length of the trajectory (one loop around the room)
    width, height  image size; the camera is default_camera(width, height)
    sensor  "clean" (perfect depth, poses and registration) or "kinect" (sensor.py: depth noise,
            holes and flying pixels at depth edges, depth-to-colour misregistration, pose drift)
    clutter True: 10-25 small things on furniture tops and the floor (clutter.py); off by default
    """

    seed: int
    frames: int = 50
    width: int = 640
    height: int = 480
    sensor: str = "clean"
    clutter: bool = False

    def __post_init__(self):
        for name in ("frames", "width", "height"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(name, f"must be a positive integer, got {v!r}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise InputError("seed", f"must be a non-negative integer, got {self.seed!r}")
        self.room: Room = add_clutter(make_room(self.seed)) if self.clutter else make_room(self.seed)
        self.camera: Camera = default_camera(self.width, self.height)
        self.poses = trajectory(self.room, self.frames)  # true poses
        self.sensor_model = sensor_model(self.sensor)
        self.tracked = self.poses if self.sensor_model is None else self.sensor_model.poses(self.poses, self.seed)
        self._renderer: Renderer | None = None

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            self._renderer = Renderer(self.room)
        return self._renderer

    def frame(self, k: int) -> Frame:
        """Frame k: RGB, depth (m), camera, pose, NYU40 labels; meta["instances"] H×W uint16.
        Through a sensor: the measured depth and the tracked pose, the colour and its maps as
        rendered, and meta["depth_instances"] the true instance of each depth pixel."""
        if not 0 <= k < self.frames:
            raise InputError("frame", f"{k} outside 0..{self.frames - 1}")
        r = self.renderer.render(self.camera, self.poses[k], noise_seed=self.seed * 100_003 + k)
        meta = {"source": f"synthetic:{self.seed}", "instances": r.instances}
        depth = r.depth
        if self.sensor_model is not None:
            depth, meta["depth_instances"] = self.sensor_model.depth(r.depth, r.instances, [self.seed, k, 0xDE9])
        return Frame(
            rgb=r.rgb,
            depth=depth,
            camera=self.camera,
            pose=self.tracked[k].copy(),
            index=k,
            time=k / NOMINAL_FPS,
            labels=r.labels,
            meta=meta,
        )

    def objects(self) -> list[dict]:
        """Instance id (as in instance maps), name, NYU40 class and world bounds of every object."""
        out = []
        for i, o in enumerate(self.room.objects):
            lo, hi = o.world_bounds()
            out.append(
                {
                    "instance": i + 1,
                    "name": o.name,
                    "nyu40": o.nyu40,
                    "bounds_min": [round(float(x), 4) for x in lo],
                    "bounds_max": [round(float(x), 4) for x in hi],
                }
            )
        return out

    def meta(self) -> dict:
        return {
            "format": SCENE_FORMAT,
            "seed": int(self.seed),
            "frames": int(self.frames),
            "width": self.width,
            "height": self.height,
            "label_space": "nyu40",
            "sensor": self.sensor,
            **({"clutter": True} if self.clutter else {}),  # the key only when on: old scenes stay as they were
            "depth_shift": DEPTH_SHIFT,
            "room": {"width": self.room.width, "depth": self.room.depth, "height": self.room.height},
            "classes": self.room.classes(),
            "objects": self.objects(),
        }


class SyntheticSource(Source):
    """`synthetic:SEED`: a synthetic scene rendered frame by frame in memory.

    Options: frames (trajectory length, default 50), width, height (default 640×480).
    """

    kind = "synthetic"

    def __init__(
        self, seed: int, sampling: Sampling | None = None, frames: int = 50, width: int = 640, height: int = 480
    ):
        super().__init__(f"synthetic:{seed}", sampling)
        self.scene = SyntheticScene(int(seed), int(frames), int(width), int(height))

    def total(self) -> int:
        return self.scene.frames

    def _frames(self, indices) -> Iterator[Frame]:
        for k in indices:
            yield self.scene.frame(k)

    def _describe(self) -> dict:
        c = self.scene.camera
        return {
            "size": [c.width, c.height],
            "camera": {"fx": c.fx, "fy": c.fy, "cx": c.cx, "cy": c.cy, "width": c.width, "height": c.height},
            "has_depth": True,
            "has_pose": True,
            "has_labels": True,
            "label_space": "nyu40",
            "classes": self.scene.room.classes(),
            "objects": len(self.scene.room.objects),
        }


def _save_matrix(path: Path, m: np.ndarray) -> None:
    np.savetxt(path, np.asarray(m, np.float64), fmt="%.9g")


def write_scene_folder(
    scene: SyntheticScene, out, progress=None, jpeg_quality: int = 95, repeat_to: int | None = None
) -> Path:
    """Write `scene` as a ScanNet exported folder (see the module docstring). Returns out.
    repeat_to: that many frames in the folder, the scene's own ones again after its last (hard
    links: a long scan in the real layout at no cost of rendering or disk)."""
    import cv2  # heavy: only when a scene is written

    out = Path(out)
    for sub in ("color", "depth", "pose", "intrinsic", "label-filt", "instance-filt"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    K = np.eye(4)
    K[:3, :3] = scene.camera.K
    for name in ("intrinsic_color", "intrinsic_depth"):
        _save_matrix(out / "intrinsic" / f"{name}.txt", K)
    for name in ("extrinsic_color", "extrinsic_depth"):
        _save_matrix(out / "intrinsic" / f"{name}.txt", np.eye(4))
    for k in range(scene.frames):
        f = scene.frame(k)
        _imwrite(out / "color" / f"{k}.jpg", f.rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        _imwrite(out / "depth" / f"{k}.png", np.rint(f.depth * DEPTH_SHIFT).astype(np.uint16))
        _imwrite(out / "label-filt" / f"{k}.png", f.labels.astype(np.uint16))
        _imwrite(out / "instance-filt" / f"{k}.png", f.meta["instances"])
        _save_matrix(out / "pose" / f"{k}.txt", f.pose)
        if progress is not None:
            progress.update(1)
    for k in range(scene.frames, repeat_to or 0):
        for sub, ext in (
            ("color", "jpg"),
            ("depth", "png"),
            ("label-filt", "png"),
            ("instance-filt", "png"),
            ("pose", "txt"),
        ):
            os.link(out / sub / f"{k % scene.frames}.{ext}", out / sub / f"{k}.{ext}")
    (out / SCENE_META).write_text(json.dumps(scene.meta(), indent=1))
    return out


def write_scene_sens(scene: SyntheticScene, path, progress=None) -> Path:
    """Write `scene` as a .sens file (JPEG colour, zlib depth in mm), with the scene's
    metadata (room, objects) beside it as <path>.json."""
    path = Path(path)
    if path.suffix != ".sens":
        raise InputError("out", f"a .sens path is needed, got {path}")
    write_sens(path, (scene.frame(k) for k in range(scene.frames)), depth_shift=DEPTH_SHIFT, progress=progress)
    path.with_name(path.name + ".json").write_text(json.dumps(scene.meta(), indent=1))
    return path


def _imwrite(path: Path, img, params=()) -> None:
    import cv2  # heavy: only when a scene is written

    if not cv2.imwrite(str(path), img, list(params)):
        raise OSError(f"could not write {path}")
