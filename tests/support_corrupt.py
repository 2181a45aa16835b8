"""Scenes with a corrupt frame, for the --skip-bad-frames tests."""

from __future__ import annotations

import struct

from regiond.scenes.sens import _FRAME, SensFile
from regiond.scenes.sens_writer import write_sens
from regiond.scenes.synthetic.rgbd import SyntheticSource


def sens_with_bad_frame(path, part: str, frames: int = 4, bad: int = 1):
    """A .sens file of a small synthetic scene whose frame `bad` has garbage colour or depth bytes."""
    write_sens(path, list(SyntheticSource(5, frames=frames, width=40, height=30)))
    data = bytearray(path.read_bytes())
    at = SensFile(path).header.data_offset
    for i in range(frames):
        csize, dsize = struct.unpack_from("<QQ", data, at + _FRAME.size - 16)
        start = at + _FRAME.size + (0 if part == "colour" else csize)
        if i == bad:
            data[start : start + (csize if part == "colour" else dsize)] = b"\x07" * (
                csize if part == "colour" else dsize
            )
        at += _FRAME.size + csize + dsize
    path.write_bytes(bytes(data))
    return path
