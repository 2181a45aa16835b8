"""Video files and cameras through OpenCV: RGB frames with a time stamp, no depth."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from regiond.core.frames import Frame
from regiond.scenes.source import Sampling, Source, SourceError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def _open_capture(target, what: str):
    import cv2  # heavy: only when a video or camera is opened

    cap = cv2.VideoCapture(target)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{what}: OpenCV cannot open it")
    return cap


class VideoSource(Source):
    """Frames of a video file in order; `time` is frame number / fps. The length is the
    container's frame count (decoding stops early, without error, if the file holds fewer)."""

    kind = "video"

    def __init__(self, path, sampling: Sampling | None = None):
        import cv2  # heavy: only when a video is opened

        super().__init__(str(path), sampling)
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        cap = _open_capture(str(self.path), str(self.path))
        try:
            self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
            self.count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            ok, _ = cap.read()
        finally:
            cap.release()
        if not ok:
            raise SourceError(f"{self.path}: no decodable frame")
        if self.count <= 0:
            self.count = None  # some containers do not say; stream until the end

    def total(self) -> int | None:
        return self.count

    def _frames(self, indices) -> Iterator[Frame]:
        cap = _open_capture(str(self.path), str(self.path))
        try:
            wanted = None if indices is None else sorted(indices)
            last = None if wanted is None else (wanted[-1] if wanted else -1)
            want = None if wanted is None else set(wanted)
            i = 0
            while last is None or i <= last:
                if want is not None and i not in want:
                    if not cap.grab():  # skip without decoding
                        return
                    i += 1
                    continue
                ok, bgr = cap.read()
                if not ok:
                    return
                yield Frame(
                    rgb=np.ascontiguousarray(bgr[:, :, ::-1]), index=i, time=i / self.fps, meta={"source": self.spec}
                )
                i += 1
        finally:
            cap.release()

    def _describe(self) -> dict:
        return {
            "size": [self.width, self.height],
            "fps": self.fps,
            "camera": None,
            "has_depth": False,
            "has_pose": False,
            "has_labels": False,
        }


class CameraSource(Source):
    """A live camera (`camera:N`, OpenCV device N). Unknown length: use every/max_frames."""

    kind = "camera"

    def __init__(self, device: int, sampling: Sampling | None = None):
        super().__init__(f"camera:{device}", sampling)
        self.device = int(device)
        _open_capture(self.device, self.spec).release()

    def total(self) -> None:
        return None

    def _frames(self, indices) -> Iterator[Frame]:
        cap = _open_capture(self.device, self.spec)
        t0 = time.monotonic()
        try:
            i = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                yield Frame(
                    rgb=np.ascontiguousarray(bgr[:, :, ::-1]),
                    index=i,
                    time=time.monotonic() - t0,
                    meta={"source": self.spec},
                )
                i += 1
        finally:
            cap.release()

    def _describe(self) -> dict:
        return {"device": self.device, "camera": None, "has_depth": False, "has_pose": False, "has_labels": False}
