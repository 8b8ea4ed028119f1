"""asyncpg on tideloop against a real PostgreSQL that the test starts:
initdb + postgres from /usr/lib/postgresql/*/bin in a temporary directory,
run as the `postgres` system user (or `nobody`) when the tests run as root
(postgres refuses root), listening on 127.0.0.1 on a free port and on a
Unix socket in that directory."""
import asyncio
import datetime
import decimal
import io
import json
import os
import pwd
import shutil
import signal

import pytest

from integsupport import (
    LOOP_MODULE, Server, free_port, need, need_exe, pattern_bytes, run,
    run_process, service_env, temp_dir,
)

pytestmark = [pytest.mark.integration, pytest.mark.watchdog(120)]

PG_BIN = "/usr/lib/postgresql/*/bin/"
DB_USER = "tideloop"


def _service_user():
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    pytest.fail("running as root and there is neither a `postgres` nor a "
                "`nobody` user to run PostgreSQL as")


@pytest.fixture(scope="module")
def pg():
    """{"host", "port", "socket_dir", "user", "database"} of a fresh cluster,
    removed with its directory at the end of the module."""
    need("asyncpg")
    initdb = need_exe("initdb", [PG_BIN + "initdb"])
    postgres = os.path.join(os.path.dirname(os.path.realpath(initdb)),
                            "postgres")
    if not os.access(postgres, os.X_OK):
        postgres = need_exe("postgres", [PG_BIN + "postgres"])
    user = _service_user()
    with temp_dir("tideloop-pg-") as top:
        if user is not None:
            shutil.chown(top, user=user, group=pwd.getpwnam(user).pw_gid)
        os.chmod(top, 0o700)
        data = os.path.join(top, "data")
        proc = run_process(
            [initdb, "-D", data, "-A", "trust", "-U", DB_USER, "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            cwd=top, env=service_env(), user=user, timeout=120)
        assert proc.returncode == 0, "initdb failed:\n%s\n%s" % (
            proc.stdout, proc.stderr)
        port = free_port()
        argv = [postgres, "-D", data, "-k", top, "-h", "127.0.0.1",
                "-p", str(port), "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=30", "-c", "shared_buffers=32MB"]
        with Server(argv, cwd=top, env=service_env(), user=user,
                    name="postgres") as server:
            server.wait_log("database system is ready to accept connections",
                            timeout=60)
            server.wait_port(port)
            yield {"host": "127.0.0.1", "port": port, "socket_dir": top,
                   "user": DB_USER, "database": "postgres"}
            # SIGINT is PostgreSQL's "fast shutdown".
            assert server.stop(signal.SIGINT, timeout=30) == 0, \
                server.describe()


def _connect(pg, **kwargs):
    import asyncpg
    params = dict(host=pg["host"], port=pg["port"], user=pg["user"],
                  database=pg["database"], timeout=10)
    params.update(kwargs)
    return asyncpg.connect(**params)


async def _json_codecs(conn):
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps,
                                  decoder=json.loads, schema="pg_catalog")


def _rows(n):
    base = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456,
                             tzinfo=datetime.timezone.utc)
    rows = []
    for i in range(n):
        rows.append((
            i,
            "row %d \u00e9\u4e2d\U0001f600 '\"\\" % i,
            pattern_bytes(i % 300, seed=i % 5) if i % 7 else b"\x00" * 3,
            {"i": i, "even": i % 2 == 0, "tags": ["t%d" % j for j in range(i % 4)],
             "nested": {"f": i / 8, "none": None}},
            base + datetime.timedelta(days=i, microseconds=i),
            decimal.Decimal(i) * decimal.Decimal("1234.567891") -
            decimal.Decimal("99999.000001"),
        ))
    return rows


def test_types_bulk_roundtrip(pg):
    rows = _rows(3000)

    async def main():
        conn = await _connect(pg)
        try:
            assert type(conn._loop).__module__ == LOOP_MODULE
            await _json_codecs(conn)
            await conn.execute("""
                DROP TABLE IF EXISTS items;
                CREATE TABLE items (
                    id int PRIMARY KEY, name text NOT NULL, data bytea,
                    doc jsonb, ts timestamptz, amount numeric(30, 6))""")
            await conn.executemany(
                "INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6)", rows)
            got = await conn.fetch("SELECT * FROM items ORDER BY id")
            assert [tuple(r) for r in got] == rows
            assert await conn.fetchval("SELECT count(*) FROM items") == 3000
            total = await conn.fetchval("SELECT sum(amount) FROM items")
            assert total == sum(r[5] for r in rows)
            assert await conn.fetchval(
                "SELECT doc->'nested'->>'f' FROM items WHERE id = 12") == "1.5"
            # Server-side cursor in a transaction, in chunks.
            seen = []
            async with conn.transaction():
                async for rec in conn.cursor(
                        "SELECT id, data FROM items ORDER BY id", prefetch=333):
                    seen.append((rec["id"], rec["data"]))
            assert seen == [(r[0], r[2]) for r in rows]
        finally:
            await conn.close()
    run(main)


def test_transactions_and_rollback(pg):
    asyncpg = need("asyncpg")

    async def main():
        conn = await _connect(pg)
        try:
            await conn.execute("DROP TABLE IF EXISTS acc; "
                               "CREATE TABLE acc (id int PRIMARY KEY, v int)")
            async with conn.transaction():
                await conn.execute("INSERT INTO acc VALUES (1, 10), (2, 20)")
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    await conn.execute("UPDATE acc SET v = v + 1")
                    1 / 0
            assert await conn.fetch("SELECT id, v FROM acc ORDER BY id") == \
                [(1, 10), (2, 20)]
            # A savepoint rolled back inside a committed transaction.
            async with conn.transaction():
                await conn.execute("UPDATE acc SET v = 11 WHERE id = 1")
                with pytest.raises(asyncpg.UniqueViolationError):
                    async with conn.transaction():
                        await conn.execute("UPDATE acc SET v = 0")
                        await conn.execute("INSERT INTO acc VALUES (2, 0)")
            assert await conn.fetch("SELECT id, v FROM acc ORDER BY id") == \
                [(1, 11), (2, 20)]
            # Manual transaction object.
            tr = conn.transaction(isolation="serializable")
            await tr.start()
            await conn.execute("DELETE FROM acc")
            await tr.rollback()
            assert await conn.fetchval("SELECT count(*) FROM acc") == 2
            # A query timeout cancels the statement; the connection lives on.
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval("SELECT pg_sleep(10)", timeout=0.3)
            assert await conn.fetchval("SELECT 41 + 1") == 42
        finally:
            await conn.close()
    run(main)


def test_prepared_statements(pg):
    async def main():
        conn = await _connect(pg)
        try:
            stmt = await conn.prepare(
                "SELECT $1::int * 2 AS twice, $2::text || '!' AS shout, "
                "$3::numeric + 1 AS inc")
            assert [a.name for a in stmt.get_attributes()] == \
                ["twice", "shout", "inc"]
            assert [t.name for t in stmt.get_parameters()] == \
                ["int4", "text", "numeric"]
            for i in range(500):
                r = await stmt.fetchrow(i, "n%d" % i, decimal.Decimal("0.5"))
                assert tuple(r) == (2 * i, "n%d!" % i, decimal.Decimal("1.5"))
            gen = await conn.prepare("SELECT generate_series(1, $1::int)")
            assert [r[0] for r in await gen.fetch(1000)] == list(range(1, 1001))
            assert await gen.fetchval(3) == 1
        finally:
            await conn.close()
    run(main)


def test_copy(pg):
    async def main():
        conn = await _connect(pg)
        try:
            await conn.execute("DROP TABLE IF EXISTS cp; CREATE TABLE cp "
                               "(id int, name text, blob bytea, ts timestamptz)")
            rows = [(r[0], r[1], r[2], r[4]) for r in _rows(20000)]
            res = await conn.copy_records_to_table(
                "cp", records=rows, columns=["id", "name", "blob", "ts"])
            assert res == "COPY 20000"
            assert await conn.fetchval("SELECT count(*) FROM cp") == 20000
            out = io.BytesIO()
            res = await conn.copy_from_query(
                "SELECT id, name FROM cp WHERE id < 1000 ORDER BY id",
                output=out, format="csv")
            assert res == "COPY 1000"
            lines = out.getvalue().decode().splitlines()
            assert len(lines) == 1000 and lines[0].startswith("0,")
            # COPY FROM a file-like object, then read it back.
            src = io.BytesIO(b"".join(b"%d\tcopied %d\n" % (i, i)
                                      for i in range(100000, 105000)))
            res = await conn.copy_to_table("cp", source=src,
                                           columns=["id", "name"])
            assert res == "COPY 5000"
            assert await conn.fetchval(
                "SELECT string_agg(name, ',' ORDER BY id) FROM cp "
                "WHERE id BETWEEN 100000 AND 100002") == \
                "copied 100000,copied 100001,copied 100002"
            assert await conn.fetchval("SELECT count(*) FROM cp") == 25000
        finally:
            await conn.close()
    run(main)


def test_listen_notify(pg):
    async def main():
        listener = await _connect(pg)
        sender = await _connect(pg)
        got = []
        done = asyncio.Event()

        def on_notify(conn, pid, channel, payload):
            assert type(asyncio.get_running_loop()).__module__ == LOOP_MODULE
            got.append((channel, payload))
            if payload == "last":
                done.set()
        try:
            await listener.add_listener("tide_chan", on_notify)
            await listener.add_listener("other_chan", on_notify)
            for i in range(200):
                await sender.execute("SELECT pg_notify($1, $2)",
                                     "tide_chan" if i % 3 else "other_chan",
                                     "msg %d" % i)
            async with sender.transaction():  # delivered at commit, in order
                await sender.execute("NOTIFY tide_chan, 'in tx'")
                await sender.execute("NOTIFY tide_chan, 'last'")
            await asyncio.wait_for(done.wait(), 10)
            assert got == [("tide_chan" if i % 3 else "other_chan", "msg %d" % i)
                           for i in range(200)] + \
                [("tide_chan", "in tx"), ("tide_chan", "last")]
            await listener.remove_listener("tide_chan", on_notify)
        finally:
            await listener.close()
            await sender.close()
    run(main)


def test_pool_concurrency_and_unix_socket(pg):
    asyncpg = need("asyncpg")

    async def main():
        pool = await asyncpg.create_pool(
            host=pg["host"], port=pg["port"], user=pg["user"],
            database=pg["database"], min_size=2, max_size=5, timeout=10)
        try:
            # 5 queries that hold their connection at once: 5 backends.
            async def hold(i):
                async with pool.acquire() as c:
                    return await c.fetchrow(
                        "SELECT pg_backend_pid() AS pid, $1::int AS i, "
                        "pg_sleep(0.3)::text AS s", i)
            rows = await asyncio.gather(*(hold(i) for i in range(5)))
            assert [r["i"] for r in rows] == list(range(5))
            assert len({r["pid"] for r in rows}) == 5
            # Many more queries than connections.
            vals = await asyncio.gather(*(
                pool.fetchval("SELECT $1::int * $1::int", i)
                for i in range(300)))
            assert vals == [i * i for i in range(300)]
            assert pool.get_size() <= 5
        finally:
            await asyncio.wait_for(pool.close(), 10)

        conn = await asyncpg.connect(host=pg["socket_dir"], port=pg["port"],
                                     user=pg["user"], database=pg["database"],
                                     timeout=10)
        try:
            # Over the Unix socket the server sees no client address.
            assert await conn.fetchval("SELECT inet_client_addr()") is None
            assert await conn.fetchval("SELECT repeat('z', 1000000)") == \
                "z" * 1000000
        finally:
            await conn.close()
    run(main)
