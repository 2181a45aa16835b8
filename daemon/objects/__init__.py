"""The object map: regions of an RGB-D stream associated across frames into persistent 3D
objects (map.py), and what a scan's objects are at its end (summary.py)."""

from regiond.objects.config import ObjectConfig
from regiond.objects.map import FrameObjects, ObjectMap
from regiond.objects.summary import MapObject, ObjectsResult, summarise

__all__ = ["ObjectConfig", "FrameObjects", "ObjectMap", "MapObject", "ObjectsResult", "summarise"]
