# r2ec's two commands on a fresh Debian machine: `make serve` (the main job) and `make test` (every test).
# Both install what they need first: Debian packages through apt-get, Python packages into .venv.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The store: libsqlite3-dev (GRDB) and libpq-dev (the PostgreSQL client); postgresql and sqlite3 are the real servers
# and shells the store's tests start and check against. Data-parallel training: libopenmpi-dev, openmpi-bin (mpirun),
# iproute2 (the network-namespace hosts of the two-host test).
APT_PACKAGES := libuv1-dev libprotobuf-c-dev protobuf-c-compiler libopenblas-dev libhttp-parser-dev protobuf-compiler socat pkg-config \
                libsqlite3-dev libpq-dev postgresql sqlite3 libopenmpi-dev openmpi-bin iproute2
# The gRPC door's real peers: stunnel4 (TLS in front of the custom protocol) and openssl (test certificates); Go with
# Debian's gRPC packages runs clients/go/example against both ports (GOPATH mode, nothing downloaded).
APT_PACKAGES += stunnel4 openssl golang-go golang-google-grpc-dev golang-google-protobuf-dev protoc-gen-go protoc-gen-go-grpc
# Several replicas behind a balancer (deploy/haproxy.cfg, clients/python/tests/test_haproxy.py).
APT_PACKAGES += haproxy
BENCH_APT_PACKAGES := redis-server redis-tools
VENV := .venv
PY := $(VENV)/bin/python
SWIFT_BUILD_FLAGS ?=
HOST ?= 127.0.0.1
PORT ?= 7878
DATASET ?= data/ml-100k
# The store `make serve` serves (r2ec serve --store): SQLite, filled from DATASET the first time.
STORE ?= data/r2ec.sqlite
MODEL_DIR ?= models/default
# The first model is the default one: the dual-head network, with the classic baselines beside it.
SERVE_MODELS ?= $(MODEL_DIR) wals popularity
# The Python suite (clients/python/tests) also drives the shell client against the same real server.
# Tests run the Swift reference tests with the venv's python3 (numpy) first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help deps deps-system deps-python bench-deps data build release serve train test test-swift test-python \
        check-protos protos clean fuzz-smoke test-sanitizers notebook eval-table

help:
	@echo "make serve   install what is missing, fetch the dataset, build release, fill $(STORE) from it once, serve on $(HOST):$(PORT)"
	@echo "make test    install what is missing, build, run the Swift, Python-client and shell-client tests"
	@echo "make train   the full training recipe (configs/full.json) into models/full"
	@echo "make notebook          run clients/python/examples/quickstart.ipynb against a server started as make serve starts it, saving its outputs"
	@echo "make fuzz-smoke        every libFuzzer target of Tests/Fuzz for FUZZ_SECONDS (default 20) each"
	@echo "make test-sanitizers   the Swift tests under AddressSanitizer and ThreadSanitizer (.build-asan, .build-tsan)"
	@echo "make bench-deps        PyTorch (CPU) in .venv-bench, the peer that r2ec bench engine/train run"
	@echo "make eval-table        popularity, WALS, BPR and the default recipe on ml-100k and ml-1m (docs/evaluation.md)"
	@echo "make data | build | release | protos | clean"

deps: deps-system deps-python

# Installs the Debian packages that are not there yet (apt-get update first, as a fresh machine needs), and
# python3-venv when the python3 on PATH cannot make the .venv.
deps-system:
	@missing=""; for p in $(APT_PACKAGES) $(EXTRA_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: clients/python/pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q numpy -e 'clients/python[plot,pandas,test]'
	touch $@

deps-python: $(VENV)/.installed

# The benchmarks' PyTorch eager peer (benchmarks/torch_peer.py; `r2ec bench engine|train` find .venv-bench): the CPU
# build of torch (no CUDA libraries), from the machine's wheel folder when it has one, else PyPI.
bench-deps: .venv-bench/.installed
.venv-bench/.installed:
	python3 -m venv .venv-bench
	.venv-bench/bin/pip install -q numpy
	.venv-bench/bin/pip install -q "torch==2.13.0+cpu" 2>/dev/null || .venv-bench/bin/pip install -q torch
	touch $@

data: deps-python
	scripts/fetch-data.sh $(DATASET)

# The multi-dataset table of docs/evaluation.md: popularity, WALS, BPR and the default recipe on ml-100k and ml-1m
# (leave-one-out, full ranking, bootstrap intervals); reports and checkpoints in runs/table, reused when present.
EVAL_TABLE_ROWS ?= pop,wals,bpr,default
eval-table: deps-python release
	scripts/fetch-data.sh data/ml-100k
	scripts/fetch-data.sh data/ml-1m
	python3 benchmarks/eval_table.py --datasets data/ml-100k,data/ml-1m --rows $(EVAL_TABLE_ROWS)

build: deps-system
	swift build $(SWIFT_BUILD_FLAGS)

release: deps-system
	swift build -c release --product r2ec $(SWIFT_BUILD_FLAGS)

# The quick default recipe, trained once when no checkpoint is there (r2ec train writes into MODEL_DIR.partial and
# renames it when it has finished, so an interrupted run never leaves a half-written model behind).
$(MODEL_DIR)/model.safetensors: | deps data release
	.build/release/r2ec train --config configs/default.json --dataset $(DATASET) --out $(MODEL_DIR)

train: deps data release
	.build/release/r2ec train --config configs/full.json --dataset $(DATASET) --out models/full

# The live loop's store: made from DATASET on first use (written beside, renamed when the import has finished, so
# an interrupted import never leaves a half-filled store behind); the server records events and items into it.
$(STORE): | deps data release
	rm -f $(STORE).partial $(STORE).partial-wal $(STORE).partial-shm
	.build/release/r2ec store import --dataset $(DATASET) --store sqlite:$(STORE).partial
	mv $(STORE).partial $(STORE)
	rm -f $(STORE).partial.lock

serve: deps data release $(MODEL_DIR)/model.safetensors $(STORE)
	.build/release/r2ec serve --host $(HOST) --port $(PORT) --store sqlite:$(STORE) $(addprefix --model ,$(SERVE_MODELS))

# The quickstart notebook, executed top to bottom against a fresh server with make serve's models, saved with its
# outputs (tests/test_notebook.py checks a re-run reproduces them where the same checkpoint is at hand).
notebook: deps data release $(MODEL_DIR)/model.safetensors
	$(PY) clients/python/examples/run_notebook.py clients/python/examples/quickstart.ipynb .build/release/r2ec \
	  --dataset $(DATASET) $(addprefix --model ,$(SERVE_MODELS))

test: deps data check-protos test-swift test-python
	@echo "make test: all suites passed"

check-protos: deps-system
	scripts/gen-protos.sh --check
	scripts/gen-grpc-methods.sh --check

test-swift: deps-system
	swift build --build-tests $(SWIFT_BUILD_FLAGS)
	swift test --skip-build

test-python: deps-python build
	R2EC_BIN=$(CURDIR)/.build/debug/r2ec $(PY) -m pytest clients/python/tests -q

# Reliability checks (docs/reliability.md); .ci/run runs both after `make test`.
FUZZ_SECONDS ?= 20
fuzz-smoke: deps-system
	scripts/fuzz.sh all $(FUZZ_SECONDS)

test-sanitizers: deps-system deps-python
	scripts/sanitizers.sh address thread

protos: deps-system
	scripts/gen-protos.sh

clean:
	rm -rf .build $(VENV)
