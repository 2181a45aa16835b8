"""Heads built from a name and a config (timm-like), saved as safetensors + JSON.

    head = create_head("scene-transformer", in_dim=384, num_classes=20)
    save_head(head, "out/heads/scene", classes=[...])
    loaded = load_head("out/heads/scene")      # same outputs as `head`

A head directory holds `config.json` (format, registry name, config, classes, meta) and
`model.safetensors` (weights and buffers). Nothing is ever pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from regiond.core.errors import InputError
from regiond.core.json_docs import need, read_json_object
from regiond.heads import architectures  # noqa: F401  (registers the built-in heads before any is built or loaded)
from regiond.heads.catalogue import HEADS

FORMAT = "regiond.head/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def list_heads() -> list[str]:
    return sorted(HEADS)


def create_head(name: str, **overrides) -> nn.Module:
    """Build the head registered as `name`; keyword arguments override its config fields.
    The model gets `.head_name` and `.config` attributes (used by save_head)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(sorted(HEADS))}")
    spec = HEADS[name]
    config = spec.config_cls(**{**spec.defaults, **overrides})
    model = spec.model_cls(config)
    model.head_name = name
    model.config = config
    return model


@dataclass
class LoadedHead:
    """A head read back from disk, with the class list and metadata it was saved with."""

    name: str
    model: nn.Module
    classes: list[dict]  # [{"id": int, "name": str}], in output order
    meta: dict

    @property
    def class_ids(self) -> list[int]:
        return [int(c["id"]) for c in self.classes]

    @property
    def class_names(self) -> list[str]:
        return [str(c["name"]) for c in self.classes]


def save_head(model: nn.Module, out_dir, classes: list[dict], meta: dict | None = None) -> Path:
    """Write `model` (built by create_head) to out_dir as safetensors + JSON."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_out = getattr(model.config, "num_classes", None)
    if n_out is not None and n_out != len(classes):
        raise ValueError(f"head has {n_out} outputs but {len(classes)} classes were given")
    doc = {
        "format": FORMAT,
        "name": model.head_name,
        "config": asdict(model.config),
        "classes": [{"id": int(c["id"]), "name": str(c["name"])} for c in classes],
        "meta": meta or {},
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "name": model.head_name})
    tmp.replace(out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
    return out


def load_head(path, device: str | torch.device = "cpu") -> LoadedHead:
    """Read a head directory written by save_head; the model is in eval mode. A directory that
    is not one (a damaged config or weights file, weights of another shape) is an
    InputError("head", ...) naming the file; the weights' shapes are checked against the config
    before any memory is allocated for the model."""
    path = Path(path)
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG_FILE}; not a head directory")
    doc = read_json_object(cfg_file, "head")
    if doc.get("format") != FORMAT:
        raise InputError("head", f"{cfg_file}: format {str(doc.get('format'))[:80]!r}, expected {FORMAT!r}")
    name = need(doc, "name", str, cfg_file, "head")
    if name not in HEADS:
        raise InputError("head", f"{cfg_file}: unknown head {name[:80]!r}")
    config = need(doc, "config", dict, cfg_file, "head")
    classes = [_class_entry(c, cfg_file) for c in need(doc, "classes", list, cfg_file, "head")]
    meta = doc.get("meta", {})
    weights = _read_weights(path / WEIGHTS_FILE)
    try:
        with torch.device("meta"):  # shapes only: a config asking for a huge model allocates nothing
            shapes = {k: tuple(v.shape) for k, v in create_head(name, **config).state_dict().items()}
    except (TypeError, ValueError) as e:
        raise InputError("head", f"{cfg_file}: bad config for {name} ({e})") from None
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != shapes:
        diff = sorted(set(got.items()) ^ set(shapes.items()))[:3]
        raise InputError("head", f"{path / WEIGHTS_FILE}: weights do not match the config ({diff} ...)")
    model = create_head(name, **config)
    model.load_state_dict(weights, strict=True)
    model.to(device).eval()
    return LoadedHead(name, model, classes, meta if isinstance(meta, dict) else {})


def _class_entry(c, where: Path) -> dict:
    if not isinstance(c, dict):
        raise InputError("head", f"{where}: a class must be an object with id and name, got {type(c).__name__}")
    return {"id": need(c, "id", int, where, "head"), "name": need(c, "name", str, where, "head")}


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise InputError("head", f"{file}: not a safetensors file ({e})") from None
