"""Flags generated from dataclass fields (regiond.core.flags): names, types, switches,
defaults, choices and help come from the field, and parsed values build the dataclass."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from regiond.core.flags import add_flags, flag, flag_values, not_a_flag


@dataclass
class Example:
    queue: int = field(default=32, metadata=flag("jobs waiting", metavar="N"))
    wait: float | None = field(default=None, metadata=flag("seconds to wait (default: forever)", metavar="S"))
    out: Path = field(default_factory=lambda: Path("/tmp/x"), metadata=flag("where, 100% of it"))
    mode: str = field(default="fast", metadata=flag("how", choices=("fast", "slow")))
    verbose: bool = field(default=False, metadata=flag("say more"))
    warmup: bool = field(default=True, metadata=flag("start cold"))
    location: str | None = field(default=None, metadata=flag("where it lives", name="--at"))
    hook: object = field(default=None, metadata=not_a_flag("set in code only"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="example")
    add_flags(p, Example)
    return p


def test_defaults_build_the_dataclass_defaults():
    assert Example(**flag_values(parser().parse_args([]), Example)) == Example()


def test_values_types_switches_and_names():
    args = parser().parse_args(
        ["--queue", "4", "--wait", "1.5", "--out", "/o", "--mode", "slow", "--verbose", "--no-warmup", "--at", "L"]
    )
    got = Example(**flag_values(args, Example))
    assert got == Example(4, 1.5, Path("/o"), "slow", True, False, "L")
    assert isinstance(got.out, Path) and isinstance(got.queue, int)
    assert not hasattr(args, "hook")


def test_bad_values_are_refused_by_the_parser(capsys):
    for argv in (["--queue", "many"], ["--mode", "medium"], ["--hook", "x"]):
        with pytest.raises(SystemExit):
            parser().parse_args(argv)
    assert "invalid choice: 'medium'" in capsys.readouterr().err


def test_help_shows_defaults_unless_none_a_switch_or_said():
    text = " ".join(parser().format_help().split())
    assert "--queue N jobs waiting (default: 32)" in text
    assert "--wait S seconds to wait (default: forever) " in text  # its own, not appended twice
    assert "where, 100% of it (default: /tmp/x)" in text  # a % in help is text, not a format
    # switches and None defaults show none
    assert "--verbose say more --no-warmup start cold --at LOCATION where it lives" in text


def test_only_picks_fields_in_their_order_and_checks_names():
    p = argparse.ArgumentParser()
    add_flags(p, Example, only=("mode", "queue"))
    assert [a.dest for a in p._actions[1:]] == ["queue", "mode"]
    with pytest.raises(TypeError, match="no fields"):
        add_flags(argparse.ArgumentParser(), Example, only=("nope",))


def test_a_field_without_help_is_refused():
    @dataclass
    class Bare:
        n: int = 1

    with pytest.raises(TypeError, match="has no help"):
        add_flags(argparse.ArgumentParser(), Bare)
