"""`regiond demo`: the main job on the embedded default, on a real photo that ships inside
scikit-image (no sample data or weights needed).

Each step is its own function so that later parts (streaming) can reuse and extend them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: Photos bundled with scikit-image (skimage.data), all real RGB pictures.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def register(sub) -> None:
    from .regions import add_model_options

    p = sub.add_parser("demo", help="regions of a bundled real photo: overlay picture and summary",
                       description=__doc__)
    p.add_argument("--out", default="out/demo", metavar="DIR", help="output directory (default: out/demo)")
    p.add_argument("--photo", default="astronaut", choices=PHOTOS, help="which bundled photo (default: astronaut)")
    add_model_options(p)
    p.set_defaults(func=run)


def load_photo(name: str = "astronaut") -> np.ndarray:
    """A real photo from scikit-image's bundled data, H×W×3 uint8."""
    from skimage import data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose from {PHOTOS}")
    return getattr(data, name)()


def regions_step(extractor, rgb: np.ndarray, name: str, out_dir: Path):
    """Extract regions, write `<name>.regions.npz` and `<name>.overlay.png`; return the ImageResult."""
    from .regions import process_image

    return process_image(extractor, rgb, name, out_dir)


def write_summary(result, profile: str, out_dir: Path) -> Path:
    """summary.json with the counts, coverage, timings and files of the demo."""
    path = out_dir / "summary.json"
    path.write_text(json.dumps({"profile": profile, **result.as_dict()}, indent=2) + "\n")
    return path


def run(args) -> int:
    from ..config import build_extractor

    out_dir = Path(args.out)
    extractor = build_extractor(args.profile, weights_dir=args.weights, device=args.device)
    rgb = load_photo(args.photo)
    result = regions_step(extractor, rgb, args.photo, out_dir)
    summary = write_summary(result, extractor.profile, out_dir)
    print(f"profile {extractor.profile}: {result.line()}")
    print(f"overlay: {result.files['overlay']}")
    print(f"regions: {result.files['regions']}")
    print(f"summary: {summary}")
    return 0
