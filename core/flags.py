"""Command-line flags generated from dataclass fields, so that an option is defined once: its
name, type, default, choices and help live on the field, and add_flags() makes the argparse
options from them.

    @dataclass
    class Config:
        queue: int = field(default=32, metadata=flag("work-queue capacity", metavar="N"))
        warmup: bool = field(default=True, metadata=flag("start without running the models once"))
        hook: object = field(default=None, metadata=not_a_flag("set in code only"))

    add_flags(parser, Config)        # --queue N (default: 32), --no-warmup
    Config(**flag_values(args, Config))

The option is --field-name; a bool field is a switch: --field-name when it defaults to False,
--no-field-name (storing False) when it defaults to True, its help saying what the switch does.
The type comes from the annotation (`int | None` → int), the default from the field (shown in
the help unless it is None, a switch, or the help says its own "(default..." or "default: ...").
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from dataclasses import MISSING, Field, dataclass, fields

METADATA_KEY = "regiond.flag"


@dataclass(frozen=True)
class FlagSpec:
    """How a field appears on the command line (is_flag False: it does not)."""

    help: str
    name: str | None = None  # the option, when not --field-name (or --no-field-name)
    metavar: str | None = None
    choices: tuple | None = None
    is_flag: bool = True


def flag(help: str, *, name: str | None = None, metavar: str | None = None, choices: Iterable | None = None) -> dict:
    """A field's metadata: it is a command-line flag with this help."""
    return {METADATA_KEY: FlagSpec(help, name, metavar, tuple(choices) if choices is not None else None)}


def not_a_flag(help: str) -> dict:
    """A field's metadata: set in code only (by tests, benchmarks or the library's callers)."""
    return {METADATA_KEY: FlagSpec(help, is_flag=False)}


def spec_of(f: Field) -> FlagSpec:
    spec = f.metadata.get(METADATA_KEY)
    if spec is None:
        raise TypeError(f"field {f.name!r} has no help: give it metadata=flag(...) or not_a_flag(...)")
    return spec


def field_default(f: Field):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name!r} has no default: a flag needs one")


def _value_type(annotation) -> type:
    """int for `int`, `int | None` or `Optional[int]`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) != 1:
            raise TypeError(f"a flag needs one value type, got {annotation}")
        return kinds[0]
    return annotation


def option_name(f: Field) -> str:
    """The option a field becomes: its spec's name, else --field-name (--no-field-name for a
    switch that is on by default)."""
    spec = spec_of(f)
    if spec.name:
        return spec.name
    dashed = f.name.replace("_", "-")
    return f"--no-{dashed}" if field_default(f) is True else f"--{dashed}"


def flag_fields(cls, only: Iterable[str] | None = None) -> list[Field]:
    """The fields of dataclass `cls` that are flags, in their order; `only` picks some by name."""
    all_fields = {f.name: f for f in fields(cls)}
    if only is not None:
        only = list(only)
        unknown = [n for n in only if n not in all_fields]
        if unknown:
            raise TypeError(f"{cls.__name__} has no fields {unknown}")
    return [f for f in all_fields.values() if spec_of(f).is_flag and (only is None or f.name in only)]


def add_flags(parser, cls, only: Iterable[str] | None = None) -> None:
    """Add the flags of dataclass `cls` (those named in `only`, or all) to an argparse parser or
    argument group; each stores into args.<field name>."""
    hints = typing.get_type_hints(cls)
    for f in flag_fields(cls, only):
        spec, default = spec_of(f), field_default(f)
        kind = _value_type(hints[f.name])
        help_text = spec.help.replace("%", "%%")
        kw: dict = {"dest": f.name, "default": default}
        if kind is bool:
            kw["action"] = "store_false" if default else "store_true"
        else:
            kw.update(type=kind, metavar=spec.metavar, choices=spec.choices)
            if default is not None and "default:" not in spec.help and "(default" not in spec.help:
                help_text += " (default: %(default)s)"
        parser.add_argument(option_name(f), help=help_text, **kw)


def flag_values(args: argparse.Namespace, cls, only: Iterable[str] | None = None) -> dict:
    """{field name: value} of the flags of `cls` that `args` holds (keyword arguments for cls)."""
    return {f.name: getattr(args, f.name) for f in flag_fields(cls, only) if hasattr(args, f.name)}
