"""HTTP rows (group "net"): a minimal Protocol-based HTTP/1.1 server on
the loop under test, loaded by wrk (or the pure-Python client)."""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from _common import (TLS_HOSTNAME, BenchFailure, LOOPBACK, Stopwatch, _bounded, bench, check,
                     tls_client_context, tls_material, tls_server_context)
from _httpclient import HTTP_RESPONSE, HTTP_RESPONSE_CLOSE, http_request

HERE = os.path.dirname(os.path.abspath(__file__))
HTTP_CLIENT_ENV = "TIDELOOP_BENCH_HTTP_CLIENT"  # auto (default), wrk or python
CLOSE_WAIT = 2.0  # s the check client waits for the server's EOF (once)
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
    """Minimal HTTP/1.1 server: every `GET ...` request head (no body) gets
    the same fixed 200 response; anything else a 400 + close.  keep-alive:
    handles several (pipelined) requests per chunk.  close: answers the
    first request with `Connection: close` and closes the connection, the
    way a server does for a `Connection: close` request."""

    __slots__ = ("stats", "tr", "buf", "keepalive")

    def __init__(self, stats, keepalive=True):
        self.stats = stats
        self.buf = b""
        self.keepalive = keepalive

    def connection_made(self, tr):
        self.tr = tr
        self.stats["conns"] += 1

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        if not self.keepalive:
            self.buf = b""
            if not buf.startswith(b"GET "):
                self.stats["bad"] += 1
                self.tr.write(HTTP_BAD)
            else:
                self.stats["requests"] += 1
                self.tr.write(HTTP_RESPONSE_CLOSE)
            self.tr.close()
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


async def _http_client_check(port, requests, keepalive=True, ctx=None, conns=2):
    """Plain asyncio-streams client on the loop under test: GETs (keep-alive,
    or one connection per request), each response compared byte for byte.
    Warms up the server path and proves it answers right.  Returns (requests
    made, whether the server closed `Connection: close` connections itself).
    Like wrk, it reads a response by its Content-Length and does not need
    the server's EOF; it waits up to CLOSE_WAIT for it, once: a server that
    never closes is reported (a warning), not waited for each time."""
    req = http_request(port, keepalive)
    expect = HTTP_RESPONSE if keepalive else HTTP_RESPONSE_CLOSE
    kw = {"ssl": ctx, "server_hostname": TLS_HOSTNAME} if ctx else {}
    closes = [None]  # None: not known yet; True/False after the first wait

    async def get(reader, writer):
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        clen = 0
        for h in head.split(b"\r\n"):
            if h.lower().startswith(b"content-length:"):
                clen = int(h.split(b":", 1)[1])
        got = head + await reader.readexactly(clen)
        if got != expect:
            raise BenchFailure(f"wrong HTTP response: {got[:80]!r}")
        if keepalive or closes[0] is False:
            return
        try:
            more = await asyncio.wait_for(reader.read(), CLOSE_WAIT)
        except asyncio.TimeoutError:
            closes[0] = False
            return
        if more:
            raise BenchFailure(f"server sent {more[:40]!r} after a Connection: close response")
        closes[0] = True

    async def one():
        reader = writer = None
        try:
            for _ in range(requests // conns):
                if writer is None or not keepalive:
                    if writer is not None:
                        writer.close()
                        await writer.wait_closed()
                    reader, writer = await asyncio.open_connection(LOOPBACK, port, **kw)
                await get(reader, writer)
        finally:
            if writer is not None:
                writer.close()
                await writer.wait_closed()
    await asyncio.gather(*[one() for _ in range(conns)])
    return (requests // conns) * conns, closes[0]


def _http_client_cmd(port, seconds, keepalive, tls, tmpdir):
    """(argv, name) of the load client: wrk if present (unless
    TIDELOOP_BENCH_HTTP_CLIENT=python), else _httpclient.py in a separate
    process on stock asyncio."""
    want = os.environ.get(HTTP_CLIENT_ENV, "auto")
    wrk = shutil.which("wrk") if want in ("auto", "wrk") else None
    if want == "wrk" and wrk is None:
        raise BenchFailure("wrk not found on PATH (apt-get install -y wrk)")
    if wrk is not None:
        script = os.path.join(tmpdir, "report.lua")
        with open(script, "w") as f:
            f.write(WRK_LUA)
        cmd = [wrk, f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s",
               "--timeout", "5s", "-s", script]
        if not keepalive:
            cmd += ["-H", "Connection: close"]
        cmd.append(f"{'https' if tls else 'http'}://{LOOPBACK}:{port}/")
        return cmd, f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{seconds}s"
    cmd = [sys.executable, os.path.join(HERE, "_httpclient.py"), "--port", str(port),
           "--seconds", str(seconds), "--conns", str(WRK_CONNECTIONS),
           "--mode", "keepalive" if keepalive else "close"]
    if tls:
        cmd += ["--cafile", tls_material()["cert"]]
    return cmd, f"_httpclient.py -c{WRK_CONNECTIONS} -d{seconds}s (stock asyncio)"


def _check_load(cp, served, conns, stats, keepalive):
    """Parse the client's WRKJSON line (wrk's WRK_LUA hook, or _httpclient.py)
    and check it against the server's counts; returns the dict."""
    rep = None
    for line in cp.stdout.splitlines():
        if line.startswith("WRKJSON "):
            rep = json.loads(line[8:])
    check(cp.returncode == 0 and rep is not None,
          f"load client failed rc={cp.returncode}: {cp.stdout[-300:]} {cp.stderr[-300:]}")
    errs = {k: rep[k] for k in ("connect", "read", "write", "status", "timeout") if rep[k]}
    check(not errs, f"load client reported errors {errs} (of {rep['requests']} requests)")
    reqs = rep["requests"]
    check(reqs > 0, "load client completed 0 requests")
    size = len(HTTP_RESPONSE if keepalive else HTTP_RESPONSE_CLOSE)
    check(reqs * size <= rep["bytes"] <= (reqs + WRK_CONNECTIONS) * size,
          f"client read {rep['bytes']} bytes for {reqs} responses of {size} bytes")
    check(reqs <= served <= reqs + WRK_CONNECTIONS,
          f"server answered {served} requests, the client completed {reqs}")
    if not keepalive:
        # one request per connection; connections opened as the load stopped
        # may have sent nothing
        check(served <= conns <= served + 2 * WRK_CONNECTIONS,
              f"server accepted {conns} connections for {served} requests")
    check(stats["bad"] == 0, f"{stats['bad']} malformed requests")
    check(not stats["errors"], f"server errors: {stats['errors'][:3]}")
    return rep


async def _http_load(loop, n, keepalive=True, tls=False):
    """Serve on 127.0.0.1 from the loop under test while the load client
    (another process) runs for n ms; see the rows' descriptions."""
    seconds = max(1, int(round(n / 1000)))
    sctx = tls_server_context() if tls else None
    cctx = tls_client_context() if tls else None
    stats = {"conns": 0, "requests": 0, "bad": 0, "errors": []}
    server = await loop.create_server(lambda: _HttpServer(stats, keepalive), LOOPBACK, 0,
                                      backlog=1024, ssl=sctx)
    port = server.sockets[0].getsockname()[1]
    tmpdir = tempfile.mkdtemp(prefix="tideloop-bench-")
    pin = None
    try:
        cmd, client = _http_client_cmd(port, seconds, keepalive, tls, tmpdir)
        # warm-up + correctness (not timed): 400 verified requests
        warm, closes = await _bounded(_http_client_check(port, 400, keepalive, cctx),
                                      "HTTP warm-up client")
        base, cbase = stats["requests"], stats["conns"]
        fut = loop.create_future()
        pin = _http_pinning()

        def run_client():
            # a plain thread blocked in subprocess.run: no CPU in this process
            try:
                cp = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=seconds + 30,
                    preexec_fn=(lambda: os.sched_setaffinity(0, pin[1])) if pin else None)
                loop.call_soon_threadsafe(fut.set_result, cp)
            except BaseException as e:
                loop.call_soon_threadsafe(fut.set_exception, e)

        th = threading.Thread(target=run_client, daemon=True)
        sw = Stopwatch().start()
        th.start()
        cp = await _bounded(fut, "HTTP load client")
        sw.stop()
        th.join()
        served = stats["requests"] - base
        rep = _check_load(cp, served, stats["conns"] - cbase, stats, keepalive)
        # still answers correctly after the load (not timed)
        await _bounded(_http_client_check(port, 20, keepalive, cctx), "HTTP check client")
    finally:
        server.close()
        await server.wait_closed()
        shutil.rmtree(tmpdir, ignore_errors=True)
    reqs = rep["requests"]
    dur = rep["duration_us"] / 1e6
    out = Stopwatch()
    out.wall = dur / reqs          # seconds per request = 1 / (req/s)
    out.cpu = sw.cpu / served      # server-process CPU seconds per request
    info = {"rps": round(reqs / dur, 1), "requests": reqs, "served": served,
                 "load_seconds": round(dur, 3), "server_cpu_s": round(sw.cpu, 3),
                 "server_cpu_util": round(sw.cpu / sw.wall, 3),
                 "cpu_us_per_req": round(1e6 * sw.cpu / served, 2),
                 "lat_p50_ms": rep["lat_p50_us"] / 1000,
                 "lat_p99_ms": rep["lat_p99_us"] / 1000,
                 "pinned": [sorted(s) for s in pin] if pin else None,
                 "warmup_requests": warm, "client": client}
    if closes is False:
        info["warning"] = (f"transport.close() after the response did not close the "
                           f"connection within {CLOSE_WAIT:g} s (no EOF at the client); "
                           f"the clients closed instead")
    return out, info


_HTTP_DESC = (
    "on the loop under test, loaded for n ms (whole seconds, >= 1 s) by wrk -t{t} -c{c} "
    "(or, without wrk, benchmarks/_httpclient.py: {c} connections on stock asyncio "
    "in another process) on 127.0.0.1. Time = 1/(req/s), so speedup = loop req/s / "
    "asyncio req/s; cpu = server-process CPU per request. Checks: zero client errors "
    "(connect/read/write/status/timeout), requests > 0, bytes = requests x response "
    "size, server counts match, responses verified before and after"
).format(t=WRK_THREADS, c=WRK_CONNECTIONS)


@bench("http_keepalive", 2000,
       f"minimal Protocol-based HTTP/1.1 keep-alive server (fixed "
       f"{len(HTTP_RESPONSE)}-byte response; this row was http_wrk) " + _HTTP_DESC,
       unit="ms of load", group="net", warmup=None)
async def b_http_keepalive(loop, n):
    return await _http_load(loop, n, keepalive=True)


@bench("http_close", 2000,
       f"the same server, `Connection: close`: every request on a new connection "
       f"(accept, one request, {len(HTTP_RESPONSE_CLOSE)}-byte response, server "
       f"closes; measures the accept rate and connection teardown), " + _HTTP_DESC
       + "; accepted connections = requests",
       unit="ms of load", group="net", warmup=None)
async def b_http_close(loop, n):
    return await _http_load(loop, n, keepalive=False)


@bench("http_tls", 2000,
       "the keep-alive server over TLS (create_server(ssl=...), self-signed EC P-256 "
       "certificate made at run time) " + _HTTP_DESC,
       unit="ms of load", group="net", warmup=None)
async def b_http_tls(loop, n):
    return await _http_load(loop, n, keepalive=True, tls=True)


# The client of accept_close: a plain blocking-socket Python process (not
# traced by callgrind.py), so only the server's side is measured.  Waves of
# `wave` connections: connect them all (the listener sees a burst, as under
# wrk -c50), send one request on each, read each to the server's EOF.
# TIDELOOP_BENCH_ACCEPT_WAVE=1 (opt-in) makes the waves one connection long:
# the server then handles each connection alone, as a timed run on a quiet
# machine mostly does (the server keeps up), while under callgrind the
# slowed server sees each wave of 50 at once and amortizes its
# per-event and per-iteration costs over 50 connections.
ACCEPT_WAVE_ENV = "TIDELOOP_BENCH_ACCEPT_WAVE"
_ACCEPT_CLIENT = r"""
import socket, sys
port, n, wave = map(int, sys.argv[1:4])
req = sys.argv[4].encode("latin-1").decode("unicode_escape").encode("latin-1")
sys.stdin.readline()
done = 0
total = 0
while done < n:
    k = min(wave, n - done)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(k)]
    for s in socks:
        s.sendall(req)
    for s in socks:
        while True:
            b = s.recv(65536)
            if not b:
                break
            total += len(b)
        s.close()
    done += k
print(done, total, flush=True)
"""


@bench("accept_close", 2000,
       "n connections from a blocking client in another process, in waves of 50: "
       "connect, one `Connection: close` GET, read to EOF; the server (the "
       "http_close server) accepts, answers and closes. Counts what http_close "
       "measures (accept + transport set-up + teardown) by connections, not by "
       "time, so callgrind.py can count instructions per connection",
       unit="connections", group="net", warmup=lambda n: 50, rounds=4)
async def b_accept_close(loop, n):
    stats = {"conns": 0, "requests": 0, "bad": 0, "errors": []}
    srv = await loop.create_server(lambda: _HttpServer(stats, keepalive=False),
                                   LOOPBACK, 0, backlog=128)
    port = srv.sockets[0].getsockname()[1]
    req = http_request(port, False).decode("latin-1").encode("unicode_escape").decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _ACCEPT_CLIENT, str(port), str(n),
        str(int(os.environ.get(ACCEPT_WAVE_ENV, "50"))), req,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        sw = Stopwatch().start()
        proc.stdin.write(b"go\n")
        line = await _bounded(proc.stdout.readline(), "accept_close client")
        elapsed = sw.stop()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        srv.close()
        await srv.wait_closed()
    done, total = map(int, line.split())
    check(done == n, f"client made {done} connections, expected {n}")
    check(total == n * len(HTTP_RESPONSE_CLOSE), f"client read {total} bytes")
    check(stats["conns"] == n and stats["requests"] == n and not stats["bad"],
          f"server counts {stats}")
    check(not stats["errors"], f"server errors {stats['errors'][:3]}")
    return elapsed, {"connections": n}


# The client of keepalive_reqs / tls_keepalive_reqs: a plain blocking-socket
# Python process like _ACCEPT_CLIENT (only the server is measured).  It opens
# `conns` keep-alive connections (TLS-wrapped if a CA file is given) before
# the timed part, then in rounds sends one request on each connection and
# reads each response (`size` bytes, compared with the expected one).
_KEEPALIVE_CLIENT = r"""
import socket, ssl, sys
port, n, conns = map(int, sys.argv[1:4])
req, resp = (a.encode("latin-1").decode("unicode_escape").encode("latin-1")
             for a in sys.argv[4:6])
cafile, hostname = sys.argv[6:8]
ctx = ssl.create_default_context(cafile=cafile) if cafile else None
socks = []
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    socks.append(ctx.wrap_socket(s, server_hostname=hostname) if ctx else s)
print("ready", flush=True)
sys.stdin.readline()
done = total = wrong = 0
while done < n:
    k = min(conns, n - done)
    for s in socks[:k]:
        s.sendall(req)
    for s in socks[:k]:
        got = b""
        while len(got) < len(resp):
            b = s.recv(len(resp) - len(got))
            if not b:
                sys.exit("server closed a keep-alive connection")
            got += b
        total += len(got)
        wrong += got != resp
    done += k
print(done, total, wrong, flush=True)
for s in socks:
    s.close()
"""


def _escaped(data):
    return data.decode("latin-1").encode("unicode_escape").decode()


async def _keepalive_reqs(loop, n, tls):
    """n keep-alive requests from _KEEPALIVE_CLIENT over 50 connections (set
    up before the timed part) to the http_keepalive / http_tls server."""
    conns = min(WRK_CONNECTIONS, n)
    stats = {"conns": 0, "requests": 0, "bad": 0, "errors": []}
    srv = await loop.create_server(lambda: _HttpServer(stats, keepalive=True), LOOPBACK, 0,
                                   backlog=128, ssl=tls_server_context() if tls else None)
    port = srv.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KEEPALIVE_CLIENT, str(port), str(n), str(conns),
        _escaped(http_request(port, True)), _escaped(HTTP_RESPONSE),
        tls_material()["cert"] if tls else "", TLS_HOSTNAME,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = b""
    try:
        ready = await _bounded(proc.stdout.readline(), "keep-alive client connecting")
        check(ready == b"ready\n", f"client did not connect: {ready!r}")
        sw = Stopwatch().start()
        proc.stdin.write(b"go\n")
        line = await _bounded(proc.stdout.readline(), "keep-alive client")
        elapsed = sw.stop()
    finally:
        if proc.returncode is None and not line:
            proc.kill()
        await proc.wait()
        srv.close()
        await srv.wait_closed()
    check(line, "keep-alive client failed")
    done, total, wrong = map(int, line.split())
    check(done == n and wrong == 0, f"client made {done} requests ({wrong} wrong), expected {n}")
    check(total == n * len(HTTP_RESPONSE), f"client read {total} bytes")
    check(stats["conns"] == conns and stats["requests"] == n and not stats["bad"],
          f"server counts {stats}")
    check(not stats["errors"], f"server errors {stats['errors'][:3]}")
    return elapsed, {"requests": n, "connections": conns}


_KEEPALIVE_DESC = (
    "n keep-alive requests from a blocking client in another process over {c} "
    "connections (opened before the timed part): in rounds, one GET on each "
    "connection, then each {size}-byte response read and compared; the server "
    "is the {row} server. Counts what {row} measures by requests, not by time, "
    "so callgrind.py can count instructions per request")


@bench("keepalive_reqs", 100000,
       _KEEPALIVE_DESC.format(c=WRK_CONNECTIONS, size=len(HTTP_RESPONSE), row="http_keepalive"),
       unit="requests", group="net", warmup=lambda n: 200)
async def b_keepalive_reqs(loop, n):
    return await _keepalive_reqs(loop, n, tls=False)


@bench("tls_keepalive_reqs", 50000,
       _KEEPALIVE_DESC.format(c=WRK_CONNECTIONS, size=len(HTTP_RESPONSE), row="http_tls")
       + " (the client wraps its sockets with ssl; the handshakes are outside the timed part)",
       unit="requests", group="net", warmup=lambda n: 200)
async def b_tls_keepalive_reqs(loop, n):
    return await _keepalive_reqs(loop, n, tls=True)
