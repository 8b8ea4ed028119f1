#!/usr/bin/env python3
"""Pure-Python HTTP/1.1 load client: the fallback for the HTTP rows when wrk
is not installed (or with run.py --http-client python).

    python benchmarks/_httpclient.py --port P --seconds S [--conns C]
        [--mode keepalive|close] [--cafile CERT]

Runs in its own process on stock asyncio (never on the loop under test), so
it loads the server like wrk does: C concurrent connections for S seconds
against 127.0.0.1:P only.  keepalive: each connection sends GET after GET;
close: each request opens a new connection, sends `Connection: close`,
reads the response and closes.  Every response is compared byte for byte with the expected
one.  Prints one line `WRKJSON {...}` with the keys of wrk's report
(_rows_http.WRK_LUA): requests, duration_us, bytes, connect/read/write/
status/timeout errors, lat_p50_us, lat_p99_us.  Bounded: it stops starting
requests after S seconds and gives up on one after REQUEST_TIMEOUT.
"""

import argparse
import asyncio
import json
import ssl
import sys
import time

LOOPBACK = "127.0.0.1"
REQUEST_TIMEOUT = 5.0

HTTP_BODY = b"Hello, World!\n"


def http_response(keepalive):
    return (b"HTTP/1.1 200 OK\r\n"
            b"Server: bench\r\n"
            b"Content-Type: text/plain\r\n"
            b"Content-Length: " + str(len(HTTP_BODY)).encode() + b"\r\n"
            b"Connection: " + (b"keep-alive" if keepalive else b"close") + b"\r\n"
            b"\r\n" + HTTP_BODY)


HTTP_RESPONSE = http_response(True)
HTTP_RESPONSE_CLOSE = http_response(False)


def http_request(port, keepalive):
    return (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
            + (b"" if keepalive else b"Connection: close\r\n") + b"\r\n")


class Report:
    def __init__(self):
        self.requests = 0
        self.bytes = 0
        self.errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
        self.lat = []

    def error(self, kind):
        self.errors[kind] += 1

    def done(self, size, t0):
        self.requests += 1
        self.bytes += size
        self.lat.append(time.perf_counter() - t0)


async def _connect(port, ctx):
    kw = {"ssl": ctx, "server_hostname": "localhost"} if ctx else {}
    return await asyncio.open_connection(LOOPBACK, port, **kw)


async def keepalive_conn(port, ctx, deadline, rep):
    req = http_request(port, True)
    try:
        reader, writer = await asyncio.wait_for(_connect(port, ctx), REQUEST_TIMEOUT)
    except asyncio.TimeoutError:
        rep.error("timeout")
        return
    except OSError:
        rep.error("connect")
        return
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                writer.write(req)
            except OSError:
                rep.error("write")
                return
            try:
                got = await asyncio.wait_for(reader.readexactly(len(HTTP_RESPONSE)),
                                             REQUEST_TIMEOUT)
            except asyncio.TimeoutError:
                rep.error("timeout")
                return
            except (OSError, asyncio.IncompleteReadError):
                rep.error("read")
                return
            if got != HTTP_RESPONSE:
                rep.error("status")
                return
            rep.done(len(got), t0)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


async def close_conns(port, ctx, deadline, rep):
    req = http_request(port, False)
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            reader, writer = await asyncio.wait_for(_connect(port, ctx), REQUEST_TIMEOUT)
        except asyncio.TimeoutError:
            rep.error("timeout")
            continue
        except OSError:
            rep.error("connect")
            await asyncio.sleep(0.01)
            continue
        try:
            writer.write(req)
            # like wrk: the response ends at Content-Length; then the client
            # closes (it does not wait for the server's EOF)
            got = await asyncio.wait_for(reader.readexactly(len(HTTP_RESPONSE_CLOSE)),
                                         REQUEST_TIMEOUT)
            if got != HTTP_RESPONSE_CLOSE:
                rep.error("status")
            else:
                rep.done(len(got), t0)
        except asyncio.TimeoutError:
            rep.error("timeout")
        except (OSError, asyncio.IncompleteReadError):
            rep.error("read")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


def percentile(xs, q):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q / 100.0 * len(xs)))]


async def main_async(a):
    ctx = ssl.create_default_context(cafile=a.cafile) if a.cafile else None
    rep = Report()
    t0 = time.perf_counter()
    deadline = t0 + a.seconds
    one = keepalive_conn if a.mode == "keepalive" else close_conns
    await asyncio.gather(*[one(a.port, ctx, deadline, rep) for _ in range(a.conns)])
    dur = time.perf_counter() - t0
    out = {"requests": rep.requests, "duration_us": int(dur * 1e6), "bytes": rep.bytes}
    out.update(rep.errors)
    out["lat_p50_us"] = int(1e6 * percentile(rep.lat, 50))
    out["lat_p99_us"] = int(1e6 * percentile(rep.lat, 99))
    print("WRKJSON " + json.dumps(out), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--mode", choices=("keepalive", "close"), default="keepalive")
    p.add_argument("--cafile", help="TLS: verify the server against this certificate")
    a = p.parse_args()
    if not (0 < a.seconds <= 120 and 0 < a.conns <= 1000):
        p.error("--seconds must be in (0, 120] and --conns in (0, 1000]")
    asyncio.run(main_async(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
