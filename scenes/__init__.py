"""Frame sources: ScanNet .sens files and exported folders, 7-Scenes-style folders, video
files, cameras and synthetic rooms, all yielding `regiond.core.frames.Frame`s one at a time.

    from regiond import scenes
    src = scenes.open_source("scene0000_00.sens", every=10, size=(320, 240))
    print(len(src), src.describe())
    for frame in src: ...
"""

from regiond.scenes.registry import KINDS, is_generated, kinds_help, open_source
from regiond.scenes.scannet_labels import LabelTable, load_scannet_labels
from regiond.scenes.source import Sampling, Source, SourceError, resample

__all__ = [
    "Sampling",
    "Source",
    "SourceError",
    "resample",
    "open_source",
    "is_generated",
    "kinds_help",
    "KINDS",
    "LabelTable",
    "load_scannet_labels",
]
