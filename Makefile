# tideloop developer entry points. Every target works from a fresh clone:
# it installs libuv's headers if missing (`deps`), makes the venv (`venv`)
# and installs the package with `pip install .` before using it.
#
# Variables (override on the command line, e.g. `make test PYTHON=python3.13
# VENV=.venv-3.13`):
#   PYTHON             interpreter the venv is made from (default: python3.11
#                      if it runs, else pyenv's 3.11.7, else python3)
#   VENV               venv directory (default .venv)
#   PYTEST_ARGS        extra pytest arguments (default -q)
#   PIP_INSTALL_FLAGS  flags for `pip install .` (default --no-build-isolation;
#                      add -v to see compiler output)
#   TEST_VERSIONS      Python versions for test-all (default 3.9 ... 3.15;
#                      3.14 and 3.15 run in the Debian sid root of SID_ROOT)
#   SID_ROOT           ../shared/tools/sid-root.sh: Python 3.14/3.15 and
#                      libuv 1.53 in a Debian unstable chroot
#   ASAN_VENV          venv for the sanitizer build (default .venv-asan)
#   PORTABLE_VENV      venv for the portable build (default .venv-portable)
#   ASAN_MARKS         pytest -m expression of `make asan` (default: without
#                      the leak soak, the fuzzer and the tutorial; `make
#                      asan-full` runs everything)
#   ASAN_OPTIONS       (default detect_leaks=0)
#   BENCH_ARGS         arguments for benchmarks/run.py
#   TUTORIAL           tutorial runner used by `make run`
#   TUTORIAL_ARGS      extra arguments for it (e.g. -k 08_call_later)
#   INTEGRATION_TIMEOUT  seconds for the whole `make integration` pytest run
#                      (default 600)
# Build switches read by setup.py from the environment: TIDELOOP_WERROR=1,
# TIDELOOP_DEBUG=1, TIDELOOP_ASAN=1, TIDELOOP_LIBUV=<prefix>, TIDELOOP_LIBUV_CFLAGS,
# TIDELOOP_LIBUV_LIBS (docs/install.md).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell \
  if command -v python3.11 >/dev/null 2>&1 && python3.11 -c '' >/dev/null 2>&1; then \
    echo python3.11; \
  elif [ -x /root/.pyenv/versions/3.11.7/bin/python ]; then \
    echo /root/.pyenv/versions/3.11.7/bin/python; \
  else \
    echo python3; \
  fi)
endif

VENV ?= .venv
PY = $(VENV)/bin/python
PYTEST_ARGS ?= -q
PIP_INSTALL_FLAGS ?= --no-build-isolation
TEST_VERSIONS ?= 3.9 3.10 3.11 3.12 3.13 3.14 3.15
SID_ROOT ?= ../shared/tools/sid-root.sh
ASAN_VENV ?= .venv-asan
PORTABLE_VENV ?= .venv-portable
ASAN_MARKS ?= not leaks and not fuzz and not tutorial
ASAN_OPTIONS ?= detect_leaks=0
UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
BENCH_ARGS ?=
TUTORIAL ?= ../shared/tutorial/run_all.py
TUTORIAL_ARGS ?=
INTEGRATION_TIMEOUT ?= 600

export PIP_INSTALL_FLAGS
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: help deps venv install run test test-portable test-all integration bench chart asan asan-full compat clean distclean

help:
	@echo "make run        build, install and run the tutorial suite (or examples/demo.py)"
	@echo "make test       build, install and run the test suite (pytest)"
	@echo "make test-portable  the test suite on the portable build (POSIX + libuv"
	@echo "                only, TIDELOOP_PORTABLE=1) with the libuv backend"
	@echo "make test-all   the test suite on every Python in TEST_VERSIONS ($(TEST_VERSIONS))"
	@echo "make integration  uvicorn, aiohttp, websockets, httpx, asyncpg, redis, anyio,"
	@echo "                pytest-asyncio, gunicorn on tideloop against real servers"
	@echo "                (installs postgresql/redis-server and tests/integration/requirements.txt)"
	@echo "make bench      benchmarks/run.py against asyncio and uvloop, then the chart"
	@echo "make chart      benchmarks/results/chart.png from the saved results"
	@echo "make asan       the test suite on an AddressSanitizer/UBSan build"
	@echo "                (~10 min; without the leak soak, fuzzer and tutorial)"
	@echo "make asan-full  the same with the leak soak, fuzzer and tutorial"
	@echo "make compat     CPython's test_asyncio on tideloop (COMPAT_ARGS)"
	@echo "make deps       install libuv1-dev and pkg-config if missing (apt-get)"
	@echo "make venv       create $(VENV) from $(PYTHON) and pip install ."
	@echo "make clean      remove build products (make distclean: also the venvs)"

deps:
	@scripts/deps.sh "$(PYTHON)"

# `venv` always reinstalls the package: cheap when nothing changed, and it
# guarantees the venv runs the current ext/ and python/.
venv: deps
	@scripts/venv.sh "$(VENV)" "$(PYTHON)"

install: venv

# scripts/tutorial.py frames run_all.py's output with what ran, on which
# loop, compared with what, and how long it took next to the golden run.
run: venv
	@if [ -f "$(TUTORIAL)" ]; then \
	  $(PY) scripts/tutorial.py "$(TUTORIAL)" "$(abspath $(PY))" \
	    $(TUTORIAL_ARGS); \
	else \
	  echo "== $(TUTORIAL) not found: running examples/demo.py"; \
	  $(PY) -m tideloop examples/demo.py; \
	fi

test: venv
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Third-party libraries and real servers on tideloop (tests/integration,
# docs/recipes.md). Installs PostgreSQL and redis-server with apt-get if
# missing and the pinned packages into $(VENV); a missing dependency fails
# here (TIDELOOP_REQUIRE_INTEGRATION=1) instead of skipping. The whole run is
# bounded by INTEGRATION_TIMEOUT.
integration: venv
	@scripts/integration_deps.sh
	$(PY) -m pip install -q -r tests/integration/requirements.txt
	TIDELOOP_REQUIRE_INTEGRATION=1 timeout --kill-after=15 $(INTEGRATION_TIMEOUT) \
	  $(PY) -m pytest tests/integration -m integration $(PYTEST_ARGS)

# The portable build (what macOS and the BSDs compile: POSIX and libuv, no
# epoll/timerfd/eventfd/signalfd/pidfd/accept4/pipe2) in its own venv, run
# on the libuv backend; tests/test_backend.py checks its symbols with nm.
test-portable: deps
	@TIDELOOP_PORTABLE=1 scripts/venv.sh "$(PORTABLE_VENV)" "$(PYTHON)"
	TIDELOOP_BACKEND=libuv $(PORTABLE_VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

test-all: deps
	@SID_ROOT="$(SID_ROOT)" scripts/test_all.sh $(TEST_VERSIONS)

bench: venv
	@$(PY) -m pip install -q uvloop || echo "bench: note: uvloop not installed; comparing with asyncio only"
	@if [ -f benchmarks/requirements.txt ]; then $(PY) -m pip install -q -r benchmarks/requirements.txt; fi
	$(PY) benchmarks/run.py $(BENCH_ARGS)
	$(PY) benchmarks/chart.py

# benchmarks/results/chart.png from the saved results (core, net-latest,
# proc-latest), without running anything.
chart: venv
	@if [ -f benchmarks/requirements.txt ]; then $(PY) -m pip install -q -r benchmarks/requirements.txt; fi
	$(PY) benchmarks/chart.py

# CPython's own test_asyncio on tideloop (compat/README.md). COMPAT_ARGS
# e.g. "--python all" or "--threshold 3.11=870"; the summary table goes
# to compat/results/summary.md.
COMPAT_ARGS ?= --python 3.11 --python 3.13
compat: deps
	$(PYTHON) -m compat.run_cpython_suite --build $(COMPAT_ARGS) --list-failures

# The extension is built with -fsanitize=address,undefined and the
# interpreter is not: scripts/asan.sh preloads libasan, sets PYTHONMALLOC=malloc
# and collects sanitizer reports from build/sanitizer-logs. `make asan`
# leaves out the long parts (ASAN_MARKS: leak soak, fuzzer, tutorial);
# `make asan-full` runs them too. A -m in PYTEST_ARGS comes last and wins.
asan:
	@scripts/deps.sh "$(PYTHON)"
	@TIDELOOP_ASAN=1 scripts/venv.sh "$(ASAN_VENV)" "$(PYTHON)"
	ASAN_OPTIONS="$(ASAN_OPTIONS)" UBSAN_OPTIONS="$(UBSAN_OPTIONS)" \
	  scripts/asan.sh "$(ASAN_VENV)" $(if $(strip $(ASAN_MARKS)),-m "$(ASAN_MARKS)") \
	  $(PYTEST_ARGS)

asan-full:
	@$(MAKE) --no-print-directory asan ASAN_MARKS=

clean:
	rm -rf build dist .pytest_cache python/*.egg-info *.egg-info
	find . -path './.venv*' -prune -o -path ./.git -prune -o \
	  \( -name __pycache__ -o -name '*.so' -o -name '*.o' \) -print0 | xargs -0 rm -rf

distclean: clean
	rm -rf .venv .venv-*
