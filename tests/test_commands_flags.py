"""Options defined once: the flags of `regiond serve`, `regiond train` and the model options
of the commands that build an extractor are generated from the config dataclasses' fields
(regiond.core.flags), keep the names they had, and build the same configs."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from regiond.cli import build_parser
from regiond.core.flags import flag_values, option_name

# The flags `regiond serve` had before they were generated from ServeConfig: each keeps its name.
FLAGS_BEFORE = (
    "--listen --data-dir --profile --weights --sam-generator --token --tls-cert --tls-key --insecure --metrics-port "
    "--max-message-mb --max-pixels --queue --workers --torch-threads --unary-wait --window-step --heads --index "
    "--no-index --grace --idle-timeout --log-level"
).split()


def subparser(command: str) -> argparse.ArgumentParser:
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]


def options_of(command: str) -> set[str]:
    return {s for a in subparser(command)._actions for s in a.option_strings}


def test_every_serve_config_field_is_a_serve_flag():
    from regiond.service.config import ServeConfig

    options = options_of("serve")
    assert {option_name(f) for f in fields(ServeConfig)} <= options
    assert set(FLAGS_BEFORE) <= options


def test_serve_flags_build_the_config(monkeypatch):
    from regiond.commands.serve import config_from_args
    from regiond.service.config import ServeConfig

    monkeypatch.delenv("REGIOND_TOKEN", raising=False)
    assert config_from_args(build_parser().parse_args(["serve"])) == ServeConfig()
    args = build_parser().parse_args(
        "serve --listen 0.0.0.0:7 --profile lite --max-pixels 100 --no-index --index milvus-lite:/m --max-batch 2 "
        "--inflight 3 --no-warmup --rpc-threads 16 --idle-timeout 0 --heads bundled --weights /w".split()
    )
    c = config_from_args(args)
    assert (c.listen, c.profile, c.max_pixels, c.index, c.index_location) == (
        "0.0.0.0:7",
        "lite",
        100,
        False,
        "milvus-lite:/m",
    )
    assert (c.max_batch, c.inflight, c.warmup, c.rpc_threads, c.idle_timeout) == (2, 3, False, 16, 0.0)
    assert (str(c.heads), str(c.weights)) == ("bundled", "/w")
    monkeypatch.setenv("REGIOND_TOKEN", "from-env")
    assert config_from_args(build_parser().parse_args(["serve"])).token == "from-env"
    assert config_from_args(build_parser().parse_args(["serve", "--token", "t"])).token == "t"


def test_serve_help_lists_every_flag_with_its_default():
    text = " ".join(subparser("serve").format_help().split())
    assert "--queue N work-queue capacity" in text and "(default: 32)" in text
    assert "--no-warmup report SERVING without running each extractor once" in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_train_flags_are_train_config_fields():
    from regiond.heads.config import TrainConfig

    assert {option_name(f) for f in fields(TrainConfig)} <= options_of("train")
    args = build_parser().parse_args(["train", "scene", "--cache", "c", "--out", "o"])
    assert TrainConfig(**flag_values(args, TrainConfig)) == TrainConfig()
    args = build_parser().parse_args("train scene --cache c --out o --lr 0.01 --warmup 3 --max-seconds 9".split())
    assert TrainConfig(**flag_values(args, TrainConfig)) == TrainConfig(lr=0.01, warmup=3, max_seconds=9.0)


@pytest.mark.parametrize("command", ["regions", "extract", "label", "demo"])
def test_model_options_are_the_daemons(command):
    """--profile, --weights and --sam-generator mean in every command what they mean to `regiond serve`."""
    serve = {a.dest: a for a in subparser("serve")._actions}
    here = {a.dest: a for a in subparser(command)._actions}
    for dest in ("profile", "weights", "sam_generator"):
        a, b = serve[dest], here[dest]
        assert (a.option_strings, a.default, a.type, a.choices, a.help) == (
            b.option_strings,
            b.default,
            b.type,
            b.choices,
            b.help,
        )


def test_ray_flags_build_ray_options():
    from regiond.commands.extract import ray_options
    from regiond.extraction.pool import RayOptions

    assert {option_name(f) for f in fields(RayOptions) if f.name in ("actors", "cpus_per_actor")} <= options_of("label")
    assert ray_options(build_parser().parse_args(["extract", "s", "--out", "c"])) is None
    args = build_parser().parse_args("extract s --out c --ray --actors 2 --cpus-per-actor 0.5".split())
    assert ray_options(args) == RayOptions(address="local", actors=2, cpus_per_actor=0.5, gpus_per_actor=0.0)
    args = build_parser().parse_args("label s --out o --heads h --ray HEAD:6379 --device cuda".split())
    assert ray_options(args) == RayOptions(address="HEAD:6379", gpus_per_actor=1.0)


def test_building_the_parser_loads_no_models():
    import subprocess
    import sys

    code = "import sys; from regiond.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_new_serve_flags_are_checked():
    from regiond.service.config import ConfigError, ServeConfig

    for bad, message in (
        ({"rpc_threads": 4}, "--rpc-threads"),
        ({"max_batch": 0}, "--max-batch"),
        ({"inflight": 0}, "--inflight"),
    ):
        with pytest.raises(ConfigError, match=message):
            ServeConfig(**bad).check()
