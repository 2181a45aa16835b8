"""Synthetic data with ground truth: RGB-D rooms (room.py, render.py, scene.py) and activity
clips (clips.py). Everything is deterministic by seed."""

from regiond.scenes.synthetic.clips import (
    ACTIVITY_CLASSES,
    Clip,
    read_labels_csv,
    render_clip,
    write_clips,
    write_video,
)
from regiond.scenes.synthetic.render import Render, Renderer, default_camera, look_pose, trajectory
from regiond.scenes.synthetic.rgbd import SyntheticScene, SyntheticSource, write_scene_folder, write_scene_sens
from regiond.scenes.synthetic.room import ROOM_CLASSES, Room, RoomObject, make_room

__all__ = [
    "ACTIVITY_CLASSES",
    "Clip",
    "read_labels_csv",
    "render_clip",
    "write_clips",
    "write_video",
    "Render",
    "Renderer",
    "default_camera",
    "look_pose",
    "trajectory",
    "ROOM_CLASSES",
    "Room",
    "RoomObject",
    "make_room",
    "SyntheticScene",
    "SyntheticSource",
    "write_scene_folder",
    "write_scene_sens",
]
