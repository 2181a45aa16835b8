"""Exact mask pooling against the naive reference, in one run.

518×518 image, D = 1024, 37×37 grid (DINOv2's at 518), 100 blob masks (random ellipses of
varied size, like SAM masks and SLIC pieces). The naive method is done well: one
F.interpolate of the grid, then one matmul of the flattened masks with the upsampled
features. Prints both times, the speedup, the largest difference and both peak memories
(CPU: the process's peak RSS above the level before the call, reset through
/proc/self/clear_refs; GPU: torch.cuda.max_memory_allocated).

    .venv/bin/python bench/pooling.py [--device cpu|cuda] [--masks 100] [--dim 1024] [--mode mean|max]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import regiond  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
from regiond.features.backbone import FeatureGrid  # noqa: E402
from regiond.features.pooling import naive_pool, pool_masks  # noqa: E402


def ellipse_masks(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """n random filled, rotated ellipses with radii from 8 px to a third of the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((n, h, w), bool)
    for k in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = np.exp(rng.uniform(np.log(8), np.log(h / 3), 2))
        t = rng.uniform(0, np.pi)
        u = ((xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)) / rx
        v = (-(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)) / ry
        out[k] = u * u + v * v <= 1.0
    return out


class PeakMemory:
    """Peak memory (bytes) a block adds above the level it started from."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{key} not in /proc/self/status")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = self._status("VmHWM") - self.base


def timed(fn, reps: int, device: torch.device) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="torch device for the grid and masks")
    ap.add_argument("--size", type=int, default=518, help="image side in pixels")
    ap.add_argument("--dim", type=int, default=1024, help="feature dimension D")
    ap.add_argument("--masks", type=int, default=100, help="number of masks")
    ap.add_argument("--mode", default="mean", choices=["mean", "max"], help="pooling mode")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the exact method (best is kept)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    s = args.size
    pad_total = (-s) % 14
    grid_side = (s + pad_total) // 14
    pad = (pad_total // 2, pad_total - pad_total // 2, pad_total // 2, pad_total - pad_total // 2)
    gen = torch.Generator().manual_seed(0)
    grid = FeatureGrid(torch.randn(args.dim, grid_side, grid_side, generator=gen).to(device), 14, pad, (s, s))
    masks = torch.from_numpy(ellipse_masks(args.masks, s, s)).to(device)
    cover = masks.float().mean().item()

    pool_masks(grid, masks, args.mode)  # warm-up (allocator, kernels)
    with PeakMemory(device) as mem_exact:
        t_exact, exact = timed(lambda: pool_masks(grid, masks, args.mode), args.reps, device)
    with PeakMemory(device) as mem_naive:
        t_naive, naive = timed(lambda: naive_pool(grid, masks, args.mode), 2, device)
    diff = (exact - naive).abs().max().item()

    print(
        f"pooling ({args.mode}) {s}x{s} image, grid {grid_side}x{grid_side}, D={args.dim}, "
        f"{args.masks} masks (mean area {cover:.1%} of the image), device {device}, {args.threads} thread(s)"
    )
    print(f"exact  {t_exact * 1e3:9.2f} ms   peak +{mem_exact.peak / 2**20:8.1f} MiB")
    print(f"naive  {t_naive * 1e3:9.2f} ms   peak +{mem_naive.peak / 2**20:8.1f} MiB")
    print(
        f"speedup {t_naive / t_exact:.1f}x   largest |exact - naive| = {diff:.2e}   "
        f"memory ratio {mem_naive.peak / max(mem_exact.peak, 1):.1f}x"
    )


if __name__ == "__main__":
    main()
