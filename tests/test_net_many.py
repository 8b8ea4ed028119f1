"""Many connections at once: 1,000 clients connected to one server at the
same time, each exchanging its own data.  Compared with stock asyncio."""
import asyncio
import hashlib
import os

import pytest

from support import run_until
from netsupport import (HOST4, NET_MARKS, WHERE_PARAMS, KiB, close_server,
                        digest, payload, temp_dir, wait)
from netsupport import _net_collect_garbage  # noqa: F401 (autouse)

pytestmark = NET_MARKS

N = 1000


class CountingEcho(asyncio.Protocol):
    stats = None

    def connection_made(self, transport):
        self.transport = transport
        s = self.stats
        s["made"] += 1
        s["open"] += 1
        s["max_open"] = max(s["max_open"], s["open"])

    def data_received(self, data):
        self.stats["bytes"] += len(data)
        self.transport.write(data)

    def connection_lost(self, exc):
        self.stats["open"] -= 1
        self.stats["lost"] += 1
        if exc is not None:
            self.stats["errors"].append(type(exc).__name__)
        if self.stats["lost"] == N and not self.stats["all_lost"].done():
            self.stats["all_lost"].set_result(None)


@pytest.mark.slow
@pytest.mark.watchdog(150)
@pytest.mark.parametrize("where", [w for w in WHERE_PARAMS
                                   if w.values[0] != "tcp6"])
def test_thousand_concurrent_connections(compare, where):
    def scenario(loop):
        async def main(d):
            stats = {"made": 0, "open": 0, "max_open": 0, "lost": 0,
                     "bytes": 0, "errors": [],
                     "all_lost": loop.create_future()}

            class Proto(CountingEcho):
                pass
            Proto.stats = stats

            if where == "unix":
                path = os.path.join(d, "many")
                server = await wait(loop.create_unix_server(
                    Proto, path, backlog=N * 2))

                def connect():
                    return asyncio.open_unix_connection(path)
            else:
                server = await wait(loop.create_server(
                    Proto, HOST4, 0, backlog=N * 2))
                port = server.sockets[0].getsockname()[1]

                def connect():
                    return asyncio.open_connection(HOST4, port)

            all_connected = loop.create_future()
            connected = [0]

            async def client(i):
                reader, writer = await connect()
                connected[0] += 1
                if connected[0] == N:
                    all_connected.set_result(None)
                await all_connected
                data = payload(KiB, i)
                writer.write(data)
                got = await reader.readexactly(len(data))
                writer.close()
                await writer.wait_closed()
                return digest(got) == digest(data), hashlib.sha256(
                    got).digest()

            # connect in waves of 100 so that the listen backlog never
            # overflows (a dropped SYN costs a 1 s retransmit)
            tasks = []
            for i in range(N):
                tasks.append(loop.create_task(client(i)))
                if i % 100 == 99:
                    await asyncio.sleep(0.01)
            results = await wait(asyncio.gather(*tasks,
                                                return_exceptions=True), 50)
            await wait(stats["all_lost"], 30)
            errors = sorted({type(r).__name__ for r in results
                             if isinstance(r, BaseException)})
            oks = [r for r in results if not isinstance(r, BaseException)]
            combined = hashlib.sha256(b"".join(h for _, h in oks))
            await close_server(server)
            return [("client errors", errors),
                    ("all echoed intact", sum(1 for ok, _ in oks if ok)),
                    ("combined digest", combined.hexdigest()[:16]),
                    ("server made/lost", stats["made"], stats["lost"]),
                    ("max open at once", stats["max_open"]),
                    ("server bytes", stats["bytes"]),
                    ("server errors", sorted(set(stats["errors"])))]

        with temp_dir() as d:
            return run_until(loop, main(d), 60)

    trace = compare(scenario)
    assert trace[1] == ("all echoed intact", N)
    assert trace[4] == ("max open at once", N)
