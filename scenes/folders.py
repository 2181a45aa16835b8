"""Image-folder scenes: ScanNet exported folders and 7-Scenes/TUM-style folders."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from regiond.core.errors import InputError
from regiond.core.frames import Camera, Frame, check_pose
from regiond.core.label_spaces import check_nyu40
from regiond.scenes.scannet_labels import LabelTable, load_scannet_labels
from regiond.scenes.source import Sampling, Source, SourceError, align_to_depth, camera_dict, resample

NOMINAL_FPS = 30.0  # ScanNet and 7-Scenes were both captured at 30 Hz
SCENE_META = "regiond-scene.json"  # written by the synthetic generator: {"label_space": "nyu40", ...}


# --- small readers shared by both layouts ---------------------------------------------------


def read_matrix(path: Path, shapes=((4, 4),)) -> np.ndarray:
    """A whitespace-separated text matrix (`-inf` allowed) of one of the given shapes."""
    try:
        m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, OSError) as e:
        raise SourceError(f"{path}: not a text matrix ({e})") from None
    if m.shape not in shapes:
        raise SourceError(
            f"{path}: expected a {' or '.join('×'.join(map(str, s)) for s in shapes)} matrix, got {m.shape}"
        )
    return m


def read_pose(path: Path) -> np.ndarray | None:
    """Camera-to-world pose from a text file; -inf (lost tracking) → None; NaN → error."""
    m = read_matrix(path)
    try:
        return check_pose(m)
    except InputError as e:
        raise SourceError(f"{path}: {e.message}") from None


def read_color(path: Path) -> np.ndarray:
    import cv2  # heavy: only when a frame is read

    img = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)  # RGB as decoded: no BGR copy to flip
    if img is None:
        raise SourceError(f"{path}: colour image does not decode")
    return img


def read_depth(
    path: Path, depth_shift: float, invalid: tuple[int, ...] = (), camera: Camera | None = None
) -> np.ndarray:
    """16-bit depth PNG → float32 metres (value / depth_shift); 0 and `invalid` values → 0.
    With `camera` (the sequence's, set by its first frame) a depth of another size is an error."""
    import cv2  # heavy: only when a frame is read

    d = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if d is None:
        raise SourceError(f"{path}: depth image does not decode")
    if d.ndim != 2 or d.dtype != np.uint16:
        raise SourceError(f"{path}: depth must be a single-channel 16-bit PNG, got {d.dtype} {d.shape}")
    if camera is not None and d.shape != (camera.height, camera.width):
        raise SourceError(
            f"{path}: depth is {d.shape[1]}×{d.shape[0]}, the first frame's was {camera.width}×{camera.height}"
        )
    out = d.astype(np.float32)
    out /= np.float32(depth_shift)  # in place: one array, the same values
    for v in invalid:
        out[d == v] = 0.0
    return out


def read_label(path: Path) -> np.ndarray:
    import cv2  # heavy: only when a frame is read

    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None or a.ndim != 2:
        raise SourceError(f"{path}: label image must be a single-channel PNG")
    return a


def numbered(folder: Path, pattern: str) -> dict[int, Path]:
    """{frame number: path} for the files in `folder` whose name matches `pattern` (one group: the number)."""
    rx = re.compile(pattern)
    out = {}
    for p in folder.iterdir() if folder.is_dir() else ():
        m = rx.fullmatch(p.name)
        if m:
            out[int(m.group(1))] = p
    return out


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


class FolderSource(Source):
    """A folder of numbered frames (`numbers`, in order) seen by one depth camera (`camera`)."""

    numbers: list[int]
    camera: Camera
    colour_files = "colour image"  # what a frame's colour file is called, for messages

    def total(self) -> int:
        return len(self.numbers)

    def _frames(self, indices) -> Iterator[Frame]:
        for i in indices:
            n = self.numbers[i]
            try:
                frame = self.read_frame(n)
            except SourceError as e:
                self.skip(n, e)
                continue
            yield frame

    def _numbers(self, root: Path, colors: dict[int, Path], depths: dict[int, Path]) -> list[int]:
        """Frame numbers: those with a depth image; with sampling.skip_bad also those missing
        their depth or colour file (read_frame reports them), which otherwise end the opening."""
        no_colour = sorted(set(depths) - set(colors))
        if self.sampling.skip_bad:
            return sorted(set(depths) | set(colors))
        if no_colour:
            raise SourceError(f"{root}: frames {no_colour[:5]} have depth but no {self.colour_files}")
        return sorted(depths)

    def _files(self, n: int) -> tuple[Path, Path]:
        """Frame n's colour and depth files; SourceError naming the one that is missing."""
        if n not in self.depths:
            raise SourceError(f"{self.root}: frame {n} has a colour image but no depth file")
        if n not in self.colors:
            raise SourceError(f"{self.root}: frame {n} has depth but no {self.colour_files}")
        return self.colors[n], self.depths[n]

    def read_frame(self, n: int) -> Frame:
        """Frame number n, at the depth camera's resolution."""
        raise NotImplementedError


# --- ScanNet exported folders ---------------------------------------------------------------


LABEL_TABLE = "scannetv2-labels.combined.tsv"


def find_label_table(scene: Path) -> Path | None:
    """ScanNet's label table in the scene folder or up to two folders above it."""
    scene = scene.resolve()
    for d in (scene, scene.parent, scene.parent.parent):
        if (d / LABEL_TABLE).is_file():
            return d / LABEL_TABLE
    return None


class ScanNetFolderSource(FolderSource):
    """A ScanNet scene exported by SensReader: color/N.jpg, depth/N.png (uint16, value /
    depth_shift = metres), pose/N.txt (4×4 camera-to-world; -inf = lost), intrinsic/
    intrinsic_depth.txt (or intrinsic_color.txt, scaled), optional label-filt/N.png.

    Frames come at the depth's resolution, in numeric frame order; colour and labels are
    resampled onto the depth camera's pixel grid through both intrinsics (align_to_depth).
    Labels: raw ScanNet ids mapped to NYU40 through `labels_tsv`
    (scannetv2-labels.combined.tsv; by default the one in the scene folder or up to two
    folders above it, where ScanNet's download keeps it beside scans/; ids it does not list
    are unlabelled, as in ScanNet's tools); a folder whose regiond-scene.json says
    `"label_space": "nyu40"` (the synthetic generator's) stores NYU40 ids directly (others are
    an error naming the file). Without either, labels are left out and describe() says why.
    """

    kind = "scannet-folder"
    colour_files = "color/N.jpg"

    def __init__(self, path, sampling: Sampling | None = None, labels_tsv=None, depth_shift: float = 1000.0):
        super().__init__(str(path), sampling)
        root = self.root = Path(path)
        if not root.is_dir():
            raise SourceError(f"{root}: no such folder")
        self.depth_shift = float(depth_shift)
        self.colors = numbered(root / "color", r"(\d+)\.(?:jpg|jpeg|png)")
        self.depths = numbered(root / "depth", r"(\d+)\.png")
        if not self.depths:
            raise SourceError(f"{root}: no depth/N.png frames (not a ScanNet exported folder?)")
        if not self.colors:
            raise SourceError(f"{root}: no color/N.jpg frames")
        self.numbers = self._numbers(root, self.colors, self.depths)
        meta_path = root / SCENE_META
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        dw, dh = _image_size(self.depths[min(self.depths)])
        self.camera, self.color_camera = self._cameras(dw, dh)
        self.labels = numbered(root / "label-filt", r"(\d+)\.png")
        self.instances = numbered(root / "instance-filt", r"(\d+)\.png")
        self.label_table: LabelTable | None = None
        self.label_note = "no label-filt folder"
        if self.labels:
            if self.meta.get("label_space") == "nyu40":
                self.label_note = "label-filt holds NYU40 ids (regiond-scene.json)"
            elif (labels_tsv := labels_tsv or find_label_table(root)) is not None:
                self.label_table = load_scannet_labels(labels_tsv)
                self.label_note = f"raw ids mapped to NYU40 by {labels_tsv}"
            else:
                self.label_note = (
                    f"label-filt present but not used: put {LABEL_TABLE} in the scene folder or a folder "
                    f"above it, or pass labels_tsv"
                )
                self.labels = {}

    def _read_K(self, name: str, size: tuple[int, int]) -> Camera | None:
        p = self.root / "intrinsic" / name
        if not p.is_file():
            return None
        try:
            return Camera.from_matrix(read_matrix(p, ((4, 4), (3, 3))), *size)
        except InputError as e:
            raise SourceError(f"{p}: {e.message}") from None

    def _cameras(self, width: int, height: int) -> tuple[Camera, Camera]:
        """(depth camera at width×height, colour camera at the colour images' size)."""
        csize = _image_size(self.colors[min(self.colors)])
        depth = self._read_K("intrinsic_depth.txt", (width, height))
        color = self._read_K("intrinsic_color.txt", csize)
        if depth is None and color is None:
            raise SourceError(f"{self.root}: no intrinsic/intrinsic_depth.txt or intrinsic_color.txt")
        if depth is None:  # the colour camera, scaled to the depth's size
            depth = color.scaled(width, height)
        if color is None:
            color = depth.scaled(*csize)
        return depth, color

    def read_frame(self, n: int) -> Frame:
        cam = self.camera
        color_file, depth_file = self._files(n)
        depth = read_depth(depth_file, self.depth_shift, camera=cam)
        pose_path = self.root / "pose" / f"{n}.txt"
        pose = read_pose(pose_path) if pose_path.is_file() else None
        labels = None
        if n in self.labels:
            raw = read_label(self.labels[n])
            raw = align_to_depth(raw, self._color_camera_for(raw.shape), cam, nearest=True)
            if self.label_table is not None:
                labels = self.label_table.to_nyu40(raw)  # ids the table lacks: unlabelled, as ScanNet's tools
            else:
                try:
                    labels = check_nyu40(raw, self.labels[n])
                except InputError as e:  # a bad frame (skip_bad_frames skips it)
                    raise SourceError(f"{e.message} ({SCENE_META} says label_space nyu40)") from None
        rgb = read_color(color_file)
        rgb = align_to_depth(rgb, self._color_camera_for(rgb.shape), cam)
        meta = {"source": self.spec, "frame": n}
        if self.sampling.instances and n in self.instances:  # ScanNet's and synthetic rooms' instance-filt/
            raw = read_label(self.instances[n])
            meta["instances"] = align_to_depth(raw, self._color_camera_for(raw.shape), cam, nearest=True)
        return Frame(
            rgb=rgb, depth=depth, camera=cam, pose=pose, index=n, time=n / NOMINAL_FPS, labels=labels, meta=meta
        )

    def _color_camera_for(self, shape) -> Camera:
        """The colour camera for an image of this shape (label images may be smaller)."""
        h, w = shape[:2]
        c = self.color_camera
        return c if (c.width, c.height) == (w, h) else c.scaled(w, h)

    def _describe(self) -> dict:
        cam = self.camera
        return {
            "size": [cam.width, cam.height],
            "camera": camera_dict(cam),
            "color_camera": camera_dict(self.color_camera),
            "depth_shift": self.depth_shift,
            "has_depth": True,
            "has_pose": (self.root / "pose").is_dir(),
            "has_labels": bool(self.labels),
            "labels": self.label_note,
            "scene_meta": self.meta or None,
        }


# --- 7-Scenes / TUM-style folders -----------------------------------------------------------

SEVEN_SCENES_DEFAULT_K = ((585.0, 0.0, 320.0), (0.0, 585.0, 240.0), (0.0, 0.0, 1.0))  # Kinect, 640×480
SEVEN_SCENES_INVALID = 65535  # 7-Scenes marks missing depth with 65535 as well as 0


class SevenScenesSource(FolderSource):
    """A 7-Scenes-style folder: frame-NNNNNN.color.png, frame-NNNNNN.depth.png (uint16 mm;
    0 and 65535 = none), frame-NNNNNN.pose.txt (4×4 camera-to-world), camera-intrinsics.txt
    (3×3, for the depth image; 7-Scenes' published Kinect values when the file is absent).
    Colour of another size is resampled to the depth's size."""

    kind = "7scenes-folder"

    def __init__(self, path, sampling: Sampling | None = None, depth_shift: float = 1000.0):
        super().__init__(str(path), sampling)
        root = self.root = Path(path)
        if not root.is_dir():
            raise SourceError(f"{root}: no such folder")
        self.depth_shift = float(depth_shift)
        self.depths = numbered(root, r"frame-(\d+)\.depth\.png")
        self.colors = numbered(root, r"frame-(\d+)\.color\.(?:png|jpg)")
        if not self.depths:
            seqs = sorted(p.name for p in root.glob("seq-*") if p.is_dir())
            hint = f"; it has sequences {seqs[:4]}: open one of them" if seqs else ""
            raise SourceError(f"{root}: no frame-NNNNNN.depth.png files{hint}")
        self.numbers = self._numbers(root, self.colors, self.depths)
        self.poses = numbered(root, r"frame-(\d+)\.pose\.txt")
        dw, dh = _image_size(self.depths[min(self.depths)])
        kfile = root / "camera-intrinsics.txt"
        K = read_matrix(kfile, ((3, 3), (4, 4))) if kfile.is_file() else np.array(SEVEN_SCENES_DEFAULT_K)
        self.intrinsics_from = str(kfile) if kfile.is_file() else "7-Scenes default (585, 585, 320, 240)"
        try:
            self.camera = Camera.from_matrix(K, dw, dh)
        except InputError as e:
            raise SourceError(f"{kfile}: {e.message}") from None

    def read_frame(self, n: int) -> Frame:
        cam = self.camera
        color_file, depth_file = self._files(n)
        depth = read_depth(depth_file, self.depth_shift, invalid=(SEVEN_SCENES_INVALID,), camera=cam)
        pose = read_pose(self.poses[n]) if n in self.poses else None
        f = Frame(
            rgb=read_color(color_file), pose=pose, index=n, time=n / NOMINAL_FPS, meta={"source": self.spec, "frame": n}
        )
        f = resample(f, cam.width, cam.height)
        f.depth, f.camera = depth, cam
        return f

    def _describe(self) -> dict:
        cam = self.camera
        return {
            "size": [cam.width, cam.height],
            "camera": camera_dict(cam),
            "intrinsics_from": self.intrinsics_from,
            "depth_shift": self.depth_shift,
            "has_depth": True,
            "has_pose": bool(self.poses),
            "has_labels": False,
        }
