"""redis.asyncio (the `redis` package) on tideloop against a real
redis-server started by the test on a free 127.0.0.1 port (and a Unix
socket), with persistence off."""
import asyncio
import os
import signal

import pytest

from integsupport import (
    Server, free_port, need, need_exe, pattern_bytes, run, service_env,
    temp_dir,
)

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(90)]

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def redis_server():
    need("redis.asyncio")
    exe = need_exe("redis-server")
    port = free_port()
    with temp_dir("tideloop-redis-") as top:
        sock = os.path.join(top, "redis.sock")
        argv = [exe, "--port", str(port), "--bind", "127.0.0.1",
                "--unixsocket", sock, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", top,
                "--protected-mode", "yes", "--daemonize", "no",
                "--proto-max-bulk-len", "64mb"]
        with Server(argv, cwd=top, env=service_env(),
                    name="redis-server") as server:
            server.wait_port(port)
            server.wait_unix(sock)
            yield {"host": "127.0.0.1", "port": port, "unix": sock}
            # SIGTERM: redis-server shuts down cleanly (no save configured).
            assert server.stop(signal.SIGTERM) == 0, server.describe()


def _client(rs, **kwargs):
    import redis.asyncio as redis
    return redis.Redis(host=rs["host"], port=rs["port"], socket_timeout=10,
                       socket_connect_timeout=10, **kwargs)


def test_set_get_types(redis_server):
    async def main():
        r = _client(redis_server)
        try:
            assert await r.ping() is True
            await r.flushdb()
            assert await r.set("k", "v\u00e9") is True
            assert await r.get("k") == "v\u00e9".encode()
            assert await r.set("n", 10) and await r.incrby("n", 32) == 42
            assert await r.set("ttl", "x", px=50)
            assert 0 < await r.pttl("ttl") <= 50
            await asyncio.sleep(0.2)
            assert await r.get("ttl") is None
            await r.hset("h", mapping={"a": "1", "b": "2"})
            assert await r.hgetall("h") == {b"a": b"1", b"b": b"2"}
            await r.rpush("l", *range(100))
            assert await r.lrange("l", 0, -1) == [str(i).encode()
                                                  for i in range(100)]
            await r.zadd("z", {"x": 3, "y": 1, "z": 2})
            assert await r.zrange("z", 0, -1, withscores=True) == \
                [(b"y", 1.0), (b"z", 2.0), (b"x", 3.0)]
            assert await r.mget(["k", "missing", "n"]) == \
                ["v\u00e9".encode(), None, b"42"]
            # Blocking command with a timeout, served after a push.
            async def push_later():
                await asyncio.sleep(0.1)
                other = _client(redis_server)
                try:
                    await other.rpush("q", "job")
                finally:
                    await other.aclose()
            r2 = _client(redis_server)
            try:
                pusher = asyncio.ensure_future(push_later())
                assert await r2.blpop(["q"], timeout=5) == (b"q", b"job")
                await pusher
            finally:
                await r2.aclose()
        finally:
            await r.aclose()
    run(main)


def test_large_values(redis_server):
    async def main():
        r = _client(redis_server)
        try:
            for size in (0, 1, 65535, 65536, MIB + 1, 20 * MIB):
                blob = pattern_bytes(size, seed=size % 7)
                await r.set("big", blob)
                assert await r.strlen("big") == size
                got = await r.get("big")
                assert got == blob, size
            assert await r.getrange("big", 65536, 65536 + 9) == \
                pattern_bytes(65536 + 10, seed=(20 * MIB) % 7)[65536:]
        finally:
            await r.aclose()
    run(main)


def test_pipelines_and_concurrency(redis_server):
    async def main():
        r = _client(redis_server, decode_responses=True)
        try:
            async with r.pipeline(transaction=True) as p:
                for i in range(1000):
                    p.set("p:%d" % i, i)
                p.incr("counter")
                p.get("p:999")
                res = await p.execute()
            assert res[:1000] == [True] * 1000
            assert res[1001] == "999"
            async with r.pipeline(transaction=False) as p:
                for i in range(1000):
                    p.get("p:%d" % i)
                assert await p.execute() == [str(i) for i in range(1000)]
            # WATCH/MULTI: an optimistic transaction that must retry once.
            await r.set("w", 1)
            attempts = 0

            async def bump(pipe):
                nonlocal attempts
                attempts += 1
                v = int(await pipe.get("w"))
                if attempts == 1:
                    await r.set("w", 100)  # someone else wins this round
                pipe.multi()
                pipe.set("w", v + 1)
            await r.transaction(bump, "w")
            assert attempts == 2 and await r.get("w") == "101"
        finally:
            await r.aclose()
        # Many concurrent commands over a bounded pool of 20 connections
        # (redis-py's default pool refuses more than max_connections).
        import redis.asyncio as redis
        pool = redis.BlockingConnectionPool(
            host=redis_server["host"], port=redis_server["port"],
            max_connections=20, timeout=10, socket_timeout=10)
        r = redis.Redis(connection_pool=pool)
        try:
            vals = await asyncio.gather(*(r.incr("conc") for _ in range(500)))
            assert sorted(vals) == list(range(1, 501))
            assert len(pool._in_use_connections) == 0
        finally:
            await r.aclose()
            await pool.disconnect()
    run(main)


def test_pubsub(redis_server):
    async def main():
        sub = _client(redis_server)
        pub = _client(redis_server)
        try:
            ps = sub.pubsub()
            await ps.subscribe("chan")
            await ps.psubscribe("pat.*")
            seen = []
            while len(seen) < 2:  # the two subscribe confirmations
                m = await ps.get_message(timeout=5)
                assert m is not None
                seen.append((m["type"], m["channel"]))
            # (redis-py gives the message type as str, the channel as bytes)
            assert sorted(seen) == [("psubscribe", b"pat.*"),
                                    ("subscribe", b"chan")]
            for i in range(100):
                assert await pub.publish("chan" if i % 2 else "pat.x",
                                         "m%d" % i) == 1
            await pub.publish("chan", pattern_bytes(MIB))
            got = []
            async def collect():
                async for m in ps.listen():
                    if m["type"] in ("message", "pmessage"):
                        got.append((m["type"], m["channel"], m["data"]))
                        if len(got) == 101:
                            return
            await asyncio.wait_for(collect(), 10)
            assert got[:100] == [
                ("message", b"chan", b"m%d" % i) if i % 2 else
                ("pmessage", b"pat.x", b"m%d" % i) for i in range(100)]
            assert got[100] == ("message", b"chan", pattern_bytes(MIB))
            await ps.unsubscribe("chan")
            await ps.punsubscribe("pat.*")
            await ps.aclose()
        finally:
            await sub.aclose()
            await pub.aclose()
    run(main)


def test_unix_socket(redis_server):
    import redis.asyncio as redis

    async def main():
        r = redis.Redis(unix_socket_path=redis_server["unix"],
                        socket_timeout=10)
        try:
            await r.set("u", b"\x00\xff" * 1000)
            assert await r.get("u") == b"\x00\xff" * 1000
            info = await r.client_info()
            # flags "U": the server sees a Unix-socket client.
            assert info["flags"] == "U", info
            assert info["laddr"] == redis_server["unix"] + ":0", info
        finally:
            await r.aclose()
    run(main)
