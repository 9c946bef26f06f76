# Developer commands (pydantic-core style). `make run` and `make test` do all the set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
DEPS_STAMP := $(VENV)/.deps-installed
BUILD_STAMP := $(VENV)/.native-built
RUST_SOURCES := $(shell find rust -name '*.rs' -o -name '*.proto' 2>/dev/null) Cargo.toml Cargo.lock
# pyo3 builds against the virtualenv's interpreter.
export PYO3_PYTHON := $(abspath $(PY))
PYTEST_ARGS ?=

.PHONY: all install build-dev build-prod run test test-rust test-python test-chaos test-compliance test-prometheus-live soak fuzz bench lint format clean system-deps

all: lint test

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Exact versions from requirements.lock; ranges in pyproject.toml.
$(DEPS_STAMP): $(PY) requirements.lock pyproject.toml
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

install: $(DEPS_STAMP) $(BUILD_STAMP)

# Release build (fat LTO): the daemon, the tests and the benchmarks all run the optimized hot path.
$(BUILD_STAMP): $(DEPS_STAMP) $(RUST_SOURCES)
	$(BIN)/maturin develop --release --quiet
	touch $@

build-prod: $(BUILD_STAMP)

# Debian packages only the tests need (deploy/ checks and the cluster test), installed when their
# command is missing: promtool + prometheus (package prometheus), systemd-analyze (package systemd;
# without systemd-sysv it does not replace the container's init), zkServer.sh (package zookeeper).
# `run` does not need them.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_DEPS := promtool:prometheus prometheus:prometheus systemd-analyze:systemd \
	prometheus-node-exporter:prometheus-node-exporter \
	/usr/share/zookeeper/bin/zkServer.sh:zookeeper
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
		cmd=$${dep%%:*}; pkg=$${dep##*:}; \
		command -v $$cmd >/dev/null 2>&1 || case " $$missing " in *" $$pkg "*) ;; *) missing="$$missing $$pkg";; esac; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

build-dev: $(DEPS_STAMP)
	$(BIN)/maturin develop --quiet
	rm -f $(BUILD_STAMP)

run: install
	$(BIN)/otelingest serve $(ARGS)

test: install system-deps test-rust test-python

test-rust: $(DEPS_STAMP)
	cargo test --locked

test-python: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# Long run of the no-panic properties of the decoder (rust/tests/decode_fuzz.rs).
fuzz:
	PROPTEST_CASES=$${PROPTEST_CASES:-200000} cargo test --locked --release --test decode_fuzz --test remote_write_fuzz

# The upstream PromQL compliance queries side by side with a real Prometheus 2.42 on the same
# samples (tests/compliance/harness.py): a few minutes; writes compliance-report.md and .json.
test-compliance: install system-deps
	cd tests && ../$(PY) -m compliance.harness --report ../compliance-report.md $(ARGS)

# Minutes of Prometheus 2.42 scraping node-exporter and the daemon, remote-writing to it, the daemon
# restarted mid-way (tests/e2e/test_prometheus_live.py).
test-prometheus-live: install system-deps
	$(PY) -m pytest -m live -s tests/e2e/test_prometheus_live.py $(PYTEST_ARGS)

test-chaos: install
	$(PY) -m pytest -m chaos -s $(PYTEST_ARGS)

# Not part of `make test`: 30 minutes of mixed traces/logs/metrics at 70% of the measured capacity with
# queries running (tests/helpers/soak.py); SOAK_MINUTES=5 for a shorter run. Figures in bench/results/soak.json.
SOAK_MINUTES ?= 30
soak: install
	mkdir -p bench/results
	$(PY) tests/helpers/soak.py --minutes $(SOAK_MINUTES) --json bench/results/soak.json

# Not part of `make test`: minutes of full load on the machine. Results land in bench/results/.
bench: install
	mkdir -p bench/results
	$(BIN)/otelingest bench native --json bench/results/native.json
	$(BIN)/otelingest bench ingest --json bench/results/ingest.json
	$(BIN)/otelingest bench query --json bench/results/query.json
	$(BIN)/otelingest bench query

lint: install
	cargo clippy --locked -- -D warnings
	$(PY) -m mypy python/otelingest
	$(BIN)/lint-imports --no-logo

format:
	cargo fmt

clean:
	rm -rf $(VENV) target
