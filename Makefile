# Two commands for a fresh machine: `make demo` and `make test`. Each installs what it
# needs into .venv first (tools/bootstrap.sh, safe to run twice).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml tools/bootstrap.sh
	bash tools/bootstrap.sh
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/regiond demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf out .pytest_cache
