"""Frame sources: ScanNet .sens files and exported folders, 7-Scenes-style folders, video
files, cameras and synthetic rooms, all yielding `core.frames.Frame`s one at a time.

    import scenes
    src = scenes.open_source("scene0000_00.sens", every=10, size=(320, 240))
    print(len(src), src.describe())
    for frame in src: ...
"""
from .base import Sampling, Source, SourceError, resample
from .labels import LabelTable, load_scannet_labels
from .registry import KINDS, kinds_help, open_source

__all__ = ["Sampling", "Source", "SourceError", "resample", "open_source", "kinds_help", "KINDS",
           "LabelTable", "load_scannet_labels"]
