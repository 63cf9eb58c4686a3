# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and install the locked dependencies.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bmslink demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,bench]"
	$(PY) benchmarks/codec.py
	$(PY) benchmarks/sim_speed.py
	$(PY) benchmarks/detect.py
	$(PY) benchmarks/analyze.py
	$(PY) benchmarks/rs485_poll.py
	$(PY) benchmarks/fault_latency.py
	$(PY) benchmarks/footprint.py

clean:
	rm -rf $(VENV)
