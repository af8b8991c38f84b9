# qatfold: `make demo` runs the main job on the bundled example, `make test`
# runs every test. Both set up what is missing first (Debian packages, the
# pinned Python environment in .venv, the C++ builds).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

BUILD := build
ASAN_BUILD := build-asan
TSAN_BUILD := build-tsan
FUZZ_BUILD := $(ASAN_BUILD)
# Seconds per fuzz target: `make fuzz` for a campaign, the smoke in `make test`.
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 5
EXAMPLE := tests/fixtures/qat_cadence_cnn.pt2
DEMO_OUT := demo-out

.PHONY: all setup system-deps venv python-install build build-asan build-tsan build-fuzz demo test test-cpp test-asan \
        test-tsan test-fuzz test-python test-python-fast fuzz fuzz-coverage fixtures stubs bench accuracy check wheel sdist lint format clean

all: build

setup: system-deps venv

system-deps:
	@bash scripts/install_system_deps.sh

# torch first, from the CPU wheel on disk, so nothing pulls a CUDA build.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q -r requirements.txt
	touch $@

# The qatfold Python package (C++ core + nanobind extension) into .venv.
PACKAGE_SOURCES := $(shell find src python -type f -not -name "*.pyc") CMakeLists.txt pyproject.toml
python-install: $(VENV)/.qatfold-installed
$(VENV)/.qatfold-installed: $(VENV)/.installed $(PACKAGE_SOURCES)
	$(VPY) -m pip install -q --no-build-isolation .
	touch $@

$(BUILD)/build.ninja: | setup
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

# One clang tree for ASan+UBSan: the tests, the command they run, and the
# fuzz targets (the core instrumented for libFuzzer too), at -O1 as fuzzing
# is usually built. One tree, not two: the core compiles once.
$(ASAN_BUILD)/build.ninja: | setup
	CC=clang CXX=clang++ cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DQATFOLD_FUZZ=ON -DQATFOLD_BUILD_BENCH=OFF

$(TSAN_BUILD)/build.ninja: | setup
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQATFOLD_TSAN=ON

build: $(BUILD)/build.ninja
	cmake --build $(BUILD)

build-asan: $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD)

# TSan checks the re-entrancy tests only: their own small binary.
build-tsan: $(TSAN_BUILD)/build.ninja
	cmake --build $(TSAN_BUILD) --target qatfold_concurrency_tests

build-fuzz: build-asan

demo: build python-install
	@mkdir -p $(DEMO_OUT)
	@echo "== qatfold inspect $(EXAMPLE)"
	@$(BUILD)/qatfold inspect $(EXAMPLE)
	@echo
	@echo "== qatfold fold $(EXAMPLE) -o $(DEMO_OUT)/folded.pt2"
	@$(BUILD)/qatfold fold $(EXAMPLE) -o $(DEMO_OUT)/folded.pt2
	@echo
	@echo "== qatfold inspect $(DEMO_OUT)/folded.pt2   (no batch_norm left)"
	@$(BUILD)/qatfold inspect $(DEMO_OUT)/folded.pt2
	@echo
	@echo "== python examples/cadence_qat.py   (QAT -> convert -> qatfold.fold -> Cadence lowering)"
	@$(VPY) examples/cadence_qat.py

# A manylinux wheel that installs anywhere: libsimdjson bundled (docs in
# README, "Install"); tests/python/test_wheel.py installs it in a fresh venv.
wheel: python-install
	bash scripts/build_wheel.sh dist

# The source distribution (scikit-build-core's PEP 517 hook; no extra tool).
sdist: venv
	$(VPY) -c "from scikit_build_core.build import build_sdist; print('dist/' + build_sdist('dist'))"

# Top-1 on scikit-learn's digits at every stage, down to the backends'
# runtimes (docs/accuracy.md has the table it prints).
accuracy: build python-install
	$(VPY) examples/digits.py

# Each stage in turn, with the time it took (scripts/run_stages.sh).
test:
	@MAKE="$(MAKE)" bash scripts/run_stages.sh lint test-cpp test-asan test-tsan test-fuzz test-python

test-cpp: build
	ctest --test-dir $(BUILD) --output-on-failure -j2

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j2

# The re-entrancy tests under ThreadSanitizer.
test-tsan: build-tsan
	TSAN_OPTIONS=halt_on_error=1 $(TSAN_BUILD)/qatfold_concurrency_tests

# A short run of each fuzz target; it replays the committed regression inputs first.
test-fuzz: build-fuzz
	BUILD_DIR=$(FUZZ_BUILD) bash fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

fuzz: build-fuzz
	BUILD_DIR=$(FUZZ_BUILD) bash fuzz/run.sh $(FUZZ_SECONDS)

# Line coverage of src/qatfold reached by the corpora `make fuzz` grew.
fuzz-coverage: | setup
	CORPUS_DIR=$(FUZZ_BUILD)/corpus bash fuzz/coverage.sh

# Two workers, one per core; a test file stays on one worker so its
# session fixtures are built once. Generated programs are shared on disk
# (zoo/program_cache.py).
PYTEST := $(VPY) -m pytest -q -n 2 --dist loadfile tests/python
test-python: build python-install
	QATFOLD_CLI=$(CURDIR)/$(BUILD)/qatfold $(PYTEST)

# The fast tier: everything but the end-to-end backend lowerings and the
# package build from a clean clone.
test-python-fast: build python-install
	QATFOLD_CLI=$(CURDIR)/$(BUILD)/qatfold $(PYTEST) -m "not slow"

# Lint: ruff on every Python file, mypy on the package, clang-format on every
# C++ file git knows (.clang-format: the house style). `make format` fixes
# what the formatters can.
CXX_SOURCES = $(shell git ls-files '*.cc' '*.h')
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	@echo "$(VENV)/bin/clang-format --dry-run --Werror ($(words $(CXX_SOURCES)) C++ files)"
	@$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/clang-format -i $(CXX_SOURCES)

# The edit-test loop: the plain C++ tests and the fast Python tier (at most
# 3 minutes after a build; `make test` runs every tier).
check: test-cpp test-python-fast

# The typing stub of qatfold's API, from the fold options table (qatfold/_signatures.py).
stubs: python-install
	$(VPY) -c "from qatfold._signatures import render_stub; print(render_stub(), end='')" > python/qatfold/_api.pyi

fixtures: venv
	$(VPY) -m tools.make_fixtures

bench: build python-install
	QATFOLD_CLI=$(CURDIR)/$(BUILD)/qatfold $(VPY) -m bench.big_archive
	QATFOLD_CLI=$(CURDIR)/$(BUILD)/qatfold $(VPY) -m bench.fold_speed
	$(VPY) -m bench.json_readers --chains 50 400

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz-coverage $(DEMO_OUT)
