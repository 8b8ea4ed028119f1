#!/usr/bin/env bash
# Make sure the services the integration tests start are installed:
# PostgreSQL's server programs (initdb, postgres) and redis-server.
#
#   scripts/integration_deps.sh
#
# Installs what is missing with apt-get (Debian/Ubuntu); elsewhere it says
# what to install and fails. The tests start their own servers on free
# loopback ports in temporary directories; nothing is configured here.
set -euo pipefail

need_apt=()
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null &&
    ! command -v initdb >/dev/null 2>&1; then
    need_apt+=(postgresql)
fi
if ! command -v redis-server >/dev/null 2>&1; then
    need_apt+=(redis-server)
fi

if ((${#need_apt[@]} == 0)); then
    pg=$(ls -d /usr/lib/postgresql/*/ 2>/dev/null | xargs -r -n1 basename | sort -V | tail -n1)
    redis=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
    echo "integration deps: ok (PostgreSQL ${pg:-on PATH}, redis-server $redis)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "integration deps: error: install ${need_apt[*]} (Debian names) with your package manager" >&2
    exit 1
fi
sudo=()
if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "integration deps: error: need root (or sudo) to apt-get install ${need_apt[*]}" >&2
        exit 1
    fi
fi
echo "integration deps: installing ${need_apt[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${need_apt[@]}"
