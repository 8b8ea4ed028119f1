#!/usr/bin/env bash
# Make sure the system can build tideloop: a C compiler, pkg-config and
# libuv's headers, plus the headers of the Python we build for.
#
#   scripts/deps.sh [PYTHON]
#
# Installs what is missing with apt-get where there is one (Debian/Ubuntu);
# elsewhere it says what to install and fails. With TIDELOOP_LIBUV,
# TIDELOOP_LIBUV_CFLAGS or TIDELOOP_LIBUV_LIBS set, libuv is the caller's
# business and is not checked (setup.py checks TIDELOOP_LIBUV's prefix).
set -euo pipefail

python=${1:-python3}
need_apt=()

if [[ -n "${TIDELOOP_LIBUV_CFLAGS:-}${TIDELOOP_LIBUV_LIBS:-}" ]]; then
    echo "deps: libuv from TIDELOOP_LIBUV_CFLAGS/TIDELOOP_LIBUV_LIBS (pkg-config not used)"
elif [[ -n "${TIDELOOP_LIBUV:-}" ]]; then
    echo "deps: libuv from TIDELOOP_LIBUV=$TIDELOOP_LIBUV (pkg-config not used)"
elif command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libuv; then
    :
else
    need_apt+=(libuv1-dev pkg-config)
fi

if ! command -v "${CC:-cc}" >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    need_apt+=(build-essential)
fi

# A Debian system Python needs python3-dev for Python.h and python3-venv for
# `python -m venv`; pyenv and python.org builds ship both.
if command -v "$python" >/dev/null 2>&1; then
    if ! "$python" -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null; then
        ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        need_apt+=("python${ver}-dev")
    fi
    if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
        ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        need_apt+=("python${ver}-venv")
    fi
else
    echo "deps: error: Python interpreter '$python' not found; set PYTHON=/path/to/python3" >&2
    exit 1
fi

if ((${#need_apt[@]} == 0)); then
    echo "deps: ok (libuv $(pkg-config --modversion libuv 2>/dev/null || echo 'from override'))"
    exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
    sudo=()
    if [[ $(id -u) != 0 ]]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "deps: error: need root (or sudo) to apt-get install ${need_apt[*]}" >&2
            exit 1
        fi
    fi
    echo "deps: installing ${need_apt[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need_apt[@]}"
    if [[ -z "${TIDELOOP_LIBUV_CFLAGS:-}${TIDELOOP_LIBUV_LIBS:-}${TIDELOOP_LIBUV:-}" ]] && ! pkg-config --exists libuv; then
        echo "deps: error: libuv still not found by pkg-config after installing libuv1-dev" >&2
        exit 1
    fi
    echo "deps: ok (libuv $(pkg-config --modversion libuv 2>/dev/null || echo 'from override'))"
    exit 0
fi

cat >&2 <<MSG
deps: error: missing build dependencies: ${need_apt[*]} (Debian names)
and there is no apt-get here. Install them with your package manager:
    Fedora/RHEL:  sudo dnf install libuv-devel pkgconf-pkg-config gcc python3-devel
    macOS:        brew install libuv pkg-config   (and the Xcode command line tools)
or point the build at libuv yourself (docs/install.md):
    TIDELOOP_LIBUV=/path/prefix make test
    TIDELOOP_LIBUV_CFLAGS="-I/path/include" TIDELOOP_LIBUV_LIBS="-L/path/lib -luv" make test
MSG
exit 1
