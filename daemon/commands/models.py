"""`regiond models`: which checkpoints are in the weights directory, and what each profile lacks."""

from __future__ import annotations

import math
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "models", help="list the model checkpoints found and what each profile still needs", description=__doc__
    )
    p.add_argument(
        "--weights",
        metavar="DIR",
        default=None,
        help="directory of checkpoints under their official names "
        "(default: $REGIOND_WEIGHTS, else ~/.cache/regiond/weights)",
    )
    p.add_argument(
        "--inspect",
        action="store_true",
        help="also open each checkpoint found (tensors only, no code) and show its size and width",
    )
    p.set_defaults(func=run)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def inspect_checkpoint(path: Path) -> str:
    """'N tensors, P params, width W' from the state dict's tensors (weights_only / safetensors)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open  # heavy: only when the command runs (--help stays light)

        with safe_open(str(path), "pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    else:
        import torch  # heavy: only when the command runs (--help stays light)

        try:  # memory-mapped: a 2.4 GB checkpoint is not read into memory just to list it
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("model", state) if isinstance(state, dict) else state
        shapes = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    params = sum(math.prod(s) for s in shapes.values())
    width = next((s[0] for k, s in shapes.items() if k.endswith("patch_embed.proj.weight")), None)
    return f"{len(shapes)} tensors, {params / 1e6:.1f} M params" + (f", width {width}" if width else "")


def run(args) -> int:
    from regiond.extraction.profiles import (  # torch: only when the command runs (--help stays light)
        CHECKPOINTS,
        PROFILES,
        find_weights,
        resolve_weights_dir,
    )

    wd = resolve_weights_dir(args.weights)
    found = find_weights(args.weights)
    print(f"weights directory: {wd}" + ("" if wd.is_dir() else "  (does not exist)"))
    print()
    rows = [("model", "what", "file", "status")]
    for name, ckpt in CHECKPOINTS.items():
        if name in found:
            p = found[name]
            status = f"found, {_human(p.stat().st_size)}"
            if args.inspect:
                try:
                    status += f", {inspect_checkpoint(p)}"
                except Exception as e:  # a damaged file is worth reporting, not a crash
                    status += f", unreadable: {e.__class__.__name__}: {e}"
            rows.append((name, ckpt.description, str(p.relative_to(wd)), status))
        else:
            rows.append((name, ckpt.description, ckpt.official, "missing"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print()
    print("profiles:")
    ready = []
    for p in PROFILES.values():
        if not p.listed:
            continue
        missing = p.missing(args.weights)
        if missing:
            print(f"  {p.name:9s} missing: {', '.join(m.name for m in missing)}")
        else:
            ready.append(p.name)
            print(f"  {p.name:9s} ready    ({p.description})")
    print(f"\n--profile auto uses: {ready[0]}")
    return 0
