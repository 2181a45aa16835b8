"""Run the fuzz harnesses with atheris (libFuzzer, coverage-guided) and count what they find.

    python tests/fuzz/runner.py                      # every harness for $FUZZ_SECONDS (300) each
    python tests/fuzz/runner.py --runs 2000 sens     # a fixed number of executions (make test)

One line per harness: `HARNESS: N executions, C crashes`. A crash is any outcome but a result
or our own error type with a message (targets.ALLOWED), an input running past --timeout
seconds, or the harness process passing --rss-mb of memory. Each distinct crash (exception type
and the line of ours that raised it) is written with its input to the harness's output folder
(--out, default out/fuzz/HARNESS/), to become a regression test in tests/fuzz/regressions/.
Every harness runs in its own process; each starts from its seeds in tests/fuzz/corpus/HARNESS/
and grows a working corpus under the output folder (the seed folder is never written).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CORPUS = HERE / "corpus"
INSTRUMENT = ["core", "scenes", "daemon"]
#: the modules each harness exercises, imported under atheris' coverage instrumentation
MODULES = {
    "sens": ["regiond.scenes.sens", "regiond.scenes.source"],
    "folders": ["regiond.scenes.folders", "regiond.scenes.source"],
    "image": ["regiond.service.convert"],
    "rle": ["regiond.service.search_rpc", "regiond.core.rle"],
    "requests": ["regiond.service.convert", "regiond.service.search_rpc", "regiond.index"],
    "heads": ["regiond.heads.registry", "regiond.heads.architectures"],
    "cache": ["regiond.extraction.cache"],
    "regionset": ["regiond.core.regionset"],
    "index": ["regiond.index"],
    "daemon": ["regiond.service.server"],
}
HARNESSES = list(MODULES)


def child(name: str, out: Path, libfuzzer_args: list[str]) -> None:
    """In the harness process: instrument, set up, fuzz (libFuzzer exits the process)."""
    import importlib

    import atheris

    with atheris.instrument_imports(include=INSTRUMENT):
        for m in MODULES[name]:
            importlib.import_module(m)
    from targets import TARGETS, allowed_errors

    target = TARGETS[name] if name in TARGETS else importlib.import_module("targets_daemon").TARGET
    target.setup()
    allowed = allowed_errors()
    seen: set[str] = set()

    def one_input(data: bytes) -> None:
        try:
            target.run(data)
        except allowed as e:
            if not str(e).strip():
                record(data, e, "our error without a message")
        except Exception as e:  # noqa: BLE001 (anything else is what we are looking for)
            record(data, e, "")

    def record(data: bytes, e: BaseException, why: str) -> None:
        tb = traceback.extract_tb(e.__traceback__)
        ours = [f for f in tb if str(REPO) in f.filename and "/tests/" not in f.filename] or tb[-1:]
        where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
        sig = f"{type(e).__name__} at {where}"
        if sig in seen:
            return
        seen.add(sig)
        key = hashlib.sha1(sig.encode()).hexdigest()[:10]
        (out / f"finding-{key}").write_bytes(data)
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        (out / f"finding-{key}.txt").write_text(f"{sig} {why}\n{text}")

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def run_harness(
    name: str, out: Path, seconds: float | None, runs: int | None, timeout: int, rss_mb: int, seed: int | None
) -> tuple[int, list[str]]:
    """(executions, crash descriptions) of one harness run."""
    if out.exists():
        shutil.rmtree(out)
    work = out / "corpus"
    work.mkdir(parents=True)
    seeds = CORPUS / name
    args = [
        str(work),
        str(seeds),
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_mb}",
        "-print_final_stats=1",
        f"-artifact_prefix={out}/",
        "-max_len=200000",
    ]
    args.append(f"-runs={runs}" if runs is not None else f"-max_total_time={int(seconds)}")
    if seed is not None:
        args.append(f"-seed={seed}")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "protos"), os.environ.get("PYTHONPATH", "")]),
    }
    limit = (seconds or 0) + 600 if runs is None else 1800
    try:
        p = subprocess.run(
            [sys.executable, __file__, "--child", name, "--out", str(out), "--", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=limit,
            cwd=REPO,
        )
        log, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        log, rc = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace"), -9
    (out / "fuzz.log").write_text(log)
    done = re.findall(r"Done (\d+) runs", log) or re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    execs = int(done[-1]) if done else max([int(n) for n in re.findall(r"^#(\d+)\s", log, re.M)] or [0])
    crashes = [(out / f).read_text().splitlines()[0] for f in sorted(os.listdir(out)) if f.endswith(".txt")]
    for f in sorted(os.listdir(out)):
        if re.match(r"(crash|timeout|oom|leak|slow-unit)-", f):
            crashes.append(f"libFuzzer {f.split('-')[0]}: {out / f}")
    if rc != 0 and not crashes:
        crashes.append(f"harness process ended with status {rc}; see {out / 'fuzz.log'}")
    return execs, crashes


def write_seeds(names: list[str]) -> None:
    import importlib

    from targets import TARGETS

    for name in names:
        target = TARGETS[name] if name in TARGETS else importlib.import_module("targets_daemon").TARGET
        folder = CORPUS / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for seed_name, data in target.seeds().items():
            (folder / seed_name).write_bytes(data)
        print(f"{name}: {len(os.listdir(folder))} seeds, {sum(f.stat().st_size for f in folder.iterdir())} bytes")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("harness", nargs="*", help=f"harnesses to run (default: all of {', '.join(HARNESSES)})")
    p.add_argument(
        "--seconds",
        type=float,
        default=float(os.environ.get("FUZZ_SECONDS", 300)),
        help="fuzzing time per harness (default $FUZZ_SECONDS or 300)",
    )
    p.add_argument("--runs", type=int, help="executions per harness instead of a time")
    p.add_argument("--timeout", type=int, default=20, help="seconds one input may take before it is a hang (20)")
    p.add_argument("--rss-mb", type=int, default=3072, help="memory bound of a harness process, MiB (3072)")
    p.add_argument("--seed", type=int, help="libFuzzer's random seed (default: random)")
    p.add_argument("--out", type=Path, default=REPO / "out" / "fuzz", help="output folder (default out/fuzz)")
    p.add_argument(
        "--write-seeds",
        action="store_true",
        help="(re)write the seed corpora in tests/fuzz/corpus/ from the targets' seeds() and exit",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    libfuzzer = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = p.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.child:
        child(args.child, args.out, libfuzzer)
        return 0
    names = args.harness or HARNESSES
    unknown = sorted(set(names) - set(HARNESSES))
    if unknown:
        p.error(f"unknown harness(es) {unknown}; known: {', '.join(HARNESSES)}")
    if args.write_seeds:
        write_seeds(names)
        return 0
    found = 0
    for name in names:
        execs, crashes = run_harness(
            name, args.out / name, None if args.runs else args.seconds, args.runs, args.timeout, args.rss_mb, args.seed
        )
        print(f"{name.upper()}: {execs} executions, {len(crashes)} crashes", flush=True)
        for c in crashes:
            print(f"  {c}", flush=True)
        found += len(crashes)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
