#!/usr/bin/env bash
# Run the test suite against an AddressSanitizer/UBSan build of tideloop.
#
#   scripts/asan.sh VENV [PYTEST_ARG...]
#
# VENV must hold a TIDELOOP_ASAN=1 build (`make asan` makes it). The
# interpreter is not instrumented, so libasan is preloaded and Python's own
# allocator is bypassed (PYTHONMALLOC=malloc) so that ASAN sees every block.
#
# Sanitizer reports go to files in build/sanitizer-logs (log_path), not to
# stderr: pytest's output capture would swallow a report written just before
# the process aborts, and tests that run children would hide theirs. Any
# report fails the run and is printed at the end.
set -uo pipefail
venv=${1:?usage: scripts/asan.sh VENV [PYTEST_ARG...]}
shift
cd "$(dirname "$0")/.."

libasan=$(gcc -print-file-name=libasan.so)
if [[ ! -e "$libasan" ]]; then
    echo "asan: error: gcc has no libasan.so (Debian: apt-get install libasan8)" >&2
    exit 1
fi
logs=$PWD/build/sanitizer-logs
rm -rf "$logs"
mkdir -p "$logs"

echo "asan: LD_PRELOAD=$libasan"
LD_PRELOAD="$libasan" \
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}:log_path=$logs/asan" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}:log_path=$logs/ubsan" \
PYTHONMALLOC=malloc \
    "$venv/bin/python" -m pytest tests "$@"
rc=$?

shopt -s nullglob
reports=("$logs"/*)
if ((${#reports[@]})); then
    for f in "${reports[@]}"; do
        echo
        echo "================ sanitizer report: $(basename "$f") ================"
        cat "$f"
    done
    echo
    echo "asan: FAILED: ${#reports[@]} sanitizer report(s), kept in $logs" >&2
    ((rc == 0)) && rc=1
fi
exit "$rc"
