"""Helpers for the networking tests (tests/test_net_*.py).

Networking scenarios follow the conventions of conftest.py/support.py: a
scenario drives a fresh loop and returns a trace, which ``compare`` checks
against stock asyncio's.  Values that change from run to run (ports, temp
paths, file descriptors) are scrubbed out of traces with ``Scrub``; data is
recorded as (length, digest) so that a lost, duplicated or reordered byte
changes the trace.  Everything runs on loopback (127.0.0.1, ::1) and on Unix
sockets in a temporary directory; every wait is bounded.
"""
import asyncio
import atexit
import contextlib
import functools
import hashlib
import inspect
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest

from support import PY

HOST4 = "127.0.0.1"
HOST6 = "::1"

# Every wait inside a scenario is bounded by this (seconds), on top of the
# bound of the whole scenario (support.run_until).
WAIT = 10.0


# --------------------------------------------------------------------------
# Capabilities of the machine
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def has_ipv6():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind((HOST6, 0))
            s.listen(1)
            port = s.getsockname()[1]
            with socket.create_connection((HOST6, port), timeout=2):
                pass
    except OSError:
        return False
    return True


requires_ipv6 = pytest.mark.skipif(
    not has_ipv6(), reason="no IPv6 loopback (::1) on this machine")

requires_unix = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="no AF_UNIX sockets")


@functools.lru_cache(maxsize=None)
def has_reuse_port():
    if not hasattr(socket, "SO_REUSEPORT"):
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    except OSError:
        return False
    return True


requires_reuse_port = pytest.mark.skipif(
    not has_reuse_port(), reason="SO_REUSEPORT not supported")


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

KiB = 1024
MiB = 1024 * 1024


@functools.lru_cache(maxsize=16)
def payload(n, seed=0):
    """n pseudo-random bytes (deterministic for (n, seed))."""
    rnd = random.Random("%d-%d" % (n, seed))
    if hasattr(rnd, "randbytes"):
        return rnd.randbytes(n)
    return bytes(rnd.getrandbits(8) for _ in range(n))


def digest(data):
    """(length, sha256 prefix): what a trace records of a byte string."""
    return (len(data), hashlib.sha256(bytes(data)).hexdigest()[:16])


# --------------------------------------------------------------------------
# Scrubbing run-dependent values out of traces
# --------------------------------------------------------------------------

class Scrub:
    """Replaces run-dependent values (ports, paths, fds, reprs) by labels in
    strings, tuples, lists and dicts.  Longer values are replaced first;
    numbers only as whole words."""

    def __init__(self):
        self._subs = []

    def add(self, value, label):
        if value is None or value == "" or value == b"":
            return self
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        self._subs.append((str(value), label))
        self._subs.sort(key=lambda s: -len(s[0]))
        return self

    def port(self, port, label="PORT"):
        return self.add(int(port), label)

    def __call__(self, obj):
        if isinstance(obj, str):
            # file descriptors in socket and transport reprs
            obj = re.sub(r"\bfd=\d+", "fd=FD", obj)
            for value, label in self._subs:
                if value.isdigit():
                    obj = re.sub(r"(?<!\d)%s(?!\d)" % value, label, obj)
                else:
                    obj = obj.replace(value, label)
            return obj
        if isinstance(obj, bytes):
            return obj
        if isinstance(obj, tuple):
            return tuple(self(x) for x in obj)
        if isinstance(obj, list):
            return [self(x) for x in obj]
        if isinstance(obj, dict):
            return {self(k): self(v) for k, v in obj.items()}
        if isinstance(obj, int) and not isinstance(obj, bool):
            for value, label in self._subs:
                if value == str(obj):
                    return label
        return obj


def exc_ev(exc, scrub=None):
    """(type name, message, errno) of an exception, scrubbed."""
    if exc is None:
        return None
    ev = (type(exc).__name__, str(exc), getattr(exc, "errno", None))
    return scrub(ev) if scrub is not None else ev


async def outcome(aw, scrub=None, timeout=WAIT):
    """Await aw (bounded); ("ok", result) or ("raised", exc_ev).  aw may
    also be a function returning the awaitable (errors raised by the call
    itself, e.g. a bad keyword argument, are then caught too)."""
    try:
        if callable(aw) and not inspect.isawaitable(aw):
            aw = aw()
        return ("ok", await asyncio.wait_for(aw, timeout))
    except asyncio.TimeoutError:
        return ("timeout",)
    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001
        return ("raised",) + exc_ev(exc, scrub)


def call_ev(fn, *args, scrub=None, **kwargs):
    """Call fn; ("ok", result) or ("raised", exc_ev)."""
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001
        return ("raised",) + exc_ev(exc, scrub)


def wait(aw, timeout=WAIT):
    return asyncio.wait_for(aw, timeout)


# --------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------

def closed_port(host=HOST4, type=socket.SOCK_STREAM):
    """A port on host that was just bound and released: nobody listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, type) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening_socket(host=HOST4, backlog=128):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    s.listen(backlog)
    s.setblocking(False)
    return s


@contextlib.contextmanager
def temp_dir():
    """A short temporary directory (Unix socket paths are limited to ~100
    bytes), removed afterwards."""
    path = tempfile.mkdtemp(prefix="tlnet-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def nb_socketpair(family=None, type=socket.SOCK_STREAM):
    a, b = (socket.socketpair(type=type) if family is None
            else socket.socketpair(family, type))
    a.setblocking(False)
    b.setblocking(False)
    return a, b


# --------------------------------------------------------------------------
# TLS: one self-signed certificate per test process
# --------------------------------------------------------------------------

_TLS = {}


def _make_cert_cryptography(certfile, keyfile):
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address(HOST4)),
                x509.IPAddress(ipaddress.ip_address(HOST6))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    with open(keyfile, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _make_cert_openssl(openssl, certfile, keyfile):
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", keyfile, "-out", certfile, "-days", "2",
         "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:%s,IP:%s"
         % (HOST4, HOST6)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        timeout=60)


def tls_files():
    """(certfile, keyfile) of a self-signed certificate for localhost,
    127.0.0.1 and ::1, made once per process with the ``cryptography``
    package if installed, else with ``openssl req``.  Skips the test when
    neither is available."""
    if "files" in _TLS:
        return _TLS["files"]
    if "skip" in _TLS:
        pytest.skip(_TLS["skip"])
    d = tempfile.mkdtemp(prefix="tlnet-tls-")
    atexit.register(shutil.rmtree, d, True)
    certfile = os.path.join(d, "cert.pem")
    keyfile = os.path.join(d, "key.pem")
    import importlib.util
    have_crypto = importlib.util.find_spec("cryptography") is not None
    openssl = shutil.which("openssl")
    try:
        if have_crypto:
            _make_cert_cryptography(certfile, keyfile)
        elif openssl:
            _make_cert_openssl(openssl, certfile, keyfile)
        else:
            _TLS["skip"] = ("TLS tests need a self-signed certificate: "
                            "neither the 'cryptography' package nor the "
                            "'openssl' command is available")
            pytest.skip(_TLS["skip"])
    except subprocess.CalledProcessError as exc:
        _TLS["skip"] = ("could not make a self-signed certificate with "
                        "openssl: %s" % exc.stderr.decode(errors="replace"))
        pytest.skip(_TLS["skip"])
    _TLS["files"] = (certfile, keyfile)
    return _TLS["files"]


def server_ssl():
    certfile, keyfile = tls_files()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def client_ssl():
    certfile, _ = tls_files()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certfile)
    return ctx


# --------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------

class Recorder(asyncio.Protocol):
    """Records its callbacks; consecutive data_received calls are one
    ("data",) event, the bytes go to self.data.  Futures: made, lost, eof;
    wait_for_bytes(n)."""

    eof_result = None

    def __init__(self, loop, scrub=None, name=""):
        self.loop = loop
        self.scrub = scrub
        self.name = name
        self.events = []
        self.data = bytearray()
        self.transport = None
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.eof = loop.create_future()
        self.lost_count = 0
        self._want = None

    def _ev(self, ev):
        self.events.append(ev)

    def connection_made(self, transport):
        self.transport = transport
        self._ev(("made",))
        if not self.made.done():
            self.made.set_result(transport)

    def data_received(self, data):
        if not isinstance(data, bytes):
            self._ev(("data type", type(data).__name__))
        if not self.events or self.events[-1] != ("data",):
            self._ev(("data",))
        self.data += data
        self._check_want()

    def eof_received(self):
        self._ev(("eof",))
        if not self.eof.done():
            self.eof.set_result(None)
        return self.eof_result

    def connection_lost(self, exc):
        self.lost_count += 1
        self._ev(("lost", exc_ev(exc, self.scrub)))
        if not self.lost.done():
            self.lost.set_result(exc)
        if self._want is not None and not self._want[1].done():
            self._want[1].set_result(None)

    def pause_writing(self):
        self._ev(("pause_writing",))

    def resume_writing(self):
        self._ev(("resume_writing",))

    def _check_want(self):
        if self._want is not None and len(self.data) >= self._want[0]:
            if not self._want[1].done():
                self._want[1].set_result(None)

    async def wait_for_bytes(self, n, timeout=WAIT):
        self._want = (n, self.loop.create_future())
        self._check_want()
        if self.lost.done() and not self._want[1].done():
            self._want[1].set_result(None)
        await asyncio.wait_for(self._want[1], timeout)
        return len(self.data)


class Echo(asyncio.Protocol):
    """Echoes everything; closes on EOF (eof_received returns None)."""

    def __init__(self, registry=None):
        self.registry = registry
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        if self.registry is not None:
            self.registry.append(self)

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return None


async def echo_exchange(loop, connect, n, *, use_eof=True, seed=0):
    """Connect with ``connect(protocol_factory)`` (a coroutine returning
    (transport, protocol)), send n bytes to an echo server, read them back
    and close.  Returns the client's trace."""
    data = payload(n, seed)
    tr, pr = await wait(connect(lambda: Recorder(loop)))
    tr.write(data)
    if use_eof:
        tr.write_eof()
    await pr.wait_for_bytes(n)
    if use_eof:
        await wait(pr.eof)
    tr.close()
    await wait(pr.lost)
    return [("size", n), ("events", pr.events), ("got", digest(pr.data)),
            ("equal", bytes(pr.data) == data), ("lost once", pr.lost_count)]


def skip_before(version, what):
    return pytest.mark.skipif(
        PY < version, reason="%s needs Python %s+" % (
            what, ".".join(map(str, version))))


def transport_extra(transport, keys, scrub=None):
    """(key, present, type name) for each key of get_extra_info."""
    out = []
    sentinel = object()
    for key in keys:
        value = transport.get_extra_info(key, sentinel)
        if value is sentinel:
            out.append((key, "absent"))
        else:
            out.append((key, type(value).__name__))
    return out


def is_standard_fd_in_use_message(msg, fd, transport):
    return msg == ("File descriptor %r is used by transport %r"
                   % (fd, transport))




# --------------------------------------------------------------------------
# Servers on TCP (IPv4/IPv6) and Unix sockets
# --------------------------------------------------------------------------

WHERE = ("tcp4", "tcp6", "unix")


def where_param(where):
    """pytest.param for a server location, skipped where unavailable."""
    marks = []
    if where == "tcp6":
        marks.append(requires_ipv6)
    if where == "unix":
        marks.append(requires_unix)
    return pytest.param(where, marks=marks, id=where)


WHERE_PARAMS = [where_param(w) for w in WHERE]


class Endpoint:
    """What serve() returns: the server, connect(factory, **kw) making a
    client connection to it, a Scrub for its address, the address."""

    def __init__(self, server, connect, scrub, address, where):
        self.server = server
        self.connect = connect
        self.scrub = scrub
        self.address = address
        self.where = where


async def serve(loop, where, factory, d=None, *, tls=False, **kw):
    """Start a server for ``factory`` on where (tcp4/tcp6/unix; Unix
    sockets go in directory d).  tls=True serves TLS with the test
    certificate and makes connect() use it."""
    ckw = {}
    if tls:
        kw.setdefault("ssl", server_ssl())
        ckw = {"ssl": client_ssl(), "server_hostname": "localhost"}
    if where == "unix":
        path = os.path.join(d, "sock")
        server = await asyncio.wait_for(
            loop.create_unix_server(factory, path, **kw), WAIT)

        def connect(f, **extra):
            return loop.create_unix_connection(f, path, **dict(ckw, **extra))
        scrub = Scrub().add(d, "DIR")
        address = path
    else:
        host = HOST4 if where == "tcp4" else HOST6
        server = await asyncio.wait_for(
            loop.create_server(factory, host, 0, **kw), WAIT)
        port = server.sockets[0].getsockname()[1]

        def connect(f, **extra):
            return loop.create_connection(f, host, port,
                                          **dict(ckw, **extra))
        scrub = Scrub().port(port)
        address = (host, port)
    return Endpoint(server, connect, scrub, address, where)


async def close_server(server):
    server.close()
    await asyncio.wait_for(server.wait_closed(), WAIT)


# An exception raised where nobody can catch it (a finalizer, a callback
# of a closed transport...) fails the test instead of being a warning:
# each test module sets ``pytestmark = NET_MARKS``.
NET_MARKS = [pytest.mark.filterwarnings(
    "error::pytest.PytestUnraisableExceptionWarning")]


@contextlib.contextmanager
def swallow_unraisable():
    """Collect (and drop) exceptions raised where nobody can catch them,
    e.g. by stock asyncio's pipe transports whose __init__ failed and whose
    __del__ then fails in __repr__ (a stock bug not imposed on tideloop).
    Yields the list of UnraisableHookArgs-like (type name, object repr
    prefix) pairs."""
    import gc
    import sys
    seen = []
    old = sys.unraisablehook

    def hook(args):
        seen.append((type(args.exc_value).__name__,
                     getattr(args.object, "__qualname__", "")))

    sys.unraisablehook = hook
    try:
        yield seen
        gc.collect()
    finally:
        sys.unraisablehook = old


async def server_made(registry, n=1, timeout=WAIT):
    """Wait until a server's protocol factory made n protocols and their
    connection_made ran (a client's connect can complete before the server
    accepted: on Unix sockets the order varies between Python versions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(registry) < n:
        if loop.time() > deadline:
            raise asyncio.TimeoutError("server made %d of %d protocols"
                                       % (len(registry), n))
        await asyncio.sleep(0.001)
    for p in registry[:n]:
        await asyncio.wait_for(p.made, max(0.001, deadline - loop.time()))
    return registry[0]


@pytest.fixture(autouse=True)
def _net_collect_garbage(request):
    """Collect garbage after each tideloop networking test, so that a
    transport or server left behind by its loop is finalized (and any
    exception of its finalizer reported, see NET_MARKS) in the test that
    made it.  (Stock-only tests skip it: a full collection costs ~20 ms.)"""
    yield
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("kind") == "tideloop":
        import gc
        gc.collect()
