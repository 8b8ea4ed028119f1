#!/usr/bin/env bash
# Create (or reuse) a virtualenv and install tideloop into it.
#
#   scripts/venv.sh VENV PYTHON [EXTRA_PACKAGE...]
#
# The venv is reused when it works and has PYTHON's major.minor version;
# otherwise it is made anew. Build tools, pytest and mypy are installed once, uvloop
# (only a comparison for tests and benchmarks) best effort once, and then
# tideloop itself is always reinstalled with `pip install .` (not editable:
# tests run against the installed package). Rebuilding is cheap when nothing
# changed: setuptools keeps objects in build/ and recompiles only when a file
# in ext/ is newer than the built module.
#
# PIP_INSTALL_FLAGS (default --no-build-isolation) goes to that last
# `pip install .`; add -v to see compiler output.
set -euo pipefail

venv=${1:?usage: scripts/venv.sh VENV PYTHON [EXTRA_PACKAGE...]}
python=${2:?usage: scripts/venv.sh VENV PYTHON [EXTRA_PACKAGE...]}
shift 2
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1
pyver() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }

want=$(pyver "$python") || {
    echo "venv: error: cannot run Python interpreter '$python'" >&2
    exit 1
}
have=$(pyver "$venv/bin/python" || true)
if [[ "$have" != "$want" ]]; then
    if [[ -e "$venv" ]]; then
        echo "venv: $venv has Python '${have:-broken}', want $want: recreating it"
        rm -rf "$venv"
    fi
    echo "venv: creating $venv with $python (Python $want)"
    "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"

# setuptools and wheel are needed in the venv because tideloop is built with
# --no-build-isolation (no throwaway build env per install: faster, and it
# works without an index). Python 3.12+ venvs come without setuptools.
# setuptools 70.1+ has bdist_wheel built in (older ones warn through wheel).
# The tests also need mypy (tests/test_typing.py), build
# (tests/test_packaging.py) and matplotlib (tests/test_chart.py, the
# benchmark chart). mypy is pinned: a new release brings new checks
# and typeshed changes, and 1.19 is the last one that runs on and checks
# for Python 3.9.
MYPY_VERSION=1.19.1
if ! "$vpy" -c '
import sys
import setuptools, wheel, pytest, build, mypy.version, matplotlib
sys.exit(tuple(map(int, setuptools.__version__.split(".")[:2])) < (70, 1)
         or mypy.version.__version__ != sys.argv[1])' "$MYPY_VERSION" 2>/dev/null; then
    echo "venv: installing build tools, pytest, mypy and matplotlib into $venv"
    "$vpy" -m pip install -q "setuptools>=70.1" wheel pytest build \
        "mypy==$MYPY_VERSION" matplotlib
fi

if [[ ! -e "$venv/.tideloop-uvloop-tried" ]]; then
    touch "$venv/.tideloop-uvloop-tried"
    if ! "$vpy" -c 'import uvloop' 2>/dev/null; then
        "$vpy" -m pip install -q uvloop ||
            echo "venv: note: uvloop not installed (only used for comparison)"
    fi
fi

if (($# > 0)); then
    "$vpy" -m pip install -q "$@"
fi

echo "venv: pip install . into $venv"
flags=${PIP_INSTALL_FLAGS---no-build-isolation}
quiet=-q
[[ " $flags " == *" -v"* || " $flags " == *" --verbose "* ]] && quiet=
# shellcheck disable=SC2086  # the flags are lists of words
"$vpy" -m pip install $quiet $flags .
