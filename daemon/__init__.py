"""regiond: region tokens from video frames and RGB-D scenes, served over gRPC."""

import os

# OpenMP threads that spin at barriers collapse when the CPU is shared with anything else:
# on 2 busy cores lite extraction went from 35 ms to 770 ms a frame (bench/regions.py,
# torch and fast-slic both use OpenMP). Sleeping waiters cost a little latency, never that.
# Set before torch or fast-slic load their OpenMP runtime; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
