"""`regiond regions IMAGE... --out DIR`: region tokens of image files.

Per image it writes `<stem>.regions.npz` (RegionSet.save) and `<stem>.overlay.png`, and prints
the region count, pixel coverage and per-stage time. With --heads DIR (or bundled) the scene
labeller labels each image as ExtractRegions does (the segment head, else the scene head on the
image alone): `<stem>.labels.png` (8-bit NYU40 ids, 0 = unlabelled) and `<stem>.labels_color.png`
(the label picture, with a legend), and the npz holds the region labels. An unreadable image is
reported and skipped; the others carry on and the exit status is 1.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from regiond.core.errors import InputError
from regiond.core.flags import add_flags
from regiond.core.frames import Frame, as_rgb8
from regiond.core.label_spaces import label_name, write_label_png
from regiond.core.regionset import SOURCE_SAM, SOURCE_SLIC
from regiond.core.viz import colour_label_png, overlay_regions, save_png
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
    p.add_argument(
        "--heads",
        metavar="DIR|bundled",
        default=None,
        help="label the images with these heads (segment/ or scene/, as `regiond serve --heads`): writes "
        "<stem>.labels.png and <stem>.labels_color.png",
    )
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
    labels: dict = field(default_factory=dict)  # class name → share of the image's pixels

    def line(self) -> str:
        stages = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.seconds.items())
        line = (
            f"{self.name}: {self.regions} regions ({self.sam} SAM, {self.slic} SLIC), "
            f"coverage {self.coverage:.1%}; {stages}"
        )
        if self.labels:
            line += "\n  labels: " + ", ".join(f"{n} {v:.0%}" for n, v in self.labels.items())
        return line

    def as_dict(self) -> dict:
        return {
            "image": self.name,
            "regions": self.regions,
            "sam": self.sam,
            "slic": self.slic,
            "coverage": self.coverage,
            "seconds": self.seconds,
            "files": {k: str(v) for k, v in self.files.items()},
            "labels": self.labels,
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


def process_image(extractor, rgb, name: str, out_dir: Path, features: bool = True, labeler=None) -> ImageResult:
    """Extract regions of one image, write its RegionSet and overlay (and, with a scene
    labeller, its label map and label picture), return the summary."""
    rgb = as_rgb8(rgb, max_pixels=extractor.max_pixels)
    regions = extractor.extract(rgb, features=features)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, shares = {}, {}
    if labeler is not None:
        files, shares = write_labels(labeler, Frame(rgb=rgb), regions, out_dir / name)
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
        {"regions": npz, "overlay": png, **files},
        shares,
    )


def write_labels(labeler, frame: Frame, regions, stem: Path) -> tuple[dict, dict]:
    """Label one image as ExtractRegions does (a scene of this frame alone): the region labels
    go into `regions`, STEM.labels.png and STEM.labels_color.png are written. Returns (files,
    class name → share of the pixels, largest first)."""
    t0 = time.perf_counter()
    fl = labeler.label_frame(labeler.new_scene(), frame, regions)
    regions.meta.setdefault("seconds", {})["heads"] = time.perf_counter() - t0
    regions.labels = np.asarray(fl.region_labels, np.int64)
    ids_png = write_label_png(stem.with_name(stem.name + ".labels.png"), fl.label_map)
    colour = stem.with_name(stem.name + ".labels_color.png")
    colour.write_bytes(colour_label_png(ids_png.read_bytes()))
    ids, counts = np.unique(fl.label_map, return_counts=True)
    names = labeler.meta.names()
    shares = {
        (names.get(int(i)) or label_name(int(i))) if i else "unlabelled": float(c) / fl.label_map.size
        for i, c in sorted(zip(ids.tolist(), counts.tolist()), key=lambda t: -t[1])
    }
    return {"labels": ids_png, "labels_color": colour}, shares


def scene_labeler(heads: str, extractor):
    """The scene labeller of a heads directory (or "bundled"), saying what its heads learnt from."""
    from regiond.heads.serving import load_serving_heads  # torch: only when the command runs
    from regiond.heads.trained_on import DEMO_NOTE, is_demonstration, summary

    served = load_serving_heads(heads, extractor)
    if served.scene is None:
        raise InputError("heads", f"{heads}: no segment/ or scene/ head to label images with")
    for r in served.scene.meta.trained_on:
        print(f"heads {r['head']}: {summary(r if len(r) > 1 else None)}")
    if is_demonstration(served.scene.meta.trained_on):
        print(f"note: these heads were {DEMO_NOTE}")
    return served.scene


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

    if args.heads and args.no_features:
        raise InputError("heads", "--heads labels regions by their features: leave out --no-features")
    extractor = build_extractor(
        args.profile, weights_dir=args.weights, device=args.device, sam_generator=args.sam_generator
    )
    labeler = scene_labeler(args.heads, extractor) if args.heads else None
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
            result = process_image(
                extractor, read_image(path), name, out_dir, features=not args.no_features, labeler=labeler
            )
        except ValueError as e:  # InputError and friends: report, keep going with the others
            failed += 1
            tqdm.write(f"regiond regions: error: {path}: {e}", file=sys.stderr)
            continue
        tqdm.write(result.line())
    if failed:
        tqdm.write(f"regiond regions: {failed} of {len(paths)} images failed", file=sys.stderr)
    return 1 if failed else 0
