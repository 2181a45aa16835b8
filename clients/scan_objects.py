"""What clients/scan_scene.py --objects writes besides its usual outputs:

    objects.json              the scene's objects: id, class, score, centroid, box
                              [xmin, ymin, zmin, xmax, ymax, zmax] (metres, world frame), points,
                              frames, best_view {frame, box [x0, y0, x1, y1], crop}
    objects/NNN.jpg           a crop of each object's best view
    object_ids/NNNNNN.png     per frame, each pixel's object id as it streamed (16-bit PNG, 0: none)
    object_ids/final.json     {id as streamed: final id} after the daemon's merges (0: dropped)
    instances/<scene>.txt     ScanNet's instance-benchmark layout over scene.ply's points:
    instances/pred_mask/      one `mask_file label_id confidence` line per object, one 0/1 line
                              per point in each mask file (`regiond eval instances` reads it)
    scene.ply                 (as always) now with an `instance` property per point

Per frame the regions' object ids as they streamed are drawn into object_ids/ at once; the
daemon's final ids (after merges) come after the last frame, as a table beside the maps
(rewriting every map would cost the client as much again as drawing it), so nothing per frame
is kept but its regions' ids. A small crop (pixels, encoded only
at the end) is kept for the largest view of each id seen so far, of regions covering at least
MIN_CROP_SHARE of the frame (at most MAX_CROPS, the smallest dropped first).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from regiond.client.replies import SceneObject, SceneSummary, SceneUpdate
from regiond.client.writer import BackgroundWriter
from regiond.core.instance_files import write_instance_masks
from regiond.core.regionset import RegionSet
from regiond.core.rle import MaskPixels

OUTPUTS = ("objects.json", "objects", "object_ids", "instances")
MAX_CROPS = 256
MIN_CROP_SHARE = 0.002
CROP_SIDE = 128  # pixels, the crop's longer side at most
MAX_ID = 65535  # what a 16-bit id map holds
FINAL_IDS = "final.json"


def add_objects_arg(p) -> None:
    p.add_argument(
        "--objects",
        action="store_true",
        help="the scene's 3D objects (the daemon's object map): objects.json, crops, per-frame id maps, "
        "ScanNet's instance layout, boxes in the Rerun recording, a table on the report",
    )


class ScanObjects:
    def __init__(self, out: Path, scene_id: str, writer: BackgroundWriter):
        self.out, self.scene_id, self.writer = out, scene_id, writer
        self.online: dict[int, np.ndarray] = {}  # frame → its regions' ids as streamed
        self.final: dict[int, np.ndarray] = {}  # frame → its regions' final ids
        self.crops: dict[int, tuple[int, int, np.ndarray]] = {}  # online id → (area, frame, crop of its best view)
        self.reasons: dict[str, int] = {}
        self.too_many = False
        (out / "object_ids").mkdir(parents=True, exist_ok=True)

    def frame(self, idx: int, rgb: np.ndarray | None, update: SceneUpdate) -> None:
        ids = np.asarray(
            update.object_ids if update.object_ids is not None else np.zeros(len(update.regions)), np.int64
        )
        self.online[idx] = ids
        if update.objects_reason:  # counted by kind ("no pose", "pose disagrees with the map", ...)
            kind = update.objects_reason.split(":")[0]
            self.reasons[kind] = self.reasons.get(kind, 0) + 1
        if ids.size and ids.max() > MAX_ID:
            self.too_many = True
        self.writer.submit(self._frame, idx, rgb, update.regions, ids)

    def refined(self, idx: int, ids) -> None:
        if ids is not None and len(ids):
            self.final[idx] = np.asarray(ids, np.int64)

    def _frame(self, idx: int, rgb: np.ndarray | None, regions: RegionSet, ids: np.ndarray) -> None:
        (self.out / "object_ids" / f"{idx:06d}.png").write_bytes(_png16(self._id_map(regions, ids)))
        if rgb is None:
            return
        least = MIN_CROP_SHARE * regions.width * regions.height
        for area, box, oid in zip(regions.areas.tolist(), regions.boxes, ids.tolist()):
            if oid and area >= least and area > self.crops.get(oid, (0,))[0]:
                self.crops[oid] = (int(area), idx, _crop(rgb, box))
        if len(self.crops) > MAX_CROPS:
            for oid, _ in sorted(self.crops.items(), key=lambda kv: kv[1][0])[: len(self.crops) - MAX_CROPS]:
                del self.crops[oid]

    @staticmethod
    def _id_map(regions: RegionSet, ids: np.ndarray) -> np.ndarray:
        """H×W uint16 ids; where masks overlap the larger region's, as the object map decides."""
        mp = MaskPixels.from_counts(regions.counts, regions.height, regions.width)
        out = np.zeros(regions.width * regions.height, np.uint16)  # column-major, as RLE
        ids = np.minimum(ids, MAX_ID).astype(np.uint16)
        if mp.pixel.size > np.count_nonzero(np.bincount(mp.pixel, minlength=out.size)):  # masks overlap
            order = np.argsort(mp.areas()[mp.mask], kind="stable")  # smaller first, larger win
            out[mp.pixel[order]] = ids[mp.mask[order]]
        else:
            out[mp.pixel] = ids[mp.mask]
        return out.reshape(regions.width, regions.height).T

    def finish(self, summary: SceneSummary, ply: Path | None) -> str:
        """Write the final outputs (once the writer has written every frame's); returns a line
        saying what was found."""
        lut = {}
        for idx, final in self.final.items():  # online id → final id (merges are global)
            online = self.online.get(idx)
            if online is not None and len(online) == len(final):
                lut.update(zip(online.tolist(), final.tolist()))
        lut.pop(0, None)
        (self.out / "object_ids" / FINAL_IDS).write_text(json.dumps({str(k): v for k, v in sorted(lut.items())}))
        objects = [_object_json(o, self._best_crop(o, lut)) for o in summary.objects]
        (self.out / "objects.json").write_text(json.dumps(objects, indent=1))
        if ply is not None:
            from plyfile import PlyData  # the PLY reader: only at the end

            v = PlyData.read(str(ply))["vertex"].data
            if "instance" in (v.dtype.names or ()):
                entries = [(o.id, o.label if o.label is not None else 0, o.confidence) for o in summary.objects]
                write_instance_masks(self.out / "instances", self.scene_id, np.asarray(v["instance"]), entries)
        why = ", ".join(f"{n} {k}" for k, n in sorted(self.reasons.items()))
        return (
            f"{len(summary.objects)} objects ({summary.objects_dropped} dropped as too small or seen in too few "
            f"frames; {summary.frames_without_objects} frames without object ids{': ' + why if why else ''}): "
            f"{self.out / 'objects.json'}, instances/, object_ids/"
        )

    def _best_crop(self, o: SceneObject, lut: dict) -> str | None:
        """The crop of the object's best view (else of its largest one kept), written as objects/NNN.jpg."""
        mine = [c for oid, c in self.crops.items() if lut.get(oid) == o.id]
        if not mine:
            return None
        same = [c for c in mine if c[1] == o.best_frame]
        _, _, crop = max(same or mine, key=lambda c: c[0])
        path = self.out / "objects" / f"{o.id:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_jpeg(crop))
        return f"objects/{path.name}"


def _png16(ids: np.ndarray) -> bytes:
    import cv2  # heavy: only when maps are written

    # level 1, unfiltered: a third of the time of the default filters, files as small (id maps are flat)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(ids, np.uint16), params)
    return buf.tobytes()


def _crop(rgb: np.ndarray, box) -> np.ndarray:
    """The pixels of box [x0, y0, x1, y1], at most CROP_SIDE on the longer side."""
    import cv2  # heavy: only when crops are made

    h, w = rgb.shape[:2]
    x0, y0 = min(max(int(box[0]), 0), w - 1), min(max(int(box[1]), 0), h - 1)
    x1, y1 = min(max(int(np.ceil(box[2])), x0 + 1), w), min(max(int(np.ceil(box[3])), y0 + 1), h)
    crop = rgb[y0:y1, x0:x1]
    scale = CROP_SIDE / max(crop.shape[:2])
    if scale < 1:
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        return cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return crop.copy()


def _jpeg(rgb: np.ndarray) -> bytes:
    import cv2  # heavy: only when crops are written

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


def _object_json(o: SceneObject, crop: str | None) -> dict:
    return {
        "id": o.id,
        "class": o.label_name or (str(o.label) if o.label is not None else None),
        "class_id": o.label,
        "score": round(o.score, 4),
        "confidence": round(o.confidence, 4),
        "centroid": [round(v, 4) for v in o.centroid],
        "box": [round(v, 4) for v in o.box],
        "points": o.point_count,
        "frames": o.frames,
        "best_view": {"frame": o.best_frame, "box": [round(v, 1) for v in o.best_box], "crop": crop},
    }


def report_section(out: Path) -> str:
    """The report page's table of objects (objects.json), with each one's crop."""
    path = out / "objects.json"
    if not path.is_file():
        return ""
    objects = json.loads(path.read_text())
    rows = []
    for o in objects:
        crop = o["best_view"].get("crop")
        img = f'<img src="{html.escape(crop)}" alt="object {o["id"]}" style="max-height:80px">' if crop else ""
        lo, hi = np.array(o["box"][:3]), np.array(o["box"][3:])
        size = " × ".join(f"{v:.2f}" for v in hi - lo)
        rows.append(
            f"<tr><td>{img}</td><td class=num>{o['id']}</td><td>{html.escape(str(o['class'] or '–'))}</td>"
            f"<td class=num>{o['score']:.2f}</td><td class=num>{o['points']}</td><td class=num>{o['frames']}</td>"
            f"<td class=num>{size}</td><td class=num>{o['best_view']['frame']}</td></tr>"
        )
    return (
        f"<h2>Objects: {len(objects)}</h2><p>Each object's best view (the frame where it covers the most "
        f"pixels), its class by the vote of its regions' labels, its points in the fused cloud, the frames it "
        f"was seen in and its box in metres (objects.json; ScanNet's instance layout in instances/).</p>"
        f"<table><tr><th>best view</th><th>id</th><th>class</th><th>score</th><th>points</th><th>frames</th>"
        f"<th>size x × y × z (m)</th><th>frame</th></tr>{''.join(rows)}</table>"
    )
