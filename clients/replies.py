"""What the daemon answers, as plain data: the dataclasses RegionClient returns.

Field names and meanings are the API's (protos/regions/v1/regions.proto); regions come as
`regiond.core` RegionSets, masks and label maps as numpy arrays.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from functools import cache

import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.client.messages import decode_png, region_set
from regiond.core.regionset import RegionSet
from regiond.core.rle import decode_many


def from_message(cls, msg):
    """A dataclass of plain fields (numbers, strings, bytes, lists, dicts, nested such
    dataclasses) from the message with the same field names; a nested dataclass with a
    from_message of its own is made by it."""
    kw = {}
    floats32 = _float32_fields(msg.DESCRIPTOR)
    for name, hint in _field_types(cls):
        value = getattr(msg, name)
        if name in floats32:
            value = shortest(value)
        elif dataclasses.is_dataclass(hint):
            value = _nested(hint, value)
        elif typing.get_origin(hint) is list:
            item = typing.get_args(hint)[0]
            value = [_nested(item, v) for v in value] if dataclasses.is_dataclass(item) else list(value)
        elif typing.get_origin(hint) is dict:
            value = dict(value)
        kw[name] = value
    return cls(**kw)


def _nested(cls, msg):
    own = cls.__dict__.get("from_message")
    return cls.from_message(msg) if own is not None else from_message(cls, msg)


def shortest(value: float) -> float:
    """A float32 field's value as written (0.02), not as widened to a double (0.019999999552965164)."""
    return float(str(np.float32(value)))


@cache
def _float32_fields(descriptor) -> frozenset:
    return frozenset(f.name for f in descriptor.fields if f.type == f.TYPE_FLOAT and not _repeated(f))


def _repeated(f) -> bool:
    return f.label == f.LABEL_REPEATED if hasattr(f, "label") else f.is_repeated


@cache
def _field_types(cls) -> tuple:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


# --- info -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    role: str  # "masker" or "backbone"
    name: str
    feature_dim: int  # backbones
    weights: str  # checkpoint file name, or "none" / "random"


@dataclass(frozen=True)
class TrainedOn:
    """What one trained head learnt from (a head directory's config.json, meta.trained_on)."""

    head: str  # its directory: "segment", "scene" or "activity"
    dataset: str
    origin: int  # regions.v1.DataOrigin: 1 generated (a demonstration), 2 own data, 3 mixed, 0 unknown
    items: int
    frames: int
    clips: int
    profile: str
    held_out_metric: str
    held_out_score: float
    held_out_on: str
    summary: str  # all of it in one line


@dataclass(frozen=True)
class HeadInfo:
    kind: str  # "scene", "activity", "segment"
    name: str
    class_ids: list[int]
    class_names: list[str]
    window: int  # activity: frames per window
    trained_on: list[TrainedOn]  # one per head directory behind it; empty when not recorded


@dataclass(frozen=True)
class ServerInfo:
    """The daemon: its version, profile, models, heads, limits and index."""

    version: str
    profile: str
    profile_note: str  # e.g. why the embedded default was chosen
    models: list[ModelInfo]
    feature_dim: int
    heads: list[HeadInfo]
    max_message_bytes: int
    max_pixels: int
    queue_size: int
    index_images: int
    index_regions: int
    index_normaliser: str
    state: str  # "starting" (every call but GetInfo answers UNAVAILABLE), "serving", "stopping", "failed"
    state_detail: str  # while starting: the step and its progress
    workers: int = 0  # threads running the models (a live client keeps workers + 1 frames in flight)
    max_streams: int = 0  # concurrent streams accepted (0: no cap)


# --- indexing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageError:
    image_id: str
    code: int  # a grpc status code: 3 = INVALID_ARGUMENT, 13 = INTERNAL
    field: str
    message: str


@dataclass(frozen=True)
class IndexSummary:
    """One index (or remove) call: what it did, per-image errors, and the index's totals after."""

    received: int
    indexed: int
    skipped: int  # already indexed
    removed: int
    regions: int  # regions added by this call
    errors: list[ImageError]
    total_images: int
    total_regions: int


# --- streams ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameError:
    """A problem with one frame of a stream; the stream goes on."""

    code: int  # a grpc status code: 3 = INVALID_ARGUMENT, 13 = INTERNAL
    field: str  # the offending field: "image", "depth", "intrinsics", "pose", "masks"
    message: str


@dataclass(frozen=True)
class ClassScore:
    id: int
    name: str
    score: float


@dataclass(frozen=True)
class ActivityWindow:
    start_frame: int
    end_frame: int  # inclusive
    frame_indices: list[int]  # the frames the head saw
    scores: list[ClassScore]  # every class, best first
    start_time: float = 0.0  # live streams: the span the window covered, on the stream's clock
    end_time: float = 0.0


@dataclass
class VideoUpdate:
    """The daemon's answer to one video frame: its regions (or error), and the activity
    windows this frame completed (with an activity head)."""

    frame_index: int
    regions: RegionSet | None  # None when error is set
    error: FrameError | None
    windows: list[ActivityWindow]
    server_seconds: float  # time in the daemon, queueing included
    skipped: list[int] = dataclasses.field(default_factory=list)  # live: frames the daemon dropped since the last

    @classmethod
    def from_message(cls, msg: pb.VideoUpdate) -> VideoUpdate:
        error = from_message(FrameError, msg.error) if msg.HasField("error") else None
        return cls(
            frame_index=int(msg.frame_index),
            regions=region_set(msg.regions) if msg.HasField("regions") else None,
            error=error,
            windows=[from_message(ActivityWindow, w) for w in msg.windows],
            server_seconds=msg.server_seconds,
            skipped=[int(i) for i in msg.skipped],
        )

    @property
    def queue_seconds(self) -> float | None:
        """Seconds the frame waited in the daemon's work queue (None: an error)."""
        return None if self.regions is None else self.regions.meta.get("seconds", {}).get("queue")


@dataclass(frozen=True)
class SceneObject:
    """One 3D object of a scene (SceneOptions.objects: stream_scene(objects=True))."""

    id: int  # as in SceneUpdate.object_ids (final ids)
    label: int | None  # class by the vote of its regions' labels (scene head), NYU40 id
    label_name: str
    score: float  # the winning class's share of the vote (0 without a head)
    confidence: float  # class-agnostic: share of the frames it was in view that found it
    centroid: tuple[float, float, float]  # world metres
    box: tuple[float, float, float, float, float, float]  # xmin, ymin, zmin, xmax, ymax, zmax (world metres)
    point_count: int  # points of the fused cloud
    frames: int  # frames with a region of it
    best_frame: int  # the frame where its regions cover the most pixels ...
    best_box: tuple[float, float, float, float]  # ... and their box there: x0, y0, x1, y1

    @classmethod
    def from_message(cls, m: pb.SceneObject) -> SceneObject:
        lo, hi, b = m.box_min, m.box_max, m.best_box
        return cls(
            id=int(m.id),
            label=int(m.label) if m.HasField("label") else None,
            label_name=m.label_name,
            score=shortest(m.score),
            confidence=shortest(m.confidence),
            centroid=tuple(shortest(v) for v in (m.centroid.x, m.centroid.y, m.centroid.z)),
            box=tuple(shortest(v) for v in (lo.x, lo.y, lo.z, hi.x, hi.y, hi.z)),
            point_count=int(m.point_count),
            frames=int(m.frames),
            best_frame=int(m.best_frame),
            best_box=tuple(shortest(v) for v in (b.x0, b.y0, b.x1, b.y1)),
        )


@dataclass(frozen=True)
class SceneSummary:
    """The last update of a scene stream."""

    scene_id: str
    frames: int  # frames received
    frames_failed: int  # answered with a FrameError
    regions: int
    frames_without_pose: int  # no pose, or lost tracking
    frames_without_depth: int
    fused_points: int  # points in the fused, voxelised cloud
    ply: bytes  # binary PLY (x y z, red green blue[, label]) when asked for
    label_names: list[str]  # index = label id in the PLY, when labelled
    seconds: float
    ply_voxel_size: float  # voxel edge of the cloud in `ply` (coarser when thinned to fit a message)
    objects: list[SceneObject]  # objects=True: the scene's objects, by id
    objects_dropped: int  # objects left out as too small or seen in too few frames
    frames_without_objects: int  # frames whose regions got no object ids (their updates say why)


@dataclass(frozen=True)
class RefinedFrame:
    """The scene head's labels for one frame after it saw the whole scene."""

    frame_index: int
    region_labels: np.ndarray  # per region, in the frame's region order; -1 unknown
    label_map_png: bytes  # 8-bit PNG of NYU40 ids, 0 = unlabelled
    region_object_ids: np.ndarray | None = None  # objects=True: each region's final object (0: none)

    @property
    def label_map(self) -> np.ndarray:
        """H×W uint8 NYU40 ids (0 = unlabelled)."""
        return decode_png(self.label_map_png)


@dataclass
class SceneUpdate:
    """One update of a scene stream: a frame's regions (or error) and label map; after the
    last frame, a frame's refined labels (scene head) or, last of all, the summary."""

    frame_index: int
    regions: RegionSet | None
    error: FrameError | None = None
    label_map_png: bytes = b""  # per-frame labels (scene head, label_maps=True)
    label_scores: np.ndarray | None = None  # N×C class probabilities of the regions (scene head)
    refined: RefinedFrame | None = None
    summary: SceneSummary | None = None
    server_seconds: float = 0.0
    object_ids: np.ndarray | None = None  # objects=True: each region's 3D object (0: none)
    objects_reason: str = ""  # objects=True: why the regions have no object ids ("" when they have)

    @property
    def label_map(self) -> np.ndarray | None:
        """H×W uint8 NYU40 ids (0 = unlabelled), or None when the update has none."""
        return decode_png(self.label_map_png) if self.label_map_png else None

    @classmethod
    def from_message(cls, msg: pb.SceneUpdate) -> SceneUpdate:
        regions, scores = None, None
        if msg.HasField("regions"):
            regions = region_set(msg.regions)
            if any(r.label_scores for r in msg.regions.regions):
                scores = np.array([list(r.label_scores) for r in msg.regions.regions], np.float32)
        refined = None
        if msg.HasField("refined"):
            r = msg.refined
            labels = np.array(r.region_labels, np.int64)
            objects = np.array(r.region_object_ids, np.int64) if r.region_object_ids else None
            refined = RefinedFrame(int(r.frame_index), labels, r.label_map_png, objects)
        return cls(
            frame_index=int(msg.frame_index),
            regions=regions,
            error=from_message(FrameError, msg.error) if msg.HasField("error") else None,
            label_map_png=msg.label_map_png,
            label_scores=scores,
            refined=refined,
            summary=from_message(SceneSummary, msg.summary) if msg.HasField("summary") else None,
            server_seconds=msg.server_seconds,
            object_ids=np.array([r.object_id for r in msg.regions.regions], np.int64) if regions is not None else None,
            objects_reason=msg.objects_reason,
        )


# --- search -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionHit:
    region_id: int
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 (x1, y1 exclusive)
    mask: np.ndarray | None  # H×W bool, when the search asked for masks


@dataclass(frozen=True)
class SearchHit:
    image_id: str
    score: float  # the best region's (match="regions": the weighted mean of best matches)
    regions: list[RegionHit]  # its best regions
    metadata: dict[str, str]
    width: int
    height: int

    @classmethod
    def from_message(cls, msg: pb.SearchHit) -> SearchHit:
        with_masks = [r for r in msg.regions if r.mask.counts]
        masks = iter(decode_many([r.mask.counts for r in with_masks], msg.height, msg.width) if with_masks else ())
        regions = [
            RegionHit(
                r.region_id,
                shortest(r.score),
                (r.box.x0, r.box.y0, r.box.x1, r.box.y1),
                next(masks) if r.mask.counts else None,
            )
            for r in msg.regions
        ]
        return cls(msg.image_id, shortest(msg.score), regions, dict(msg.metadata), msg.width, msg.height)


class SearchHits(list):
    """The hits of one search, best first (a list of SearchHit), and what was searched."""

    def __init__(self, hits=(), searched_images: int = 0, searched_regions: int = 0, seconds: float = 0.0):
        super().__init__(hits)
        self.searched_images = searched_images
        self.searched_regions = searched_regions
        self.seconds = seconds  # in the daemon

    @classmethod
    def from_message(cls, msg: pb.SearchResponse) -> SearchHits:
        hits = [SearchHit.from_message(h) for h in msg.hits]
        return cls(hits, int(msg.searched_images), int(msg.searched_regions), msg.seconds)
