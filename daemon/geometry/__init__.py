"""Geometry of region tokens: depth back-projection, per-region 3D statistics, positional
embeddings and fused point clouds. Conventions: OpenCV camera axes, metres, 4×4
camera-to-world poses (see backproject.py)."""

from regiond.core.frames import camera_rays
from regiond.geometry.backproject import DEFAULT_MAX_DEPTH, backproject, project, transform_points, valid_depth
from regiond.geometry.cloud import PointCloud, ply_bytes, read_ply, write_ply
from regiond.geometry.embeddings import (
    box_positions,
    embed_2d,
    embed_3d,
    embed_time,
    fourier_features,
    fourier_periods,
    scene_origin,
)
from regiond.geometry.fusion import VoxelFusion, fit_to_size, fuse_frames, voxel_centres, voxel_keys
from regiond.geometry.points import POINTS_KEY, FramePoints, frame_points
from regiond.geometry.stats import EXTENT_PERCENTILES, RegionGeometry, region_geometry

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "backproject",
    "camera_rays",
    "project",
    "transform_points",
    "valid_depth",
    "box_positions",
    "embed_2d",
    "embed_3d",
    "embed_time",
    "fourier_features",
    "fourier_periods",
    "scene_origin",
    "PointCloud",
    "ply_bytes",
    "read_ply",
    "write_ply",
    "VoxelFusion",
    "fit_to_size",
    "fuse_frames",
    "voxel_centres",
    "voxel_keys",
    "POINTS_KEY",
    "FramePoints",
    "frame_points",
    "EXTENT_PERCENTILES",
    "RegionGeometry",
    "region_geometry",
]
