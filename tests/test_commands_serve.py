"""`regiond serve` as a user starts it: what it prints while starting."""

from __future__ import annotations

import signal
from collections import Counter

from regiond.commands.serve import READY_PREFIX, spawn_daemon

FAISS_LOADER = ("Loading faiss", "Could not load library", "Successfully loaded faiss")


def test_serve_prints_each_startup_line_once_and_no_faiss_loader_line(tmp_path):
    """No weights (an empty --weights folder): the fallback-to-lite line, the warm-up line and
    the ready line, each once; FAISS's loader (the region index loads it) says nothing."""
    (tmp_path / "weights").mkdir()
    log = tmp_path / "serve.log"
    proc, address = spawn_daemon(
        ["--listen", "127.0.0.1:0", "--data-dir", tmp_path / "d", "--weights", tmp_path / "weights"], log
    )
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    startup = lines[: next(i for i, line in enumerate(lines) if line.startswith(READY_PREFIX)) + 1]
    assert not [line for line in lines if line.startswith(FAISS_LOADER) or "swigfaiss" in line], lines
    repeated = {line: n for line, n in Counter(startup).items() if n > 1}
    assert not repeated, f"printed more than once: {repeated}"
    assert sum("using the 'lite' profile" in line for line in startup) == 1
    assert sum(line.startswith("warmed up") for line in startup) == 1
    assert [line for line in lines if "serving" in line] == [
        f"{READY_PREFIX}{address} (profile lite, TLS off, token off)"
    ]


# The flags `regiond serve` had before they were generated from ServeConfig: each keeps its name.
FLAGS_BEFORE = (
    "--listen --data-dir --profile --weights --sam-generator --token --tls-cert --tls-key --insecure --metrics-port "
    "--max-message-mb --max-pixels --queue --workers --torch-threads --unary-wait --window-step --heads --index "
    "--no-index --grace --idle-timeout --log-level"
).split()


def serve_parser():
    from regiond.cli import build_parser

    return build_parser()


def serve_subparser():
    import argparse

    return next(a for a in serve_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["serve"]


def test_every_serve_config_field_is_a_serve_flag():
    from dataclasses import fields

    from regiond.core.flags import option_name
    from regiond.service.config import ServeConfig

    options = {
        s for a in serve_parser()._subparsers._group_actions[0].choices["serve"]._actions for s in a.option_strings
    }
    assert {option_name(f) for f in fields(ServeConfig)} <= options
    assert set(FLAGS_BEFORE) <= options


def test_serve_flags_build_the_config(monkeypatch):
    from regiond.commands.serve import config_from_args
    from regiond.service.config import ServeConfig

    monkeypatch.delenv("REGIOND_TOKEN", raising=False)
    assert config_from_args(serve_parser().parse_args(["serve"])) == ServeConfig()
    args = serve_parser().parse_args(
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
    assert config_from_args(serve_parser().parse_args(["serve"])).token == "from-env"
    assert config_from_args(serve_parser().parse_args(["serve", "--token", "t"])).token == "t"


def test_serve_help_lists_every_flag_with_its_default():
    text = " ".join(serve_subparser().format_help().split())
    assert "--queue N work-queue capacity" in text and "(default: 32)" in text
    assert "--no-warmup report SERVING without running each extractor once" in text
    assert "(default: None)" not in text and "(default: False)" not in text
