"""The object map of one StreamScene call (SceneOptions.objects): regiond.objects on the
stream's frames, and its results as API messages."""

from __future__ import annotations

import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.core.frames import Frame
from regiond.core.regionset import RegionSet
from regiond.geometry import PointCloud
from regiond.objects import FrameObjects, ObjectConfig, ObjectMap, ObjectsResult, summarise


class SceneObjects:
    def __init__(self, max_depth: float):
        self.map = ObjectMap(ObjectConfig(max_depth=max_depth))
        self.frames_without = 0

    def add(self, frame: Frame, regions: RegionSet, labels: np.ndarray | None) -> FrameObjects:
        got = self.map.add(frame, regions, labels)
        self.frames_without += bool(got.reason)
        return got

    def finish(self, cloud: PointCloud, labels: dict[int, np.ndarray] | None) -> ObjectsResult:
        """Final ids, objects over the cloud's points; the cloud gets its `instances`."""
        result = summarise(self.map, cloud.points, labels)
        cloud.instances = result.instances.astype(np.int32)
        return result

    def instances_of(self, result: ObjectsResult):
        """Points → their final objects (for a cloud thinned to fit a message)."""
        return lambda points: result.instances_of(self.map, points)

    def summary(self, summary: pb.SceneSummary, result: ObjectsResult, names: dict[int, str]) -> None:
        summary.objects_dropped = result.dropped
        summary.frames_without_objects = self.frames_without
        for o in result.objects:
            m = summary.objects.add(
                id=o.id,
                score=o.label_score,
                confidence=o.confidence,
                point_count=o.points,
                frames=o.frames,
                best_frame=max(o.best_frame, 0),
            )
            if o.label >= 0:
                m.label, m.label_name = o.label, names.get(o.label, "")
            m.centroid.x, m.centroid.y, m.centroid.z = (float(v) for v in o.centroid)
            m.box_min.x, m.box_min.y, m.box_min.z = (float(v) for v in o.box[:3])
            m.box_max.x, m.box_max.y, m.box_max.z = (float(v) for v in o.box[3:])
            m.best_box.x0, m.best_box.y0, m.best_box.x1, m.best_box.y1 = (float(v) for v in o.best_box)
