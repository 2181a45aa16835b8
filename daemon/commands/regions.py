"""`regiond regions IMAGE... --out DIR`: region tokens of image files.

Per image it writes `<stem>.regions.npz` (RegionSet.save) and `<stem>.overlay.png`, and prints
the region count, pixel coverage and per-stage time. An unreadable image is reported and
skipped; the others carry on and the exit status is 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from regiond.core.errors import InputError
from regiond.core.flags import add_flags
from regiond.core.frames import as_rgb8
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC
from regiond.core.viz import overlay_regions, save_png
from regiond.service.config import ServeConfig


def add_model_options(p) -> None:
    """--profile / --weights / --sam-generator (the daemon's own: ServeConfig's fields) and
    --device, shared by the commands that build an Extractor."""
    add_flags(p, ServeConfig, only=("profile", "weights", "sam_generator"))
    p.add_argument("--device", default="cpu", help="torch device for SAM and the backbone (cpu, cuda, cuda:1)")


def register(sub) -> None:
    p = sub.add_parser(
        "regions", help="region masks and features of image files, with overlay pictures", description=__doc__
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...; any bit depth)")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output directory for <stem>.regions.npz and <stem>.overlay.png (created)",
    )
    add_model_options(p)
    p.add_argument("--no-features", action="store_true", help="masks only: skip the backbone and pooling")
    p.set_defaults(func=run)


@dataclass
class ImageResult:
    """What `process_image` wrote and measured for one image."""

    name: str
    regions: int
    sam: int
    slic: int
    coverage: float
    seconds: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def line(self) -> str:
        stages = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.seconds.items())
        return (
            f"{self.name}: {self.regions} regions ({self.sam} SAM, {self.slic} SLIC), "
            f"coverage {self.coverage:.1%}; {stages}"
        )

    def as_dict(self) -> dict:
        return {
            "image": self.name,
            "regions": self.regions,
            "sam": self.sam,
            "slic": self.slic,
            "coverage": self.coverage,
            "seconds": self.seconds,
            "files": {k: str(v) for k, v in self.files.items()},
        }


def read_image(path) -> np.ndarray:
    """An image file as an array (any mode PIL reads); InputError when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)  # camera photos: apply the stored orientation
            if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputError("image", f"cannot read as an image ({e.__class__.__name__}: {e})") from None


def process_image(extractor, rgb, name: str, out_dir: Path, features: bool = True) -> ImageResult:
    """Extract regions of one image, write its RegionSet and overlay, return the summary."""
    rgb = as_rgb8(rgb, max_pixels=extractor.max_pixels)
    regions = extractor.extract(rgb, features=features)
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = regions.save(out_dir / f"{name}.regions.npz")
    masks = regions.masks()
    png = save_png(out_dir / f"{name}.overlay.png", overlay_regions(rgb, masks, regions.source))
    coverage = float(masks.any(axis=0).mean()) if len(regions) else 0.0
    return ImageResult(
        name,
        len(regions),
        int((regions.source == SOURCE_SAM).sum()),
        int((regions.source == SOURCE_SLIC).sum()),
        coverage,
        dict(regions.meta.get("seconds", {})),
        {"regions": npz, "overlay": png},
    )


def _unique_names(paths: list[Path]) -> list[str]:
    """Output stems: the file stem, with a counter where two inputs share one."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        stem = p.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def run(args) -> int:
    from regiond.extraction.profiles import build_extractor  # torch: only when the command runs (--help stays light)

    extractor = build_extractor(
        args.profile, weights_dir=args.weights, device=args.device, sam_generator=args.sam_generator
    )
    out_dir = Path(args.out)
    paths = [Path(p) for p in args.images]
    print(
        f"profile {extractor.profile}: masks {extractor.masker.name}, backbone {extractor.backbone.name}; "
        f"writing to {out_dir}/"
    )
    failed = 0
    bar = tqdm(
        list(zip(paths, _unique_names(paths))), desc="regions", unit="image", disable=len(paths) < 2, file=sys.stderr
    )
    for path, name in bar:
        try:
            result = process_image(extractor, read_image(path), name, out_dir, features=not args.no_features)
        except ValueError as e:  # InputError and friends: report, keep going with the others
            failed += 1
            tqdm.write(f"regiond regions: error: {path}: {e}", file=sys.stderr)
            continue
        tqdm.write(result.line())
    if failed:
        tqdm.write(f"regiond regions: {failed} of {len(paths)} images failed", file=sys.stderr)
    return 1 if failed else 0
