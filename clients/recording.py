"""Rerun recordings of scans and streams (`--rerun FILE.rrd`, `--rerun-connect ADDR`).

Everything is logged on a `frame` timeline (the source's frame index):

    scan_scene                                   stream_video
    world                 axes (z up), NYU40     video/rgb                 the frame (JPEG)
                          classes (annotation    video/rgb/regions         regions, one annotation
                          context: names and                               per region
                          ScanNet colours)       activity/<class>          each window's score, at
    world/camera          pose (Transform3D)                               its last frame
    world/camera/image    intrinsics (Pinhole)
      …/rgb               the frame (JPEG)
      …/depth             depth (16-bit PNG, mm)
      …/regions           regions (segmentation image, one annotation per region)
      …/labels            predicted NYU40 labels (the scene head's refined ones replace them)
    world/points          the frame's back-projected points (labelled when labels came)
    world/trajectory      the camera path (at the end)
    world/scene           the fused (labelled) cloud (at the end)
    world/objects         --objects: each object's box with its class and id, and the fused
                          cloud coloured by object (at the end)

`rerun FILE.rrd` opens a recording; `rerun` alone starts a viewer that --rerun-connect
streams to (default address rerun+http://127.0.0.1:9876/proxy). Logging runs on its own
background thread (bounded), so the gRPC stream never waits on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from regiond.client.messages import decode_png
from regiond.client.replies import ActivityWindow
from regiond.client.writer import BackgroundWriter
from regiond.core.label_spaces import NYU40_NAMES, SCANNET_COLOURS
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC, RegionSet
from regiond.core.rle import MaskPixels
from regiond.core.viz import palette

POINTS_PER_FRAME = 5000  # back-projected points logged per frame (a regular pixel grid)
JPEG_QUALITY = 90
SOURCE_NAMES = {SOURCE_SAM: "SAM", SOURCE_SLIC: "SLIC"}
DEFAULT_VIEWER = "rerun+http://127.0.0.1:9876/proxy"


def add_rerun_args(p) -> None:
    p.add_argument(
        "--rerun",
        type=Path,
        default=None,
        metavar="FILE.rrd",
        help="also write a Rerun recording of the run here (open it with `rerun FILE.rrd`)",
    )
    p.add_argument(
        "--rerun-connect",
        nargs="?",
        const=DEFAULT_VIEWER,
        default=None,
        metavar="ADDR",
        help=f"also stream the recording to a running Rerun viewer (start one with `rerun`; default {DEFAULT_VIEWER})",
    )


class Recording:
    """One Rerun recording (file and/or viewer), logged on a background thread."""

    def __init__(self, application: str, path: Path | None, connect: str | None, bound: int = 16):
        self.path, self.closed = path, False
        self.stream = None
        self.writer = BackgroundWriter(bound, name="rerun-log")
        # importing rerun (and pyarrow) takes about half a second: on the writer thread, while
        # the scan connects and the daemon works on the first frames
        self.submit(self._open, application, path, connect)

    def _open(self, application: str, path: Path | None, connect: str | None) -> None:
        import rerun as rr  # heavy: only when a recording is asked for
        import rerun.blueprint as rrb

        self.rr, self.rrb = rr, rrb
        stream = rr.RecordingStream(application)
        sinks = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            sinks.append(rr.FileSink(str(path)))
        if connect:
            sinks.append(rr.GrpcSink(connect))
        stream.set_sinks(*sinks)
        stream.send_blueprint(self.blueprint())  # the layout the viewer opens with
        self.stream = stream

    def blueprint(self):
        raise NotImplementedError

    def submit(self, fn, *args) -> None:
        self.writer.submit(fn, *args)

    def log(self, entity: str, *items, frame: int | None = None, static: bool = False) -> None:
        """Log on the writer thread only (Rerun's time is per thread)."""
        if frame is not None:
            self.stream.set_time("frame", sequence=int(frame))
        self.stream.log(entity, *items, static=static)

    def close(self, ok: bool = True) -> None:
        """Write what is queued (ok) or drop it, then flush and close the sinks (once)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.close() if ok else self.writer.abort()
        finally:
            if self.stream is not None:
                self.stream.flush()
                self.stream.disconnect()

    # --- shared pieces -------------------------------------------------------------------------

    def jpeg(self, rgb: np.ndarray):
        import cv2  # heavy: only when a recording is written

        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return self.rr.EncodedImage(contents=buf.tobytes(), media_type="image/jpeg")

    def log_regions(self, entity: str, regions: RegionSet, frame: int) -> None:
        """The regions as a segmentation image (id = region index + 1, smaller regions on top)
        with one annotation per region: its source, and its class when a head named one."""
        rr = self.rr
        mp = MaskPixels.from_counts(regions.counts, regions.height, regions.width)
        ids = np.zeros(regions.width * regions.height, np.uint16)  # column-major, as RLE
        ids[mp.pixel] = mp.mask + 1
        if np.count_nonzero(ids) < mp.pixel.size:  # masks overlap (SAM): draw
            order = np.argsort(-mp.areas()[mp.mask], kind="stable")  # larger first, smaller win
            ids[mp.pixel[order]] = mp.mask[order] + 1
        rgba = (palette(len(regions)).astype(np.uint32) << np.array([24, 16, 8], np.uint32)).sum(1) | 0xFF
        labels = [-1] * len(regions) if regions.labels is None else regions.labels.tolist()
        names = regions.meta.get("label_names", {})
        infos = []
        for i, (source, label, colour) in enumerate(zip(regions.source.tolist(), labels, rgba.tolist())):
            text = f"region {i} ({SOURCE_NAMES.get(source, 'region')})"  # packed RGBA: no per-region arrays
            if label >= 0:
                text += f": {names.get(label) or label}"
            infos.append(rr.AnnotationInfo(id=i + 1, label=text, color=colour))
        self.log(
            entity,
            rr.AnnotationContext(infos),
            rr.SegmentationImage(ids.reshape(regions.width, regions.height).T),
            frame=frame,
        )


def class_context(rr, names=NYU40_NAMES):
    """NYU40 classes (name and ScanNet colour per id) as an annotation context."""
    return rr.AnnotationContext(
        [rr.AnnotationInfo(id=i, label=n, color=tuple(int(c) for c in SCANNET_COLOURS[i])) for i, n in enumerate(names)]
    )


class ScanRecording(Recording):
    """What scan_scene logs: frames, cameras, regions, labels, points, and the fused cloud."""

    def __init__(self, path: Path | None, connect: str | None):
        super().__init__("regiond_scan", path, connect)
        self.positions: dict[int, np.ndarray] = {}  # frame → camera position (a re-scan after a reconnect replaces)
        self._instances = None  # (points, object ids) of the fused cloud when its PLY has them
        self.submit(self._start)

    def blueprint(self):
        """3D (cameras, points, the fused cloud) beside the frame with its labels, with its
        regions, and its depth."""
        rrb, image = self.rrb, "world/camera/image"
        return rrb.Blueprint(
            rrb.Horizontal(
                rrb.Spatial3DView(origin="world", name="scene in 3D"),
                rrb.Vertical(
                    rrb.Spatial2DView(origin=image, contents=["$origin/rgb", "$origin/labels"], name="labels"),
                    rrb.Spatial2DView(origin=image, contents=["$origin/rgb", "$origin/regions"], name="regions"),
                    rrb.Spatial2DView(origin=image, contents=["$origin/depth"], name="depth"),
                ),
                column_shares=[3, 2],
            )
        )

    def _start(self) -> None:
        rr = self.rr
        self.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, class_context(rr), static=True)

    def frame(self, frame, regions: RegionSet, label_png: bytes) -> None:
        self.submit(self._frame, frame, regions, label_png)

    def refined(self, idx: int, png: bytes) -> None:
        self.submit(self._labels, idx, png)

    def cloud(self, ply: Path | None, label_names, objects=()) -> None:
        """The fused cloud from its PLY file (read from disk: plyfile parses a file at numpy speed,
        bytes in memory a row at a time), the camera path, and the scene's objects when given."""
        self.submit(self._cloud, ply, list(label_names))
        if objects:
            self.objects(objects)

    def objects(self, objects) -> None:
        """The scene's objects (SceneSummary.objects): boxes, and the cloud's points by object."""
        self.submit(self._objects, [(o.id, o.label_name, o.box[:3], o.box[3:]) for o in objects])

    def _objects(self, boxes) -> None:
        rr = self.rr
        ids = [b[0] for b in boxes]
        lo, hi = np.array([b[2] for b in boxes], np.float32), np.array([b[3] for b in boxes], np.float32)
        colours = palette(max(ids) + 1)[ids] if ids else np.zeros((0, 3), np.uint8)
        labels = [f"{name or 'object'} #{i}" for i, name, _, _ in boxes]
        self.log("world/objects", rr.Boxes3D(mins=lo, sizes=hi - lo, labels=labels, colors=colours), static=True)
        if self._instances is not None:
            points, inst = self._instances
            keep = inst > 0
            colours = palette(int(inst.max()) + 1)[inst[keep]]
            self.log("world/objects/points", rr.Points3D(points[keep], colors=colours), static=True)

    def _frame(self, frame, regions: RegionSet, label_png: bytes) -> None:
        rr, idx = self.rr, int(frame.index)
        cam = frame.camera
        if frame.pose is not None:
            pose = np.asarray(frame.pose, np.float64)
            self.log("world/camera", rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3]), frame=idx)
            self.positions[idx] = pose[:3, 3].astype(np.float32)
        if cam is not None:
            self.log(
                "world/camera/image",
                rr.Pinhole(image_from_camera=cam.K, resolution=[cam.width, cam.height], image_plane_distance=0.3),
                frame=idx,
            )
        self.log("world/camera/image/rgb", self.jpeg(frame.rgb), frame=idx)
        if frame.depth is not None:
            self.log("world/camera/image/depth", self._depth(frame.depth), frame=idx)
        self.log_regions("world/camera/image/regions", regions, idx)
        labels = self._labels(idx, label_png) if label_png else None
        if frame.depth is not None and cam is not None and frame.pose is not None:
            self._points(frame, labels)

    def _depth(self, depth: np.ndarray):
        import cv2  # heavy: only when a recording is written

        mm = np.nan_to_num(depth * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
        ok, buf = cv2.imencode(".png", np.clip(mm, 0, 65535).astype(np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        return self.rr.EncodedDepthImage(buf.tobytes(), media_type="image/png")  # 16-bit mm: the default unit

    def _labels(self, idx: int, png: bytes) -> np.ndarray:
        labels = decode_png(png)
        self.log("world/camera/image/labels", self.rr.SegmentationImage(labels), frame=idx)
        return labels

    def _points(self, frame, labels: np.ndarray | None) -> None:
        """A regular grid of the frame's pixels with depth, back-projected into the world."""
        cam, depth = frame.camera, frame.depth
        h, w = depth.shape
        step = max(1, int(np.ceil(np.sqrt(h * w / POINTS_PER_FRAME))))
        v, u = np.mgrid[step // 2 : h : step, step // 2 : w : step]
        z = depth[v, u]
        ok = np.isfinite(z) & (z > 0)
        u, v, z = u[ok], v[ok], z[ok]
        cam_pts = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], axis=1)
        pose = np.asarray(frame.pose, np.float64)
        world = (cam_pts @ pose[:3, :3].T + pose[:3, 3]).astype(np.float32)
        rr = self.rr
        if labels is not None and labels.shape == (h, w):
            pts = rr.Points3D(world, class_ids=labels[v, u].astype(np.uint16), radii=rr.Radius.ui_points(2.0))
        else:
            pts = rr.Points3D(world, colors=frame.rgb[v, u], radii=rr.Radius.ui_points(2.0))
        self.log("world/points", pts, frame=int(frame.index))

    def _cloud(self, ply: Path | None, label_names: list[str]) -> None:
        from plyfile import PlyData  # the PLY reader, only at the end of a recorded scan

        rr = self.rr
        if self.positions:
            path = np.stack([self.positions[k] for k in sorted(self.positions)])
            self.log("world/trajectory", rr.LineStrips3D([path], colors=[(255, 200, 0)]), static=True)
        if ply is None:
            return
        v = PlyData.read(str(ply))["vertex"].data
        points = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
        if "instance" in (v.dtype.names or ()):
            self._instances = (points, np.asarray(v["instance"]).astype(np.int64))
        if "label" in (v.dtype.names or ()):  # PLY label = index into the summary's label_names
            nyu = {n: i for i, n in enumerate(NYU40_NAMES)}
            lut = np.array([nyu.get(n, 0) for n in label_names] or [0], np.uint16)
            ids = lut[np.clip(np.asarray(v["label"]), 0, len(lut) - 1)]
            self.log("world/scene", rr.Points3D(points, class_ids=ids), static=True)
        else:
            colours = np.stack([v["red"], v["green"], v["blue"]], axis=1).astype(np.uint8)
            self.log("world/scene", rr.Points3D(points, colors=colours), static=True)


class VideoRecording(Recording):
    """What stream_video logs: frames, regions, and activity scores as time series."""

    def __init__(self, path: Path | None, connect: str | None):
        super().__init__("regiond_video", path, connect)
        self.series: set[str] = set()

    def blueprint(self):
        """The frames with their regions above the activity scores."""
        rrb = self.rrb
        return rrb.Blueprint(
            rrb.Vertical(
                rrb.Spatial2DView(origin="video", name="frames and regions"),
                rrb.TimeSeriesView(origin="activity", name="activity scores"),
                row_shares=[3, 2],
            )
        )

    def frame(self, frame, regions: RegionSet | None) -> None:
        self.submit(self._frame, frame, regions)

    def window(self, window: ActivityWindow) -> None:
        scores = [(s.name or str(s.id), float(s.score)) for s in window.scores]
        self.submit(self._window, int(window.end_frame), scores)

    def _frame(self, frame, regions: RegionSet | None) -> None:
        idx = int(frame.index)
        self.log("video/rgb", self.jpeg(frame.rgb), frame=idx)
        if regions is not None and len(regions):
            self.log_regions("video/rgb/regions", regions, idx)

    def _window(self, end_frame: int, scores: list[tuple[str, float]]) -> None:
        rr = self.rr
        for name, score in scores:
            entity = "activity/" + rr.escape_entity_path_part(name)
            if entity not in self.series:
                self.series.add(entity)
                self.log(entity, rr.SeriesLines(names=[name]), static=True)
            self.log(entity, rr.Scalars(score), frame=end_frame)
