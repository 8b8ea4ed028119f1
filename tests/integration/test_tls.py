"""TLS through the libraries on tideloop: uvicorn serving HTTPS and WSS in a
child process (checked with httpx, aiohttp and websockets clients on
tideloop), and an in-process websockets WSS server on tideloop.  The
certificates come from a throwaway CA made with the openssl program."""
import asyncio
import os
import signal
import ssl
import sys

import pytest

from integsupport import (
    LOOP_MODULE, Server, free_port, need, need_exe, pattern_bytes, run,
    run_process, service_env, temp_dir,
)

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(120)]

_EXT = """\
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@pytest.fixture(scope="module")
def certs():
    openssl = need_exe("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    with temp_dir("tideloop-tls-") as d:
        def sh(*args):
            p = run_process([openssl, *args], cwd=d, env=service_env(),
                            timeout=60)
            assert p.returncode == 0, p.stderr
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write(_EXT)
        sh("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
           "-days", "2", "-subj", "/CN=tideloop test CA",
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        sh("req", *ec, "-keyout", "key.pem", "-out", "leaf.csr",
           "-subj", "/CN=localhost")
        sh("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem",
           "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem",
           "-days", "2", "-extfile", "ext.cnf")
        yield {name: os.path.join(d, name + ".pem")
               for name in ("ca", "cert", "key")}


def _client_context(certs):
    ctx = ssl.create_default_context(cafile=certs["ca"])
    return ctx


def _server_context(certs):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    return ctx


def test_uvicorn_https_and_wss(certs):
    need("uvicorn")
    httpx = need("httpx")
    aiohttp = need("aiohttp")
    need("websockets")
    from websockets.asyncio.client import connect

    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "asgi_app:app",
            "--loop", "tideloop:new_event_loop", "--host", "127.0.0.1",
            "--port", port, "--ssl-keyfile", certs["key"],
            "--ssl-certfile", certs["cert"], "--ws", "websockets-sansio",
            "--no-access-log"]
    body = pattern_bytes(3 * 1024 * 1024 + 5, seed=4)
    with Server(argv, name="uvicorn https") as server:
        server.wait_port(port)
        base = "https://127.0.0.1:%d" % port

        async def main():
            ctx = _client_context(certs)
            async with httpx.AsyncClient(verify=ctx, timeout=20) as c:
                r = await c.get(base + "/loop")
                assert r.json()["loop_module"] == "tideloop"
                r = await c.post(base + "/echo", content=body)
                assert r.content == body
            async with aiohttp.ClientSession() as s:
                async with s.post(base + "/echo", data=body[:100000],
                                  ssl=ctx) as r:
                    assert await r.read() == body[:100000]
                async with s.get(base + "/stream?n=30&size=20000",
                                 ssl=ctx) as r:
                    assert await r.read() == b"".join(
                        bytes([i]) * 20000 for i in range(30))
            async with connect("wss://127.0.0.1:%d/ws" % port, ssl=ctx,
                               open_timeout=10, max_size=None) as ws:
                assert await ws.recv() == "loop:tideloop"
                await ws.send(body)
                assert await ws.recv() == body
            # An unverified certificate is refused.
            async with httpx.AsyncClient(timeout=20) as c:
                with pytest.raises(httpx.ConnectError) as info:
                    await c.get(base + "/loop")
                assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        run(main)
        rc = server.stop(signal.SIGTERM)
        assert rc in (0, -signal.SIGTERM), server.describe()


def test_websockets_wss_in_process(certs):
    need("websockets")
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def main():
        async def echo(ws):
            await ws.send(type(asyncio.get_running_loop()).__module__)
            async for m in ws:
                await ws.send(m)

        async with serve(echo, "127.0.0.1", 0, ssl=_server_context(certs),
                         max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect("wss://localhost:%d" % port,
                               ssl=_client_context(certs), max_size=None,
                               open_timeout=10) as ws:
                assert await ws.recv() == LOOP_MODULE
                assert ws.transport.get_extra_info("ssl_object").version() \
                    in ("TLSv1.2", "TLSv1.3")
                for size in (1, 16384, 16385, 2_000_000):
                    blob = pattern_bytes(size, seed=size % 5)
                    await ws.send(blob)
                    assert await ws.recv() == blob
    run(main)
