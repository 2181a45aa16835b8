"""regiond: region tokens from video frames and RGB-D scenes, served over gRPC."""

import ctypes
import os

# OpenMP threads that spin at barriers collapse when the CPU is shared with anything else:
# on 2 busy cores lite extraction went from 35 ms to 770 ms a frame (bench/regions.py,
# torch and fast-slic both use OpenMP). Sleeping waiters cost a little latency, never that.
# Set before torch or fast-slic load their OpenMP runtime; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 128 << 20) -> None:
    """Keep freed arrays in the heap instead of handing them back to the kernel.

    glibc returns a freed block above its mmap threshold (a few MB, adjusted as blocks come
    and go) to the kernel, and every frame page-faults the same megabytes back: lite
    extraction of one 640×480 frame took about 3,700 page faults, several ms of system time.
    Blocks up to 32 MiB now come from the heap, which is trimmed once 128 MiB at its top is
    free. glibc only; MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment win.
    """
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    mallopt(m_mmap_threshold, mmap_threshold)
    mallopt(m_trim_threshold, trim_threshold)


_keep_freed_memory()

__version__ = "0.1.0"
