"""Several targets and retries (the client side of issue 15's replicas): the I/O-free rules of _retry, then both
clients against scripted peers that drop connections, refuse them, or answer UNAVAILABLE: idempotent calls (and
RecordEvents whose every event has an idempotency key) are sent again, other calls never are once the server may
have acted on them; calls spread round-robin over the targets; a dead target is skipped. No server binary needed;
the real two-server drain is in test_replicas.py."""
from __future__ import annotations

import asyncio
import random
import socket
import threading
import time

import pytest

from conftest import wait_until
from scripted import SERVING, WAIT, ScriptedServer
from r2ec_client import AsyncClient, Client, RetryPolicy, RpcError, StatusCode
from r2ec_client._proto import events_pb2, wire_pb2
from r2ec_client._retry import Attempts, TargetPool
from r2ec_client import frames as F

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)


def unavailable(not_processed: bool = False) -> RpcError:
    error = RpcError(StatusCode.UNAVAILABLE, "gone")
    error.not_processed = not_processed
    return error


# ---- the rules ---------------------------------------------------------------------------------------------------

def test_pool_round_robin_skips_a_refusing_target_until_its_backoff_passes():
    pool = TargetPool(3, RetryPolicy(connect_backoff=1.0, max_connect_backoff=4.0))
    assert [pool.pick(0.0) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    pool.refused(1, now=10.0)
    assert [pool.pick(10.5) for _ in range(4)] == [0, 2, 0, 2]
    assert 1 in [pool.pick(11.0) for _ in range(3)]  # back after 1 s
    pool.refused(1, now=20.0)
    pool.refused(1, now=20.0)  # a second refusal in a row doubles the wait
    assert 1 not in [pool.pick(21.5) for _ in range(4)]
    pool.connected(1)
    assert 1 in [pool.pick(21.5) for _ in range(3)]


def test_pool_avoids_targets_that_failed_the_call_unless_none_is_left():
    pool = TargetPool(2, RetryPolicy())
    assert [pool.pick(0.0, avoid={0}) for _ in range(3)] == [1, 1, 1]
    assert pool.pick(0.0, avoid={0, 1}) in (0, 1)
    pool.refused(0, now=0.0)
    pool.refused(1, now=0.0)
    assert pool.pick(0.1) in (0, 1)  # every target down: try one anyway (fail fast, never wait)


def test_attempts_decide_by_status_processing_and_idempotency():
    rng = random.Random(1)
    policy = RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=0.25, multiplier=2)
    reads = Attempts(policy, idempotent=True, deadline=None)
    assert reads.delay_after(RpcError(StatusCode.NOT_FOUND), 0, 0.0, rng) is None  # final status
    reads = Attempts(policy, idempotent=True, deadline=None)
    assert reads.delay_after(unavailable(not_processed=True), 0, 0.0, rng) == 0.0  # transparent: at once
    delays = [reads.delay_after(unavailable(), 0, 0.0, rng) for _ in range(2)]
    assert 0 <= delays[0] <= 0.1 and 0 <= delays[1] <= 0.2  # full jitter under a doubling ceiling
    assert reads.delay_after(unavailable(), 0, 0.0, rng) is None  # the 4th send was the last
    writes = Attempts(policy, idempotent=False, deadline=None)
    assert writes.delay_after(unavailable(), 0, 0.0, rng) is None  # may have been applied: never again
    writes = Attempts(policy, idempotent=False, deadline=None)
    assert writes.delay_after(unavailable(not_processed=True), 0, 0.0, rng) == 0.0  # never processed: safe
    late = Attempts(policy, idempotent=True, deadline=1.0)
    assert late.delay_after(unavailable(not_processed=True), 0, 1.0, rng) is None  # the deadline is spent
    assert Attempts(RetryPolicy(max_attempts=1), True, None).delay_after(unavailable(True), 0, 0.0, rng) is None


# ---- scripted peers ----------------------------------------------------------------------------------------------

def dropping_peer(drops: int, answer: bytes, seen: list):
    """The first `drops` connections read one call and close without answering; later ones answer every call."""
    def script(peer, index):
        while True:
            frame = peer.frame()
            if frame is None:
                return
            if frame.type != F.FrameType.CALL:  # a CANCEL of a stream the client left
                continue
            message = peer.frame()
            seen.append((index, wire_pb2.CallHeader.FromString(frame.payload).method, message.payload))
            if index < drops:
                return  # the connection closes with the call unanswered
            peer.answer(frame.stream_id, answer)
    return script


RECORDED = events_pb2.RecordEventsResponse(recorded=1).SerializeToString()


@pytest.mark.parametrize("keyed", [True, False])
def test_record_events_is_sent_again_only_when_every_event_is_keyed(keyed):
    seen: list = []
    server = ScriptedServer(dropping_peer(1, RECORDED, seen))
    events = [("u1", 50, 0, "", 0, "k-1" if keyed else ""), ("u1", 51, 0, "", 0, "k-2")]
    with Client(server.address, timeout=WAIT, retry=FAST) as client:
        if keyed:
            assert client.record_events(events).recorded == 1
        else:
            with pytest.raises(RpcError) as failure:
                client.record_events(events)
            assert failure.value.code() is StatusCode.UNAVAILABLE and not failure.value.not_processed
    server.check()
    assert [index for index, _, _ in seen] == ([0, 1] if keyed else [0])
    if keyed:
        assert seen[0][2] == seen[1][2]  # the very same request, byte for byte


@pytest.mark.parametrize("name, call, idempotent", [
    ("get_items", lambda c: c.get_items([50]), True),
    ("recommend", lambda c: c.recommend(history=[50]), True),
    ("upsert_items", lambda c: c.upsert_items([("n1", "New")]), True),
    ("delete_user", lambda c: c.delete_user("u1"), True),
    ("load_model", lambda c: c.load_model("m", "popularity"), False),
    ("unload_model", lambda c: c.unload_model("m"), False),
])
def test_only_idempotent_methods_are_sent_again_after_a_lost_connection(name, call, idempotent):
    seen: list = []
    server = ScriptedServer(dropping_peer(1, b"", seen))  # an empty message decodes as any response
    with Client(server.address, timeout=WAIT, retry=FAST) as client:
        if idempotent:
            call(client)
        else:
            with pytest.raises(RpcError):
                call(client)
    server.check()
    assert len(seen) == (2 if idempotent else 1), seen


def test_server_unavailable_status_is_retried_for_reads_with_backoff():
    seen: list = []

    def script(peer, index):
        for attempt in range(3):
            sid, _, _ = peer.call()
            seen.append(time.monotonic())
            if attempt < 2:
                peer.answer(sid, None, code=14, message="the store is unavailable")
            else:
                peer.answer(sid, events_pb2.GetUserHistoryResponse(total=4).SerializeToString())
        assert peer.frame() is None

    server = ScriptedServer(script)
    policy = RetryPolicy(initial_backoff=0.05, max_backoff=0.05, multiplier=1)
    with Client(server.address, timeout=WAIT, retry=policy) as client:
        assert client.get_history("u1").total == 4
    server.check()
    assert len(seen) == 3


def test_retries_stop_at_the_deadline():
    seen: list = []
    server = ScriptedServer(dropping_peer(10_000, b"", seen))
    policy = RetryPolicy(max_attempts=10_000, initial_backoff=0.05, max_backoff=0.05)
    with Client(server.address, retry=policy) as client:
        started = time.monotonic()
        with pytest.raises(RpcError) as failure:
            client.get_items([1], timeout=0.5)
        elapsed = time.monotonic() - started
    server.listener.close()
    # the last attempt's error, or the deadline itself when it passed while an attempt was waiting
    assert failure.value.code() in (StatusCode.UNAVAILABLE, StatusCode.DEADLINE_EXCEEDED)
    assert elapsed < 1.5 and 2 <= len(seen) < 200


def test_stream_failing_before_its_first_message_is_reopened():
    seen: list = []
    server = ScriptedServer(dropping_peer(1, SERVING, seen))
    with Client(server.address, timeout=WAIT, retry=FAST) as client:
        with client.watch_health() as states:
            assert next(states) == "SERVING"
    server.check()
    assert [index for index, _, _ in seen] == [0, 1]


def answering_peer(counts: dict, name: str):
    def script(peer, index):
        while True:
            frame = peer.frame()
            if frame is None:
                return
            if frame.type != F.FrameType.CALL:
                continue
            peer.frame()
            counts[name] = counts.get(name, 0) + 1
            peer.answer(frame.stream_id, SERVING)
    return script


def test_calls_spread_round_robin_over_targets():
    counts: dict = {}
    first, second = ScriptedServer(answering_peer(counts, "a")), ScriptedServer(answering_peer(counts, "b"))
    with Client([first.address, second.address], timeout=WAIT) as client:
        # the first target is connected at once, the second in the background: calls go to the ready ones
        assert wait_until(lambda: all(c is not None and c.usable for c in client._connections), WAIT)
        for _ in range(10):
            assert client.health() == "SERVING"
    first.check()
    second.check()
    assert counts == {"a": 5, "b": 5}


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # nothing listens once it is closed


def test_a_target_that_refuses_connections_is_skipped():
    counts: dict = {}
    live = ScriptedServer(answering_peer(counts, "live"))
    with Client(f"{closed_port()},{live.address}", timeout=WAIT) as client:
        assert len(client.targets) == 2
        for _ in range(10):
            assert client.health() == "SERVING"
    live.check()
    assert counts == {"live": 10}


def test_no_reachable_target_fails_unavailable():
    with pytest.raises(RpcError) as failure:
        Client([closed_port(), closed_port()])
    assert failure.value.code() is StatusCode.UNAVAILABLE and failure.value.not_processed


def test_async_client_spreads_and_retries():
    counts: dict = {}
    seen: list = []
    spread = [ScriptedServer(answering_peer(counts, "a")), ScriptedServer(answering_peer(counts, "b"))]
    dropping = ScriptedServer(dropping_peer(1, RECORDED, seen))

    async def session():
        async with AsyncClient([s.address for s in spread], timeout=WAIT) as client:
            while not all(c is not None and c.usable for c in client._connections):
                await asyncio.sleep(0.01)  # the second target connects in the background
            states = await asyncio.gather(*(client.health() for _ in range(10)))
        async with AsyncClient(dropping.address, timeout=WAIT, retry=FAST) as client:
            recorded = await client.record_events([("u1", 1, 0, "", 0, "key")])
        return states, recorded

    states, recorded = asyncio.run(asyncio.wait_for(session(), WAIT * 2))
    for server in (*spread, dropping):
        server.check()
    assert states == ["SERVING"] * 10 and counts == {"a": 5, "b": 5}
    assert recorded.recorded == 1 and len(seen) == 2


def test_calls_in_flight_when_one_target_dies_finish_on_the_other():
    """Many threads on two targets; one target's connections start dropping every call: reads all succeed."""
    counts: dict = {}
    seen: list = []
    healthy = ScriptedServer(answering_peer(counts, "ok"))
    broken = ScriptedServer(dropping_peer(10_000, b"", seen))
    failures: list = []
    with Client([healthy.address, broken.address], timeout=WAIT, retry=FAST) as client:
        def work():
            try:
                for _ in range(20):
                    assert client.health() == "SERVING"
            except BaseException as error:  # noqa: BLE001 - reported below
                failures.append(error)
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
    healthy.check()
    broken.listener.close()
    assert not failures, failures[:3]
    assert counts["ok"] == 80 and seen  # every call answered by the healthy one, some tried on the broken one


def black_hole():
    """A listener whose backlog is full and that never accepts: connecting to it hangs, as to a host that drops
    SYNs. Returns (its address, the sockets to close)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = f"127.0.0.1:{listener.getsockname()[1]}"
    fillers = []
    for _ in range(8):  # fill the accept queue; later SYNs go unanswered
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(listener.getsockname())
        pytest.skip("the kernel accepted past a full backlog: no black hole to test with")
    except OSError:
        pass
    finally:
        probe.close()
    return address, [listener, *fillers]


def test_a_target_that_never_answers_a_connect_holds_no_call():
    """A dead host (SYNs unanswered) beside a live one: the live one takes every call at once, while the dead one
    is tried in the background; no call waits for its 10 s connect timeout."""
    counts: dict = {}
    live = ScriptedServer(answering_peer(counts, "live"))
    hole, sockets = black_hole()
    try:
        with Client([live.address, hole], timeout=WAIT) as client:
            started = time.monotonic()
            for _ in range(20):
                assert client.health() == "SERVING"
            elapsed = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    live.check()
    assert counts == {"live": 20} and elapsed < 2.0, elapsed
