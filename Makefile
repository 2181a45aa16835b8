# Two commands for a fresh machine: `make demo` and `make test`. Each installs what it
# needs into .venv first (tools/bootstrap.sh, safe to run twice).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped

.PHONY: setup relink demo test bench fuzz clean

$(STAMP): pyproject.toml tools/bootstrap.sh
	bash tools/bootstrap.sh
	touch $@

setup: $(STAMP)

# a module added or removed since the editable install gets its link (tools/relink.sh)
relink: $(STAMP)
	@bash tools/relink.sh

demo: relink
	$(VENV)/bin/regiond demo --out out/demo

test: relink
	$(PY) -m pytest -q

# The quick benchmarks (a few minutes); each prints its ratio against a baseline run alongside.
# Longer ones: bench/search.py (1M regions, ~7 min), bench/scan.py at its default 300 frames
# (~3 min of rendering first) and bench/heads_experiments.py (see its --help).
bench: relink
	for b in bench/regions.py bench/pooling.py bench/stream.py bench/tokens.py; do \
	  echo "== $$b"; $(PY) $$b || exit 1; done
	echo "== bench/load.py"; $(PY) bench/load.py --seconds 20
	echo "== bench/scan.py"; $(PY) bench/scan.py --frames 100

# Every fuzz harness (tests/fuzz/) for FUZZ_SECONDS each; one line per harness:
# `HARNESS: N executions, C crashes`. make test runs a short run of each.
FUZZ_SECONDS ?= 300
fuzz: relink
	$(PY) tests/fuzz/runner.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf out .pytest_cache
