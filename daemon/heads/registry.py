"""Heads built from a name and a config (timm-like), saved as safetensors + JSON.

    head = create_head("scene-transformer", in_dim=384, num_classes=20)
    save_head(head, "out/heads/scene", classes=[...])
    loaded = load_head("out/heads/scene")      # same outputs as `head`

A head directory holds `config.json` (format, registry name, config, classes, meta) and
`model.safetensors` (weights and buffers). Nothing is ever pickled.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT = "regiond.head/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class HeadSpec:
    """One registered head: its config class, the model class built from it, and the
    defaults this name gives the config (e.g. `region-linear` is a RegionMLP with hidden=0)."""

    name: str
    config_cls: type
    model_cls: Callable[..., nn.Module]
    defaults: dict = field(default_factory=dict)
    doc: str = ""


HEADS: dict[str, HeadSpec] = {}


def register_head(name: str, config_cls: type, model_cls, doc: str = "", **defaults) -> None:
    known = {f.name for f in fields(config_cls)}
    unknown = set(defaults) - known
    if unknown:
        raise TypeError(f"head {name!r}: {config_cls.__name__} has no fields {sorted(unknown)}")
    HEADS[name] = HeadSpec(name, config_cls, model_cls, dict(defaults), doc)


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
    classes: list[dict]   # [{"id": int, "name": str}], in output order
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
    doc = {"format": FORMAT, "name": model.head_name, "config": asdict(model.config),
           "classes": [{"id": int(c["id"]), "name": str(c["name"])} for c in classes],
           "meta": meta or {}}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "name": model.head_name})
    tmp.replace(out / WEIGHTS_FILE)
    (out / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
    return out


def load_head(path, device: str | torch.device = "cpu") -> LoadedHead:
    """Read a head directory written by save_head; the model is in eval mode."""
    path = Path(path)
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG_FILE}; not a head directory")
    doc = json.loads(cfg_file.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{cfg_file}: format {doc.get('format')!r}, expected {FORMAT!r}")
    spec = HEADS.get(doc["name"])
    if spec is None:
        raise ValueError(f"{cfg_file}: unknown head {doc['name']!r}")
    model = create_head(doc["name"], **doc["config"])
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)), strict=True)
    model.to(device).eval()
    return LoadedHead(doc["name"], model, doc["classes"], doc.get("meta", {}))

