"""regiond: region tokens from video frames and RGB-D scenes, served over gRPC."""

__version__ = "0.1.0"
