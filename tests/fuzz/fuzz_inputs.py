"""What every fuzz target builds its inputs from: a scratch folder and small encoded pictures,
and the byte framing that splits one fuzz input into several fields."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np

WORK = Path(tempfile.mkdtemp(prefix="regiond-fuzz-"))


def png(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(a: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def picture(w: int = 24, h: int = 18, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 40, 40)
    img[h // 2 :, w // 3 :] = (30, 180, 60)
    return np.clip(img + rng.integers(0, 8, img.shape), 0, 255).astype(np.uint8)


def split(data: bytes, parts: int) -> list[bytes]:
    """`parts` byte strings from one input: 2-byte big-endian lengths, the last takes the rest."""
    out, at = [], 0
    for _ in range(parts - 1):
        n = int.from_bytes(data[at : at + 2], "big") if at + 2 <= len(data) else 0
        out.append(data[at + 2 : at + 2 + n])
        at += 2 + n
    out.append(data[at:])
    return out


def join(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(2, "big") + p for p in parts[:-1]) + parts[-1]
