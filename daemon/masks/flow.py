"""Masks carried between consecutive video frames by dense optical flow (OpenCV's DIS).

The flow is computed from the new frame back to the previous one, so every new pixel looks up
where it came from (backward warping: no holes); masks travel bit-packed, 32 to one
nearest-neighbour remap, so carrying costs about the same for 5 masks or 100.
"""

from __future__ import annotations

import numpy as np

#: Flow is computed at most this long side (pixels) and scaled up: DIS at 640×480 costs 3–4×
#: more for no visible gain on masks.
FLOW_SIDE = 320


def gray(rgb: np.ndarray) -> np.ndarray:
    """The frame as the uint8 gray image the flow runs on."""
    import cv2  # heavy: only when masks are carried by flow

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


class FlowCarrier:
    """Backward DIS optical flow and bit-packed mask warping."""

    def __init__(self, preset: str = "medium", side: int = FLOW_SIDE):
        import cv2  # heavy: only when masks are carried by flow

        presets = {
            "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
            "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
        }
        self._dis = cv2.DISOpticalFlow_create(presets[preset])
        self.side = int(side)

    def backward_map(self, prev_gray: np.ndarray, cur_gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each pixel of the current frame, where it was in the previous one (map_x, map_y)."""
        import cv2  # heavy: only when masks are carried by flow

        h, w = cur_gray.shape
        s = min(1.0, self.side / max(h, w))
        if s < 1.0:
            size = (max(8, round(w * s)), max(8, round(h * s)))
            a = cv2.resize(cur_gray, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(prev_gray, size, interpolation=cv2.INTER_AREA)
            flow = self._dis.calc(a, b, None)
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= w / size[0]
            flow[..., 1] *= h / size[1]
        else:
            flow = self._dis.calc(cur_gray, prev_gray, None)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return xs + flow[..., 0], ys + flow[..., 1]

    @staticmethod
    def warp(masks: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
        """N×H×W bool masks of the previous frame → the current frame (pixels that came from
        outside the image are in no mask)."""
        import cv2  # heavy: only when masks are carried by flow

        n, h, w = masks.shape
        if n == 0:
            return masks.copy()
        packed = np.packbits(masks, axis=0)  # ceil(N/8)×H×W uint8
        planes = -(-packed.shape[0] // 4) * 4
        packed = np.concatenate([packed, np.zeros((planes - packed.shape[0], h, w), np.uint8)])
        out = np.empty_like(packed)
        for i in range(0, planes, 4):
            img = np.ascontiguousarray(packed[i : i + 4].transpose(1, 2, 0))
            warped = cv2.remap(img, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            out[i : i + 4] = warped.transpose(2, 0, 1)
        return np.unpackbits(out, axis=0, count=n).astype(bool)
