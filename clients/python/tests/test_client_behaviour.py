"""Client behaviours a well-behaved real server rarely shows on demand, driven by a scripted in-process peer:
answers out of order, strictly increasing stream ids, deadlines (timeout_ms sent, local DEADLINE_EXCEEDED, then
CANCEL), PING from the server, GOAWAY (calls above last_stream_id fail UNAVAILABLE, later calls reconnect), a lost
connection, error trailers, streams. No server binary needed; loopback only, every wait bounded."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from scripted import SERVING, WAIT, ScriptedServer
from r2ec_client import AsyncClient, Client, Recommendation, RetryPolicy, RpcError, StatusCode
from r2ec_client import frames as F
from r2ec_client._proto import health_pb2, recommender_pb2, wire_pb2

def test_answers_out_of_order_reach_their_callers_and_ids_increase():
    seen_ids = []

    def script(peer, index):
        calls = [peer.call() for _ in range(4)]
        seen_ids.extend(sid for sid, _, _ in calls)
        for sid, header, request in reversed(calls):  # answer the last call first
            service = health_pb2.HealthCheckRequest.FromString(request).service
            status = {"a": 1, "b": 2, "c": 1, "d": 2}[service]
            peer.answer(sid, health_pb2.HealthCheckResponse(status=status).SerializeToString())
        assert peer.frame() is None  # the client closes

    server = ScriptedServer(script)
    results = {}
    with Client(server.address, timeout=WAIT) as client:
        barrier = threading.Barrier(4)

        def ask(service):
            barrier.wait(WAIT)
            results[service] = client.health(service)
        threads = [threading.Thread(target=ask, args=(s,)) for s in "abcd"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
    server.check()
    assert results == {"a": "SERVING", "b": "NOT_SERVING", "c": "SERVING", "d": "NOT_SERVING"}
    assert sorted(seen_ids) == seen_ids == [1, 2, 3, 4]


def test_deadline_is_sent_then_enforced_locally_then_cancelled():
    observed = {}

    def script(peer, index):
        sid, header, _ = peer.call()
        observed["timeout_ms"] = header.timeout_ms
        cancel = peer.frame()
        observed["cancel"] = (cancel.type, cancel.stream_id)
        peer.answer(sid, None, code=1, message="cancelled")  # crosses the client's forgetting it: ignored
        sid2, header2, _ = peer.call()
        observed["expired_timeout_ms"] = header2.timeout_ms
        cancel = peer.frame()  # an expired call fails locally at once, and is cancelled like any other
        assert (cancel.type, cancel.stream_id) == (F.FrameType.CANCEL, sid2)
        peer.answer(sid2, None, code=4, message="deadline exceeded")
        assert peer.frame() is None

    server = ScriptedServer(script)
    with Client(server.address) as client:
        started = time.monotonic()
        with pytest.raises(RpcError) as failure:
            client.health(timeout=0.3)
        assert failure.value.code() == StatusCode.DEADLINE_EXCEEDED
        assert 0.25 <= time.monotonic() - started < 5
        with pytest.raises(RpcError) as failure:
            client.health(timeout=-1)
        assert failure.value.code() == StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.2)  # let the scripted server read the second call before the client closes
    server.check()
    assert 250 <= observed["timeout_ms"] <= 300
    assert observed["cancel"] == (F.FrameType.CANCEL, 1)
    assert observed["expired_timeout_ms"] < 0


def test_server_ping_is_answered_and_client_ping_works():
    observed = {}

    def script(peer, index):
        peer.send(F.FrameType.PING, 0, b"12345678")
        pong = peer.frame()
        observed["pong"] = (pong.type, pong.stream_id, pong.payload)
        ping = peer.frame()
        assert ping.type == F.FrameType.PING and len(ping.payload) == 8
        peer.send(F.FrameType.PONG, 0, ping.payload)
        assert peer.frame() is None

    server = ScriptedServer(script)
    with Client(server.address) as client:
        time.sleep(0.1)
        assert client.ping(timeout=WAIT) < WAIT
    server.check()
    assert observed["pong"] == (F.FrameType.PONG, 0, b"12345678")


def goaway_script(retried: list):
    """Connection 0 takes two calls, sends GOAWAY(last_stream_id = the first), answers the first; connection 1
    answers whatever comes (the second call, sent again, and any later call) and records what it saw."""
    def script(peer, index):
        if index == 0:
            first = peer.call()
            peer.call()  # the second call: never answered here
            goaway = wire_pb2.GoAway(last_stream_id=first[0], code=0, message="draining")
            peer.send(F.FrameType.GOAWAY, 0, goaway.SerializeToString())
            time.sleep(0.2)
            peer.answer(first[0], SERVING)
            # the client half-closes its write side once it has moved on to a new connection
            assert peer.frame() is None
        else:
            while True:
                frame = peer.frame()
                if frame is None:
                    return
                message = peer.frame()
                service = health_pb2.HealthCheckRequest.FromString(message.payload).service
                retried.append((frame.stream_id, service))
                peer.answer(frame.stream_id, SERVING)
    return script


def test_goaway_call_above_last_stream_id_is_sent_again_on_a_new_connection():
    seen = []
    server = ScriptedServer(goaway_script(seen))
    with Client(server.address, timeout=WAIT) as client:
        first = client.watch_health("first")   # streams: both calls are in flight at once
        second = client.watch_health("second")
        assert next(first) == "SERVING"
        assert next(second) == "SERVING"  # never processed by connection 0, so sent again: transparent retry
        assert list(first) == [] and list(second) == []
        assert client.health("third") == "SERVING"
    server.check()
    assert seen == [(1, "second"), (2, "third")]  # a new connection starts its ids afresh


def test_goaway_without_retries_fails_the_call_unavailable():
    seen = []
    server = ScriptedServer(goaway_script(seen))
    with Client(server.address, timeout=WAIT, retry=RetryPolicy(max_attempts=1)) as client:
        first = client.watch_health("first")
        second = client.watch_health("second")
        assert next(first) == "SERVING"
        with pytest.raises(RpcError) as failure:
            next(second)
        assert failure.value.code() == StatusCode.UNAVAILABLE and "last stream 1" in failure.value.details()
        assert failure.value.not_processed
        assert list(first) == []
        assert client.health("third") == "SERVING"
    server.check()
    assert seen == [(1, "third")]


def test_lost_connection_fails_the_call_unavailable():
    def script(peer, index):
        peer.call()
        peer.sock.sendall(F.encode_header(F.FrameType.MESSAGE, 1, 10) + b"abc")  # then vanish mid-frame

    server = ScriptedServer(script)
    with Client(server.address, timeout=WAIT) as client:
        with pytest.raises(RpcError) as failure:
            client.health()
        assert failure.value.code() == StatusCode.UNAVAILABLE and "middle of a frame" in failure.value.details()
    server.check()


def test_error_trailer_becomes_rpc_error_with_field():
    def script(peer, index):
        sid, header, request = peer.call()
        assert header.method == "/r2ec.v1.Recommender/Recommend"
        assert recommender_pb2.RecommendRequest.FromString(request).top_k == 10
        peer.answer(sid, None, code=3, message="history is empty", field="history")
        assert peer.frame() is None

    server = ScriptedServer(script)
    with Client(server.address, timeout=WAIT) as client:
        with pytest.raises(RpcError) as failure:
            client.recommend(history=[])
    server.check()
    assert (failure.value.code(), failure.value.field) == (StatusCode.INVALID_ARGUMENT, "history")


def stream_script(peer, index):
    sid, header, _ = peer.call()
    assert header.method == "/r2ec.v1.Recommender/RecommendStream"
    for delta in ("The user ", "likes sci-fi."):
        peer.send(F.FrameType.MESSAGE, sid,
                  recommender_pb2.RecommendStreamResponse(reasoning_delta=delta).SerializeToString())
    result = recommender_pb2.RecommendResponse(
        items=[recommender_pb2.ScoredItem(item_id="50", title="Star Wars", score=2.5, rank=1)],
        reasoning="The user likes sci-fi.", model="m")
    peer.answer(sid, recommender_pb2.RecommendStreamResponse(result=result).SerializeToString())
    assert peer.frame() is None


def test_recommend_stream_yields_deltas_then_result():
    server = ScriptedServer(stream_script)
    with Client(server.address, timeout=WAIT) as client:
        stream = client.recommend_stream(history=[1], reasoning=True)
        events = list(stream)
    server.check()
    assert events[:2] == ["The user ", "likes sci-fi."]
    assert isinstance(events[2], Recommendation) and events[2].items[0].title == "Star Wars"
    assert stream.result is events[2] and stream.reasoning == "The user likes sci-fi."


def test_async_client_stream_and_concurrent_calls():
    def script(peer, index):
        if index == 0:
            calls = [peer.call() for _ in range(3)]
            for sid, _, _ in reversed(calls):
                peer.answer(sid, SERVING)
            stream_script(peer, index)

    server = ScriptedServer(script)

    async def session():
        async with AsyncClient(server.address, timeout=WAIT) as client:
            states = await asyncio.gather(*(client.health() for _ in range(3)))
            events = [event async for event in client.recommend_stream(history=[1])]
            return states, events

    states, events = asyncio.run(asyncio.wait_for(session(), WAIT * 2))
    server.check()
    assert states == ["SERVING"] * 3
    assert events[:2] == ["The user ", "likes sci-fi."] and events[2].items[0].item_id == "50"
