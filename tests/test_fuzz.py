"""Bad-argument fuzzing: every public loop method (and Handle/TimerHandle,
tideloop.run, new_event_loop, EventLoopPolicy, tideloop's own constructors
and LoopBase methods) fed wrong types, None, negative/huge/NaN numbers,
closed loops and sockets, non-callables, coroutines, objects whose
__index__/__float__/fileno raise or close the loop, dead weak proxies...
tideloop must raise the same exception type as stock asyncio (or not
raise where stock does not), and must never crash or hang.

The cases (a fixed seed, ~25,000 of them) are generated and run by
tests/isolated/fuzz_api.py in a child interpreter, stock asyncio then
tideloop for each case; one test per target collects its cases' results.
A segfault or a hang (per-case limit, TIDELOOP_FUZZ_CASE_TIMEOUT, 30 s)
becomes the failure of the case that caused it, with the child's stderr
(faulthandler's traceback), and the child is restarted after that case.

    python -m pytest tests/test_fuzz.py -q
    python -m pytest tests/test_fuzz.py -q -k call_later     # one target
    python tests/isolated/fuzz_api.py --list | grep call_later   # its cases
"""
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from support import ASYNCIO_ONLY, TESTS_DIR, child_env, import_tideloop

ISOLATED = os.path.join(TESTS_DIR, "isolated")
sys.path.insert(0, ISOLATED)
import fuzz_api  # noqa: E402

pytestmark = pytest.mark.fuzz

# Keys of an outcome that are bookkeeping, not behaviour.
IGNORED_KEYS = {"_nan"}

# Differences accepted on purpose: (substring of the case name, {outcome
# key: (stock, tideloop)}).  Every entry needs its reason; the lead decides.
ACCEPTED = [
    # fileno() closes the loop during add_reader()/add_writer(): stock
    # asyncio then fails on its own closed selector ("'NoneType' object has
    # no attribute 'register'"), an accident of its implementation;
    # tideloop's RuntimeError("Event loop is closed") is the documented
    # error for a closed loop.
    ("[fd=fileno-closes-loop]", {"call": ("AttributeError",
                                          "RuntimeError")}),
    # signal.SIGKILL (9) given as an fd: whether descriptor 9 is open in
    # the child depends on what earlier cases left to the garbage collector
    # and on each loop's own descriptors (stock 3, tideloop 5), not on the
    # method: either loop gets OSError for a closed fd and registers an
    # open one.  Seen both ways between runs of the same seed.
    ("[fd=SIGKILL]", {"call": ("ok", "OSError")}),
    ("[fd=SIGKILL]", {"call": ("OSError", "ok")}),
    # The loop's own epoll descriptor given as create_connection()'s proto:
    # that number differs between the loops (each opens its own fds, and
    # earlier cases leave different garbage), so it is IPPROTO_TCP (6) for
    # one loop and an unknown protocol (gaierror) for the other by chance.
    ("proto=fd-loop-epoll", {"await": ("ok", "gaierror")}),
    ("proto=fd-loop-epoll", {"await": ("gaierror", "ok")}),
    # A `when` with __float__ but no ordering: tideloop keys its heap on
    # float(when) (README, "Known differences"); stock's heapq needs `<`
    # between deadlines and fails when it compares them.
    ("loop.call_at[when=number-closes-loop]@running",
     {"call": ("TypeError", "ok"), "drain": ("TypeError", "ok"),
      "drain-after-dispose": ("TypeError", "ok")}),
]

# Documented differences where tideloop rejects a bad value when it is
# given (README, "Known differences"), while stock asyncio stores it and
# fails later (or fails at once, on a value it happened to compare):
# call_at()/call_later() convert `when`/`delay` to a float at once, and
# set_debug() takes the truth value at once.  Accepted only when tideloop
# raised at the call itself and stock failed at some point too.
EARLY_FAILURE_CASES = (("loop.call_at", "when="),
                       ("loop.call_later", "delay="),
                       ("loop.set_debug", "enabled="))
_LATER = ("call", "await", "drain", "run", "drain-after-dispose", "close")


def _early_failure(name, stock, tl):
    target, _, params = name.partition("[")
    target = target.split("~")[0]
    if not any(target == t and p in params for t, p in EARLY_FAILURE_CASES):
        return False
    if tl.get("call", "ok") == "ok":
        return False
    return any(stock.get(k, "ok") not in ("ok", None) for k in _LATER) or \
        bool(stock.get("handler"))

# Targets that bind or connect TCP/UDP ports given by the fuzzed values
# (port=True is port 1): they run in one child, one after the other, so a
# server of one case never answers a connection of another.
PORT_TARGETS = {"loop.create_server", "loop.create_connection",
                "loop.sock_connect", "loop.create_datagram_endpoint",
                "loop.sock_sendto"}
# Whole-run bound of the child(ren); restarts after a crash included.
TOTAL_TIMEOUT = float(os.environ.get("TIDELOOP_FUZZ_TOTAL_TIMEOUT", "1500"))
MAX_RESTARTS = 200
# Children run at once, each on a share of the targets.
JOBS = int(os.environ.get("TIDELOOP_FUZZ_JOBS", "0") or 0) or min(
    2, os.cpu_count() or 1)

ALL_CASES = [(c.target, c.name) for c in fuzz_api.generate()]
BY_TARGET = collections.OrderedDict()
for _t, _n in ALL_CASES:
    BY_TARGET.setdefault(_t, []).append(_n)
del _t, _n


class Crash:
    def __init__(self, case, kind, loop_kind, returncode, stderr):
        self.case = case
        self.kind = kind          # "crash", "hang" or "exit"
        self.loop_kind = loop_kind  # the loop the case was running on
        self.returncode = returncode
        self.stderr = stderr

    def describe(self):
        # faulthandler dumps every thread: leave out the harness's accept
        # threads (blocks separated by blank lines).
        blocks = [b for b in self.stderr.split("\n\n")
                  if "in _accept" not in b]
        tail = "\n".join("\n\n".join(blocks).splitlines()[-30:])
        if fuzz_api.UNDER_ASAN and self.kind == "crash":
            # UBSan prints to stderr (above); an ASAN report goes to a file.
            tail += ("\n(under AddressSanitizer: an ASAN report of this "
                     "crash, if any, is in build/sanitizer-logs, printed by "
                     "scripts/asan.sh at the end)")
        return ("%s on %s in case %r (exit status %s); reproduce with:\n"
                "  cd tests/isolated && python fuzz_api.py --out - "
                "--targets %s --only %r\n"
                "--- child stderr (tail)\n%s" % (
                    self.kind.upper(), self.loop_kind or "?", self.case,
                    self.returncode, fuzz_api.case_group(self.case),
                    self.case, tail))


def run_harness(targets, jobs=None):
    """Run the harness on `targets`, in `jobs` children at a time (each on
    its share of the targets); returns (results, crashes, seconds)."""
    import_tideloop()
    jobs = jobs or JOBS
    shards = [[] for _ in range(max(1, min(jobs, len(targets))))]
    sizes = [0] * len(shards)
    # The port-using targets together in shard 0, then the largest targets
    # first, each to the least loaded shard.
    for t in sorted(targets, key=lambda t: (t not in PORT_TARGETS,
                                            -len(BY_TARGET[t]))):
        i = 0 if t in PORT_TARGETS else sizes.index(min(sizes))
        shards[i].append(t)
        sizes[i] += len(BY_TARGET[t])
    t0 = time.monotonic()
    outs = [None] * len(shards)

    def work(i):
        outs[i] = _run_shard(shards[i], t0)

    threads = [threading.Thread(target=work, args=(i,))
               for i in range(len(shards))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    results, crashes = {}, {}
    for r, c in outs:
        results.update(r)
        crashes.update(c)
    return results, crashes, time.monotonic() - t0


def _run_shard(targets, t0):
    results = {}
    crashes = {}
    order = [t for t in BY_TARGET if t in set(targets)]
    names = [n for t in order for n in BY_TARGET[t]]
    fd, out_path = tempfile.mkstemp(prefix="tideloop-fuzz-", suffix=".jsonl")
    os.close(fd)
    after = ""
    try:
        for _ in range(MAX_RESTARTS):
            open(out_path, "w").close()
            cmd = [sys.executable, os.path.join(ISOLATED, "fuzz_api.py"),
                   "--out", out_path, "--targets", ",".join(order)]
            if after:
                cmd += ["--after", after]
            remaining = TOTAL_TIMEOUT - (time.monotonic() - t0)
            if remaining <= 0:
                break
            with tempfile.TemporaryFile("w+") as err:
                proc = subprocess.Popen(
                    cmd, cwd=ISOLATED, env=child_env("tideloop"),
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=err, text=True)
                try:
                    rc = proc.wait(remaining)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
                err.seek(0)
                stderr = err.read()
            started = started_kind = None
            done = False
            with open(out_path) as f:
                for line in f:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        break   # a line cut by the crash
                    if "start" in obj:
                        started = obj["start"]
                        started_kind = obj.get("kind")
                    elif "case" in obj:
                        results[obj["case"]] = obj
                        started = None
                    elif obj.get("done"):
                        done = True
            if done and rc == 0:
                break
            if started is None:
                # Died between cases (or at exit): blame the last one.
                last = [n for n in names if n in results]
                started = last[-1] if last else "(before the first case)"
                kind = "exit"
            else:
                hung = "Timeout (" in stderr
                kind = "hang" if hung else "crash"
            crashes[started] = Crash(started, kind, started_kind, rc, stderr)
            if started.startswith("gc after "):
                after = started[len("gc after "):]
            elif started in names:
                after = started
            else:
                break
            if after == names[-1] or done:
                break
    finally:
        os.unlink(out_path)
    return results, crashes


@pytest.fixture(scope="module")
def fuzz_results(request):
    if ASYNCIO_ONLY:
        pytest.skip("the fuzz tests compare with tideloop")
    selected = []
    for item in request.session.items:
        cs = getattr(item, "callspec", None)
        if (item.module is not None and item.module.__name__ == __name__
                and cs is not None and "target" in cs.params):
            selected.append(cs.params["target"])
    targets = [t for t in BY_TARGET if t in set(selected)]
    results, crashes, seconds = run_harness(targets)
    line = "\nfuzz: %d cases of %d targets in %.1f s (%d children at a " \
        "time), %d crash(es)/hang(s)\n" % (
            sum(len(BY_TARGET[t]) for t in targets), len(targets), seconds,
            JOBS, len(crashes))
    capman = request.config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with capman.global_and_fixture_disabled():
            sys.stdout.write(line)
    else:
        sys.stdout.write(line)
    return results, crashes


def _clean(outcome):
    return {k: v for k, v in outcome.items() if k not in IGNORED_KEYS}


def _accepted(name, stock, tl):
    if _early_failure(name, stock, tl):
        return True
    for pattern, pairs in ACCEPTED:
        if pattern not in name:
            continue
        keys = {k for k in set(stock) | set(tl) if stock.get(k) != tl.get(k)}
        if all(pairs.get(k) == (stock.get(k), tl.get(k)) for k in keys):
            return True
    return False


def _diff(stock, tl):
    keys = sorted(set(stock) | set(tl))
    return ", ".join("%s: stock %s, tideloop %s" % (
        k, stock.get(k, "-"), tl.get(k, "-"))
        for k in keys if stock.get(k) != tl.get(k))


@pytest.mark.watchdog(int(TOTAL_TIMEOUT) + 120)
@pytest.mark.parametrize("target", list(BY_TARGET))
def test_fuzz(target, fuzz_results):
    results, crashes = fuzz_results
    problems = []
    for name in BY_TARGET[target]:
        if name in crashes:
            problems.append(crashes[name].describe())
            continue
        for gc_name in ("gc after " + name,):
            if gc_name in crashes:
                problems.append(crashes[gc_name].describe())
        res = results.get(name)
        if res is None:
            problems.append("%s: no result (an earlier crash or the total "
                            "time limit)" % name)
            continue
        tl = _clean(res["tideloop"])
        expect = fuzz_api.expected(name, target)
        if "asyncio" not in res:
            if expect is not None and tl.get("call") not in expect:
                problems.append("%s: tideloop %s, expected %s" % (
                    name, tl.get("call"), " or ".join(expect)))
            continue
        stock = _clean(res["asyncio"])
        if stock != tl and not _accepted(name, stock, tl):
            problems.append("%s: %s" % (name, _diff(stock, tl)))
    if problems:
        shown = problems[:40]
        more = len(problems) - len(shown)
        pytest.fail("%d of %d cases differ from stock asyncio or crashed:\n"
                    "%s%s" % (len(problems), len(BY_TARGET[target]),
                              "\n".join(shown),
                              "\n... and %d more" % more if more else ""),
                    pytrace=False)


def test_every_public_method_is_fuzzed():
    import asyncio
    targets = set(BY_TARGET)
    missing = ["loop." + m for m in fuzz_api.loop_methods()
               if "loop." + m not in targets]
    for cls, prefix in ((asyncio.Handle, "handle."),
                        (asyncio.TimerHandle, "timer.")):
        for name in vars(cls):
            if not name.startswith("_") and prefix + name not in targets:
                missing.append(prefix + name)
    for name in dir(fuzz_api.stock_policy_class()):
        if not name.startswith("_") and "policy." + name not in targets:
            missing.append("policy." + name)
    assert not missing, missing
