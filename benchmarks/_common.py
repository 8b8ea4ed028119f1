"""Shared pieces of the benchmark rows: the registry, the stopwatch, the
result checks and the loopback helpers.  Imported by _worker.py and by the
row modules (_rows_*.py); benchmarks/ is on sys.path when _worker.py runs."""

import asyncio
import atexit
import os
import random
import shutil
import ssl
import subprocess
import tempfile
import time

perf_counter = time.perf_counter
process_time = time.process_time


def _callgrind_markers():
    """Under benchmarks/callgrind.py (TIDELOOP_BENCH_CALLGRIND_MARKERS=1):
    two libc functions that nothing else calls mark the start and the end
    of the timed part; callgrind zeroes its counters on the first and dumps
    them on the second (--zero-before / --dump-before), so the dump holds
    exactly the timed part.  Called through the os module (a plain C call
    that callgrind sees; ctypes' libffi jumps into the function instead).
    Otherwise no markers."""
    if os.environ.get("TIDELOOP_BENCH_CALLGRIND_MARKERS") != "1":
        return None, None
    hi, lo = os.sched_get_priority_max, os.sched_get_priority_min
    return (lambda: hi(os.SCHED_OTHER)), (lambda: lo(os.SCHED_OTHER))


MARK_START, MARK_STOP = _callgrind_markers()


class Stopwatch:
    """Wall time (perf_counter) and process CPU time (all threads)."""
    __slots__ = ("w0", "c0", "wall", "cpu")

    def start(self):
        if MARK_START is not None:
            MARK_START()
        self.c0 = process_time()
        self.w0 = perf_counter()
        return self

    def stop(self):
        w = perf_counter()
        c = process_time()
        if MARK_STOP is not None:
            MARK_STOP()
        self.wall = w - self.w0
        self.cpu = c - self.c0
        return self

def _default_warmup(n):
    return max(10, n // 20)


# name -> (coroutine function, default n, short description, meta dict)
# meta: unit (what n counts), group ("core" or "net"), warmup (n -> size of
# the throwaway warm-up run, or None if the benchmark warms up by itself),
# rounds (how many times one sample runs the row, each time on a new loop,
# its time being the sum: rows whose single run takes well under 0.1 s on
# the fast loops would otherwise measure mostly the VM's noise)
BENCHES = {}


def bench(name, default_n, desc, unit="operations", group="core",
          warmup=_default_warmup, rounds=1):
    def deco(fn):
        BENCHES[name] = (fn, default_n, desc,
                         {"unit": unit, "group": group, "warmup": warmup,
                          "rounds": rounds})
        return fn
    return deco


class BenchFailure(Exception):
    """The loop produced a wrong result."""


class Unsupported(Exception):
    """The loop (or this machine) cannot run the row: shown as n/a."""


def check(cond, msg):
    if not cond:
        raise BenchFailure(msg)



# ---------------------------------------------------------------------------
# Networking benchmarks.  Loopback only: 127.0.0.1 and Unix sockets in a
# private temp dir -- never any other address.  Client and server both run on
# the loop under test in this one process, so "cpu" is the cost of both ends.
# Each timed part runs under a deadline (NET_DEADLINE) so a lost packet or a
# lost wakeup becomes a clear failure instead of a watchdog kill.
# ---------------------------------------------------------------------------

LOOPBACK = "127.0.0.1"
NET_DEADLINE = 40.0  # s, for the timed part of one network benchmark
KIB = 1024


def _payloads(size, k=4):
    """k distinct, seeded messages of `size` bytes (rotated per round trip,
    so an echo of stale or misplaced data is caught by the byte compare)."""
    rng = random.Random(size * 7919 + k)
    return [rng.randbytes(size) for _ in range(k)]


async def _bounded(aw, what):
    try:
        return await asyncio.wait_for(aw, NET_DEADLINE)
    except asyncio.TimeoutError:
        raise BenchFailure(f"{what} did not finish within {NET_DEADLINE:g}s "
                           f"(lost data or lost wakeup?)") from None



# ---------------------------------------------------------------------------
# TLS material: a self-signed certificate for localhost / 127.0.0.1, made at
# run time in a private temp dir (removed at exit).  Generation is outside
# every timed part.
# ---------------------------------------------------------------------------

TLS_HOSTNAME = "localhost"
_TLS = {}


def _cert_openssl(d):
    exe = shutil.which("openssl")
    if exe is None:
        return None
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    cp = subprocess.run(
        [exe, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={TLS_HOSTNAME}",
         "-addext", f"subjectAltName=DNS:{TLS_HOSTNAME},IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        capture_output=True, text=True, timeout=60)
    if cp.returncode != 0:
        raise RuntimeError(f"openssl req failed: {cp.stderr[-300:]}")
    return cert, key, "openssl"


def _cert_cryptography(d):
    try:
        import datetime
        import ipaddress
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_HOSTNAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(x509.random_serial_number())
           .not_valid_before(now - datetime.timedelta(hours=1))
           .not_valid_after(now + datetime.timedelta(days=2))
           .add_extension(x509.SubjectAlternativeName(
               [x509.DNSName(TLS_HOSTNAME),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
           .sign(key, hashes.SHA256()))
    cert, keyf = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    with open(cert, "wb") as f:
        f.write(crt.public_bytes(serialization.Encoding.PEM))
    with open(keyf, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert, keyf, "cryptography"


def tls_material():
    """{"cert", "key", "made_by"}: paths valid until this process exits."""
    if not _TLS:
        d = tempfile.mkdtemp(prefix="tideloop-bench-tls-")
        atexit.register(shutil.rmtree, d, True)
        got = _cert_openssl(d) or _cert_cryptography(d)
        if got is None:
            raise Unsupported("TLS rows need the openssl command or the "
                              "cryptography package to make a certificate")
        _TLS.update(cert=got[0], key=got[1], made_by=got[2])
    return _TLS


def tls_server_context():
    m = tls_material()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(m["cert"], m["key"])
    return ctx


def tls_client_context():
    """Verifies the server: the self-signed certificate is the only CA."""
    return ssl.create_default_context(cafile=tls_material()["cert"])
