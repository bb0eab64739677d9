"""Concurrency against a real server: many threads on one Client, AsyncClient with concurrent calls, a client that
stops reading its answers while another is served, and 1,000 idle connections while a normal client is served."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from rawwire import RawConnection
from r2ec_client import AsyncClient, Client
from r2ec_client import frames as F
from r2ec_client import protocol as P
from r2ec_client import requests as R

THREADS = 16
CALLS_PER_THREAD = 20


def test_many_threads_share_one_client(server):
    expected = None
    failures: list[BaseException] = []
    with Client(server.address, timeout=60) as client:
        expected = client.recommend(history=[50, 172], top_k=5).item_ids
        barrier = threading.Barrier(THREADS)

        def work(index: int) -> None:
            try:
                barrier.wait(30)
                for call in range(CALLS_PER_THREAD):
                    if (index + call) % 2:
                        assert client.health() == "SERVING"
                    else:
                        assert client.recommend(history=["50", 172], top_k=5).item_ids == expected
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "threads still running after 120 s"
        connection = client._connections[0]
    assert not failures, failures[:3]
    assert connection._state.last_stream_id == 1 + THREADS * CALLS_PER_THREAD  # all on one connection


def test_async_client_concurrent_calls(server):
    async def session():
        async with AsyncClient(server.address, timeout=60) as client:
            single = await client.recommend(history=[50], top_k=5)
            results = await asyncio.gather(*(client.recommend(history=[50], top_k=5) for _ in range(50)),
                                           *(client.health() for _ in range(50)))
            items = await client.get_items(["50"])
            info = await client.model_info()
            ping = await client.ping()
            events = [event async for event in client.recommend_stream(history=[50], top_k=5)]
            return single, results, items, info, ping, events

    single, results, items, info, ping, events = asyncio.run(asyncio.wait_for(session(), 120))
    assert all(result.item_ids == single.item_ids for result in results[:50])
    assert results[50:] == ["SERVING"] * 50
    assert items[0].title == "Star Wars" and info.num_items == 1682 and ping < 5
    assert events[-1].item_ids == single.item_ids


def test_async_cancellation_sends_cancel_and_keeps_the_connection(server):
    async def session():
        async with AsyncClient(server.address, timeout=30) as client:
            watch = client.watch_health()
            assert await watch.__anext__() == "SERVING"
            task = asyncio.ensure_future(watch.__anext__())  # waits for a change that will not come
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await client.health()

    assert asyncio.run(asyncio.wait_for(session(), 60)) == "SERVING"


def stall(server, seconds: float) -> tuple[RawConnection, int | None]:
    """A connection that asks for ~30 MB of answers (~70 KB each) and never reads them, then keeps sending 64 KB
    calls for up to `seconds`. Returns it and how many of those were sent before a send blocked (None: never)."""
    big_answer = R.recommend_request(history=[50], top_k=1682, include_seen=True).SerializeToString()
    padding = [("x-padding", "p" * 64_000)]
    stalled = RawConnection(server.host, server.port, timeout=3)
    # A fixed, small receive buffer: the kernel must not soak up the answers on the server's behalf.
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    for stream_id in range(1, 401):
        stalled.send_call(stream_id, P.RECOMMEND.path, big_answer)
    give_up = time.monotonic() + seconds
    stream_id = 401
    while time.monotonic() < give_up:  # the answers above are computed meanwhile
        try:
            stalled.send_call(stream_id, P.HEALTH_CHECK.path, b"", metadata=padding)
        except (socket.timeout, BlockingIOError):
            return stalled, stream_id - 401
        stream_id += 1
        time.sleep(0.005)
    return stalled, None


def test_a_client_that_stops_reading_does_not_stall_others(server, assert_serving):
    stalled, _ = stall(server, seconds=3)
    try:
        with Client(server.address, timeout=30) as other:
            started = time.monotonic()
            for _ in range(20):
                assert other.health() == "SERVING"
                assert len(other.recommend(history=[172], top_k=10).items) == 10
            assert time.monotonic() - started < 30
    finally:
        stalled.close()
    assert_serving()


# docs/protocol.md's 8 MiB high-water rule: a client that never reads must stop being read.
def test_server_stops_reading_a_client_that_does_not_read(server, assert_serving):
    stalled, blocked_after = stall(server, seconds=10)
    stalled.close()
    assert_serving()
    assert blocked_after is not None, "the server kept reading a client that never reads its answers"


def test_thousand_idle_connections_while_a_client_is_served(server, assert_serving):
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection((server.host, server.port), timeout=10))
        with Client(server.address, timeout=30) as client:
            for _ in range(10):
                assert client.health() == "SERVING"
                assert len(client.recommend(history=[50], top_k=5).items) == 5
        # the idle ones were not dropped: one of them can still make a call
        probe = idle[500]
        probe.settimeout(10)
        probe.sendall(P.encode_call(1, P.HEALTH_CHECK.path, b""))
        kinds = []
        for _ in range(2):
            frame = F.read_frame(probe)
            kinds.append(frame.type if frame else None)
        assert kinds == [F.FrameType.MESSAGE, F.FrameType.TRAILER]
    finally:
        for sock in idle:
            sock.close()
    assert_serving()
