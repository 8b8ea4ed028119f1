#!/usr/bin/env bash
# Run the test suite on several Python versions, each in its own venv
# (.venv-3.X), and fail if any of them fails or none was found.
#
#   scripts/test_all.sh 3.9 3.10 3.11 3.12 3.13 3.14 3.15
#
# For version X it uses the newest /root/.pyenv/versions/X.*/bin/python
# ($PYENV_ROOT honoured), else pythonX on PATH, else pythonX in the Debian
# sid root of $SID_ROOT (../shared/tools/sid-root.sh: 3.14, 3.15).
set -uo pipefail
cd "$(dirname "$0")/.."

find_python() {
    local v=$1 root=${PYENV_ROOT:-/root/.pyenv} p
    p=$(ls -d "$root"/versions/"$v".*/bin/python 2>/dev/null |
        grep -E "/versions/$v\.[0-9]+/bin/python\$" | sort -V | tail -n 1)
    if [[ -n "$p" && -x "$p" ]]; then
        echo "$p"
    elif command -v "python$v" >/dev/null 2>&1 && "python$v" -c '' 2>/dev/null; then
        command -v "python$v"
    fi
}

declare -a summary
failed=0
ran=0
for v in "$@"; do
    py=$(find_python "$v")
    run=()
    if [[ -z "$py" && -x "${SID_ROOT:-}" ]] && "$SID_ROOT" run "python$v" -c '' 2>/dev/null; then
        py="python$v"
        run=("$SID_ROOT" run)
    fi
    if [[ -z "$py" ]]; then
        summary+=("  $v: SKIPPED (no interpreter found)")
        continue
    fi
    echo
    echo "================ Python $v ($py${run:+, sid root}) ================"
    ran=$((ran + 1))
    if "${run[@]}" make --no-print-directory test PYTHON="$py" VENV=".venv-$v"; then
        summary+=("  $v: passed")
    else
        summary+=("  $v: FAILED")
        failed=$((failed + 1))
    fi
done

echo
echo "================ test-all summary ================"
printf '%s\n' "${summary[@]}"
if ((ran == 0)); then
    echo "test-all: no Python interpreter found for: $*" >&2
    exit 1
fi
exit $((failed > 0))
