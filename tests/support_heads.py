"""What the heads tests share: a small image folder with label maps."""

from __future__ import annotations

import numpy as np


def image_folder(root, n: int = 2):
    """root/images/imK.png and root/labels/imK.png: sky-like top (1), ground (2), a green
    block (5) that moves right by 8 px per image."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        rgb = np.empty((48, 64, 3), np.uint8)
        lab = np.empty((48, 64), np.uint8)
        rgb[:], lab[:] = (200, 200, 210), 1
        rgb[24:], lab[24:] = (90, 60, 30), 2
        rgb[8:32, 16 + 8 * k : 40 + 8 * k], lab[8:32, 16 + 8 * k : 40 + 8 * k] = (20, 150, 40), 5
        rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / "images" / f"im{k}.png")
        Image.fromarray(lab).save(root / "labels" / f"im{k}.png")
    return root
