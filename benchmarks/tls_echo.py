"""TLS echo with the Protocol API, one loop per child process: a client and
an echo server on the same loop over 127.0.0.1, ping-pong of SIZE-byte
messages (the next one is sent when the echo is complete).

    python benchmarks/tls_echo.py [--reps 5] [--sizes 1024:10000,102400:1000]
                                  [--kinds asyncio,uvloop,tideloop-py,tideloop]

Kinds: ``asyncio`` (stock selector loop), ``uvloop``, ``tideloop`` (its SSL
protocol in C) and ``tideloop-py`` (tideloop with TIDELOOP_SSL=python:
asyncio's Python SSLProtocol over tideloop's transports).  Each repetition
runs every kind once, in a rotated order (interleaved), each in a fresh
child.  Reported: ratios of medians against uvloop (higher is faster), of
wall time and of the child's CPU time (user + system: the client and the
server run in that one process, so it is the whole cost, and it is far less
disturbed by other load on the machine than wall time).  Needs the
``openssl`` program for a throwaway certificate.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

CHILD = r'''
import asyncio, ssl, sys, time
kind, size, rounds, cert, key = sys.argv[1:6]
size, rounds = int(size), int(rounds)
if kind.startswith("tideloop"):
    import tideloop
    new_loop = tideloop.new_event_loop
elif kind == "uvloop":
    import uvloop
    new_loop = uvloop.new_event_loop
else:
    new_loop = asyncio.new_event_loop
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.load_verify_locations(cert)


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


class Client(asyncio.Protocol):
    def __init__(self):
        self.got = 0
        self.done = None

    def data_received(self, data):
        self.got += len(data)
        if self.got >= size and not self.done.done():
            self.done.set_result(None)


async def main(loop):
    server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=sctx)
    port = server.sockets[0].getsockname()[1]
    tr, cl = await loop.create_connection(
        Client, "127.0.0.1", port, ssl=cctx, server_hostname="localhost")
    msg = b"x" * size

    async def one():
        cl.got = 0
        cl.done = loop.create_future()
        tr.write(msg)
        await cl.done

    for _ in range(max(rounds // 10, 5)):
        await one()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        await one()
    result = (time.perf_counter() - t0, time.process_time() - c0)
    tr.close()
    server.close()
    await server.wait_closed()
    return result


loop = new_loop()
try:
    print(*loop.run_until_complete(main(loop)))
finally:
    loop.close()
'''


def make_cert(d):
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("tls_echo: needs the openssl program")
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True,
                   capture_output=True)
    return cert, key


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kinds", default="asyncio,uvloop,tideloop-py,tideloop")
    ap.add_argument("--sizes", default="1024:10000,102400:1000",
                    help="SIZE:ROUNDS,... (message bytes, round trips)")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory() as d:
        cert, key = make_cert(d)
        for spec in args.sizes.split(","):
            size, rounds = map(int, spec.split(":"))
            wall = {k: [] for k in kinds}
            cpu = {k: [] for k in kinds}
            for rep in range(args.reps):
                order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
                for k in order:
                    env = dict(os.environ)
                    env.pop("TIDELOOP_SSL", None)
                    if k == "tideloop-py":
                        env["TIDELOOP_SSL"] = "python"
                    out = subprocess.run(
                        [args.python, "-c", CHILD, k, str(size), str(rounds),
                         cert, key], env=env, capture_output=True, text=True,
                        timeout=900)
                    if out.returncode != 0:
                        raise SystemExit("%s failed:\n%s" % (k, out.stderr))
                    w, c = map(float, out.stdout.split())
                    wall[k].append(w)
                    cpu[k].append(c)
            for label, table in (("cpu", cpu), ("wall", wall)):
                med = {k: statistics.median(v) for k, v in table.items()}
                ref = med["uvloop"] if "uvloop" in med else med[kinds[0]]
                print("%7d B x %d, %s: %s" % (size, rounds, label, ", ".join(
                    "%s %.2fx" % (k, ref / med[k]) for k in kinds)))
                print("           spread (max-min)/median: %s" % ", ".join(
                    "%s %.0f%%" % (k, 100 * (max(v) - min(v))
                                   / statistics.median(v))
                    for k, v in table.items()))
    print("ratios of medians over %d interleaved runs against %s; higher "
          "is faster" % (args.reps,
                         "uvloop" if "uvloop" in kinds else kinds[0]))


if __name__ == "__main__":
    main()
