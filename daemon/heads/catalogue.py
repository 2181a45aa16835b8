"""The catalogue of heads: each registered name with its config class and model class.
architectures.py registers the built-in ones; registry.py builds, saves and loads them (and
imports architectures first, so the catalogue is full before any head is built or loaded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class HeadSpec:
    """One registered head: its config class, the model class built from it, and the
    defaults this name gives the config (e.g. `region-linear` is a RegionMLP with hidden=0)."""

    name: str
    config_cls: type
    model_cls: Callable[..., object]
    defaults: dict = field(default_factory=dict)
    doc: str = ""


HEADS: dict[str, HeadSpec] = {}


def register_head(name: str, config_cls: type, model_cls, doc: str = "", **defaults) -> None:
    known = {f.name for f in fields(config_cls)}
    unknown = set(defaults) - known
    if unknown:
        raise TypeError(f"head {name!r}: {config_cls.__name__} has no fields {sorted(unknown)}")
    HEADS[name] = HeadSpec(name, config_cls, model_cls, dict(defaults), doc)
