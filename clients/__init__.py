"""The regiond client: `RegionClient` (one method per RPC, the project's own types in and out)
and the command-line clients built on it (scan_scene, stream_video, search)."""

from regiond.client.connection import InputReadError, RegionError, Unreachable
from regiond.client.region_client import RegionClient
from regiond.client.replies import (
    ActivityWindow,
    ClassScore,
    FrameError,
    HeadInfo,
    ImageError,
    IndexSummary,
    ModelInfo,
    RefinedFrame,
    RegionHit,
    SceneSummary,
    SceneUpdate,
    SearchHit,
    SearchHits,
    ServerInfo,
    TrainedOn,
    VideoUpdate,
)

__all__ = [
    "RegionClient",
    "RegionError",
    "Unreachable",
    "InputReadError",
    "ActivityWindow",
    "ClassScore",
    "FrameError",
    "HeadInfo",
    "ImageError",
    "IndexSummary",
    "ModelInfo",
    "RefinedFrame",
    "RegionHit",
    "SceneSummary",
    "SceneUpdate",
    "SearchHit",
    "SearchHits",
    "ServerInfo",
    "TrainedOn",
    "VideoUpdate",
]
