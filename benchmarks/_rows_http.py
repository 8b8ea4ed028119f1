"""HTTP rows (group "net"): a minimal Protocol-based HTTP/1.1 server on
the loop under test, loaded by wrk (or the pure-Python client)."""

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import threading

from _common import BenchFailure, LOOPBACK, Stopwatch, _bounded, bench, check


# --- HTTP server under wrk ----------------------------------------------------

HTTP_BODY = b"Hello, World!\n"
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\n"
                 b"Server: bench\r\n"
                 b"Content-Type: text/plain\r\n"
                 b"Content-Length: " + str(len(HTTP_BODY)).encode() + b"\r\n"
                 b"Connection: keep-alive\r\n"
                 b"\r\n" + HTTP_BODY)
HTTP_BAD = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n")
WRK_THREADS = 1
WRK_CONNECTIONS = 50
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
    '"lat_p50_us": %d, "lat_p99_us": %d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class _HttpServer(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: every `GET ...` request head
    (no body) gets the same fixed 200 response; anything else a 400 + close.
    Handles several (pipelined) requests per chunk."""

    __slots__ = ("stats", "tr", "buf")

    def __init__(self, stats):
        self.stats = stats
        self.buf = b""

    def connection_made(self, tr):
        self.tr = tr
        self.stats["conns"] += 1

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        start = 0
        count = 0
        while end >= 0:
            if not buf.startswith(b"GET ", start):
                self.stats["bad"] += 1
                self.tr.write(HTTP_BAD)
                self.tr.close()
                self.buf = b""
                return
            count += 1
            start = end + 4
            end = buf.find(b"\r\n\r\n", start)
        self.buf = buf[start:]
        self.stats["requests"] += count
        self.tr.write(HTTP_RESPONSE if count == 1 else HTTP_RESPONSE * count)

    def connection_lost(self, exc):
        if exc is not None and not isinstance(exc, ConnectionResetError):
            self.stats["errors"].append(f"server connection_lost({exc!r})")


def _http_pinning():
    """Opt-in (TIDELOOP_BENCH_HTTP_PIN=1): pin this process (the server) to
    the last usable CPU and return (server_cpus, wrk_cpus) -- wrk gets all the
    others -- else None.  Off by default: on the shared 2-core box pinning
    made req/s noisier, because the server can't flee another tenant."""
    if os.environ.get("TIDELOOP_BENCH_HTTP_PIN", "0") != "1":
        return None
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return None
        srv, rest = {cpus[-1]}, set(cpus[:-1])
        os.sched_setaffinity(0, srv)
        return srv, rest
    except OSError:
        return None


async def _http_client_check(port, requests, conns=2):
    """Plain asyncio-streams client: keep-alive GETs, each response compared
    byte for byte.  Warms up the server path and proves it answers right."""
    req = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)

    async def one():
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        try:
            for _ in range(requests // conns):
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                clen = 0
                for h in head.split(b"\r\n"):
                    if h.lower().startswith(b"content-length:"):
                        clen = int(h.split(b":", 1)[1])
                got = head + await reader.readexactly(clen)
                if got != HTTP_RESPONSE:
                    raise BenchFailure(f"wrong HTTP response: {got[:80]!r}")
        finally:
            writer.close()
            await writer.wait_closed()
    await asyncio.gather(*[one() for _ in range(conns)])
    return (requests // conns) * conns


def _check_wrk(cp, served, stats):
    """Parse wrk's WRKJSON line (from WRK_LUA) and check it; returns the dict."""
    rep = None
    for line in cp.stdout.splitlines():
        if line.startswith("WRKJSON "):
            rep = json.loads(line[8:])
    check(cp.returncode == 0 and rep is not None,
          f"wrk failed rc={cp.returncode}: {cp.stdout[-300:]} {cp.stderr[-300:]}")
    errs = {k: rep[k] for k in ("connect", "read", "write", "status", "timeout") if rep[k]}
    check(not errs, f"wrk reported errors {errs} (of {rep['requests']} requests)")
    reqs = rep["requests"]
    check(reqs > 0, "wrk completed 0 requests")
    size = len(HTTP_RESPONSE)
    check(reqs * size <= rep["bytes"] <= (reqs + WRK_CONNECTIONS) * size,
          f"wrk read {rep['bytes']} bytes for {reqs} responses of {size} bytes")
    check(reqs <= served <= reqs + WRK_CONNECTIONS,
          f"server answered {served} requests, wrk completed {reqs}")
    check(stats["bad"] == 0, f"{stats['bad']} malformed requests")
    check(not stats["errors"], f"server errors: {stats['errors'][:3]}")
    return rep


@bench("http_wrk", 2000,
       f"minimal Protocol-based HTTP/1.1 keep-alive server (fixed "
       f"{len(HTTP_RESPONSE)}-byte response) on the loop under test, loaded by "
       f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} for n ms (whole seconds, >= 1 s) "
       f"on 127.0.0.1. Time = 1/(req/s), so speedup = loop req/s / asyncio req/s; "
       f"cpu = server-process CPU per request. Checks: wrk zero errors (connect/"
       f"read/write/status/timeout), requests > 0, bytes = requests x response "
       f"size, server count matches, responses verified before and after",
       unit="ms of load", group="net", warmup=None)
async def b_http_wrk(loop, n):
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchFailure("wrk not found on PATH (apt-get install -y wrk)")
    seconds = max(1, int(round(n / 1000)))
    stats = {"conns": 0, "requests": 0, "bad": 0, "errors": []}
    server = await loop.create_server(lambda: _HttpServer(stats), LOOPBACK, 0,
                                      backlog=1024)
    port = server.sockets[0].getsockname()[1]
    tmpdir = tempfile.mkdtemp(prefix="tideloop-bench-")
    script = os.path.join(tmpdir, "report.lua")
    with open(script, "w") as f:
        f.write(WRK_LUA)
    pin = None
    try:
        # warm-up + correctness (not timed): 400 verified keep-alive requests
        warm = await _bounded(_http_client_check(port, 400), "HTTP warm-up client")
        base = stats["requests"]
        cmd = [wrk, f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s",
               "--timeout", "5s", "-s", script, f"http://{LOOPBACK}:{port}/"]
        fut = loop.create_future()
        pin = _http_pinning()

        def run_wrk():
            # a plain thread blocked in subprocess.run: no CPU in this process
            try:
                cp = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=seconds + 30,
                    preexec_fn=(lambda: os.sched_setaffinity(0, pin[1])) if pin else None)
                loop.call_soon_threadsafe(fut.set_result, cp)
            except BaseException as e:
                loop.call_soon_threadsafe(fut.set_exception, e)

        th = threading.Thread(target=run_wrk, daemon=True)
        sw = Stopwatch().start()
        th.start()
        cp = await _bounded(fut, "wrk")
        sw.stop()
        th.join()
        served = stats["requests"] - base
        rep = _check_wrk(cp, served, stats)
        # still answers correctly after the load (not timed)
        await _bounded(_http_client_check(port, 20), "HTTP check client")
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(tmpdir, ignore_errors=True)
    reqs = rep["requests"]
    dur = rep["duration_us"] / 1e6
    out = Stopwatch()
    out.wall = dur / reqs          # seconds per request = 1 / (req/s)
    out.cpu = sw.cpu / served      # server-process CPU seconds per request
    return out, {"rps": round(reqs / dur, 1), "requests": reqs, "served": served,
                 "wrk_seconds": round(dur, 3), "server_cpu_s": round(sw.cpu, 3),
                 "server_cpu_util": round(sw.cpu / sw.wall, 3),
                 "cpu_us_per_req": round(1e6 * sw.cpu / served, 2),
                 "lat_p50_ms": rep["lat_p50_us"] / 1000,
                 "lat_p99_ms": rep["lat_p99_us"] / 1000,
                 "pinned": [sorted(s) for s in pin] if pin else None,
                 "warmup_requests": warm,
                 "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds}s"}
