"""StreamScene: regions with 3D positions per frame, per-frame labels with a scene head, the
regions' 3D objects with SceneOptions.objects, and, after the last frame, the scene
transformer's refined labels, the final object ids and the fused point cloud."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np

from regiond.api.v1 import regions_pb2 as pb
from regiond.core.errors import InputError
from regiond.core.frames import Frame
from regiond.core.label_spaces import names_by_id
from regiond.core.regionset import RegionSet
from regiond.geometry import DEFAULT_MAX_DEPTH, POINTS_KEY, VoxelFusion, fit_to_size
from regiond.heads.interface import SceneLabeler
from regiond.service.convert import RegionLabels, frame_error_pb, label_map_png, region_set_pb, scene_frame
from regiond.service.scene_objects import SceneObjects
from regiond.service.streams import (
    OptionsError,
    Pending,
    StreamDeps,
    StreamSession,
    carry_tracker,
    frame_index,
    output_of,
)
from regiond.service.wire import check_parsed

DEFAULT_VOXEL = 0.02
FUSION_STRIDE = 4  # every 4th pixel where they lie within a voxel of each other, else every 2nd (fusion.py)


class SceneSession(StreamSession):
    """labeler            the scene labeler (None: regions and the cloud only)
    max_message_bytes  the reply size limit the fused cloud's PLY must fit in"""

    kind = "scene"
    method = "StreamScene"

    def __init__(
        self,
        deps: StreamDeps,
        labeler: SceneLabeler | None,
        max_message_bytes: int,
        request_iterator: Iterator[pb.SceneFrame],
        context: grpc.ServicerContext,
    ):
        super().__init__(deps, request_iterator, context)
        self.labeler = labeler
        self.max_message_bytes = max_message_bytes
        self.label_state = labeler.new_scene() if labeler else None
        self.options = pb.SceneOptions()
        self.output = pb.OutputOptions()
        self.fusion: VoxelFusion | None = None
        self.objects: SceneObjects | None = None
        self.regions_total = 0
        self.without_pose = 0
        self.without_depth = 0
        self.t_start = time.perf_counter()

    def decode(self, req: pb.SceneFrame, index: int) -> Frame:
        check_parsed(req)
        if index == 0:
            self.options, self.output = req.options, req.output
            if self.options.live:
                raise OptionsError(
                    "options.live",
                    "a scene stream cannot be live: the fused cloud and the scene labels need every frame, "
                    "so none is ever dropped (stream a live camera with StreamVideo)",
                )
            voxel = float(self.options.voxel_size) or DEFAULT_VOXEL
            if not np.isfinite(voxel) or voxel <= 0:
                raise InputError("options.voxel_size", f"must be a positive number of metres, got {voxel}")
            max_depth = float(self.options.max_depth) or DEFAULT_MAX_DEPTH
            self.tracker = carry_tracker(self.options, "depth", max_depth=max_depth)
            self.fusion = VoxelFusion(voxel, max_depth)
            self.objects = SceneObjects(max_depth) if self.options.objects else None
        if self.fusion is None:
            raise InputError("options", "the first frame of the scene was rejected; its options were not set")
        frame = scene_frame(req, self.limits, frame_index(req, index))
        frame.meta[POINTS_KEY] = None  # the extractor leaves the 3D statistics' points there for the fusion
        return frame

    def respond(self, p: Pending, regions: RegionSet) -> pb.SceneUpdate:
        f = p.frame
        self.regions_total += len(regions)
        self.without_pose += f.pose is None
        self.without_depth += f.depth is None
        labels, label_map = None, None
        if self.labeler is not None:
            labeler, state = self.labeler, self.label_state
            fl = self.call(lambda: labeler.label_frame(state, f, regions), "scene_labels")
            labels = RegionLabels(fl.region_labels, fl.region_scores, labeler.meta.names())
            label_map = fl.label_map
        got = None
        if self.objects is not None:
            got = self.objects.add(f, regions, None if labels is None else labels.ids)
            self.metrics.stage_seconds.labels("objects").observe(got.seconds)
        up = pb.SceneUpdate(
            frame_index=f.index,
            regions=region_set_pb(
                regions,
                output_of(p.request, self.output),
                f.index,
                world=f.pose is not None,
                labels=labels,
                object_ids=None if got is None else got.ids,
            ),
            objects_reason="" if got is None else got.reason,
        )
        if label_map is not None and self.options.return_label_maps:
            up.label_map_png = label_map_png(label_map)
        points = f.meta.pop(POINTS_KEY, None)
        if got is None or not got.pose_rejected:  # a pose off the map would smear the cloud too
            t0 = time.perf_counter()
            self.fusion.add_frame(f, labels=label_map, stride=FUSION_STRIDE, points=points)
            self.metrics.stage_seconds.labels("fusion").observe(time.perf_counter() - t0)
        up.server_seconds = time.perf_counter() - p.t0
        return up

    def respond_error(self, p: Pending) -> pb.SceneUpdate:
        return pb.SceneUpdate(
            frame_index=frame_index(p.request, p.index),
            error=frame_error_pb(p.error, p.code),
            server_seconds=time.perf_counter() - p.t0,
        )

    def finish(self) -> Iterator[pb.SceneUpdate]:
        refined = []
        if self.labeler is not None:
            labeler, state = self.labeler, self.label_state
            refined = self.call(lambda: labeler.refine(state), "scene_refine")
        cloud = self.fusion.cloud() if self.fusion is not None else None
        found = None
        if self.objects is not None and cloud is not None:
            labels = {int(fl.frame_index): fl.region_labels for fl in refined}
            found = self.objects.finish(cloud, labels or None)
        final = dict(found.frame_ids) if found is not None else {}
        for k, fl in enumerate(refined):
            refined[k] = None  # painted as it is sent, then let go: one frame's map held at a time
            yield pb.SceneUpdate(
                frame_index=fl.frame_index,
                refined=pb.RefinedFrame(
                    frame_index=fl.frame_index,
                    region_labels=np.asarray(fl.region_labels).astype(int).tolist(),
                    label_map_png=label_map_png(fl.label_map) if self.options.return_label_maps else b"",
                    region_object_ids=final.pop(int(fl.frame_index), np.zeros(0, np.uint32)).tolist(),
                ),
            )
        for index, ids in sorted(final.items()):  # no scene head: the final ids alone
            yield pb.SceneUpdate(
                frame_index=index, refined=pb.RefinedFrame(frame_index=index, region_object_ids=ids.tolist())
            )
        summary = pb.SceneSummary(
            scene_id=self.options.scene_id,
            frames=self.frames,
            frames_failed=self.frame_errors,
            regions=self.regions_total,
            frames_without_pose=self.without_pose,
            frames_without_depth=self.without_depth,
        )
        if cloud is not None:
            summary.fused_points = len(cloud)
            if found is not None:
                names = self.labeler.meta.names() if self.labeler is not None else {}
                self.objects.summary(summary, found, names)
            if self.options.return_ply:
                # Leave room for the rest of the message; thin the cloud until it fits.
                summary.ply, summary.ply_voxel_size = fit_to_size(
                    cloud,
                    self.fusion.voxel,
                    self.max_message_bytes * 3 // 4,
                    self.objects.instances_of(found) if found is not None else None,
                )
            if cloud.labels is not None and self.labeler is not None:
                meta = self.labeler.meta
                summary.label_names.extend(names_by_id(meta.class_ids, meta.class_names))
        summary.seconds = time.perf_counter() - self.t_start
        yield pb.SceneUpdate(summary=summary)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "regions": self.regions_total, "scene_id": self.options.scene_id}

    def release(self) -> None:
        super().release()
        self.fusion = None
        self.objects = None
        self.label_state = None
