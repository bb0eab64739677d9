"""Issue 2's bad-input list against a real server, over raw frames: each gets the documented status, and the
connection (for call-level errors) or at least the server (for protocol violations: GOAWAY, then close) keeps
serving afterwards (docs/protocol.md, "Status codes" and "Connection-level rules")."""
from __future__ import annotations

import os
import socket

import pytest

from rawwire import RawConnection
from r2ec_client import RpcError, StatusCode
from r2ec_client import frames as F
from r2ec_client._proto import health_pb2, recommender_pb2, wire_pb2

HEALTH = "/r2ec.v1.Health/Check"
RECOMMEND = "/r2ec.v1.Recommender/Recommend"
RECOMMEND_50 = recommender_pb2.RecommendRequest(history=[recommender_pb2.HistoryEvent(item_id="50")]).SerializeToString()


@pytest.fixture
def raw(server):
    with RawConnection(server.host, server.port) as connection:
        yield connection


def health_ok(raw: RawConnection, stream_id: int) -> None:
    """The same connection still answers a call."""
    raw.send_call(stream_id, HEALTH)
    messages, status = raw.read_call(stream_id)
    assert status.code == 0, status
    assert health_pb2.HealthCheckResponse.FromString(messages[0]).status == health_pb2.HealthCheckResponse.SERVING


# ---- protocol violations: GOAWAY with a code, then close; the server goes on -----------------------------------

def test_over_limit_length_is_refused_on_the_header(raw, assert_serving):
    raw.send(F.encode_header(F.FrameType.CALL, 1, F.DEFAULT_MAX_FRAME + 1))  # and no payload at all
    raw.expect_goaway_and_close("RESOURCE_EXHAUSTED")
    assert_serving()


def test_over_limit_length_on_a_message_after_a_good_call(raw, assert_serving):
    health_ok(raw, 1)
    raw.send(F.encode_header(F.FrameType.MESSAGE, 1, 0xFFFFFFFF))
    goaway = raw.expect_goaway_and_close("RESOURCE_EXHAUSTED")
    assert goaway.last_stream_id == 1
    assert_serving()


@pytest.mark.parametrize("cut", [5, 16, 20])
def test_truncated_frame_then_disconnect(server, assert_serving, cut):
    frames = F.encode_frame(F.FrameType.CALL, 1, wire_pb2.CallHeader(method=HEALTH).SerializeToString())
    with RawConnection(server.host, server.port) as raw:
        raw.send(frames[:cut])
    assert_serving()


def test_garbage_bytes(raw, assert_serving):
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(200))
    raw.expect_goaway_and_close("INVALID_ARGUMENT")
    assert_serving()


VIOLATIONS = {
    "wrong magic": F.encode_frame(F.FrameType.CALL, 1, b"", magic=b"R2ED"),
    "wrong version": F.encode_frame(F.FrameType.CALL, 1, b"", version=2),
    "unknown frame type": F.encode_frame(0x08, 1, b""),
    "frame type zero": F.encode_frame(0x00, 1, b""),
    "ping payload not 8 bytes": F.encode_frame(F.FrameType.PING, 0, b"1234567"),
    "stream id 0 on a call": F.encode_frame(F.FrameType.CALL, 0,
                                            wire_pb2.CallHeader(method=HEALTH).SerializeToString()),
    "non-zero stream id on a ping": F.encode_frame(F.FrameType.PING, 3, b"12345678"),
    "message for a stream never opened": F.encode_frame(F.FrameType.MESSAGE, 7, b"", F.FLAG_END_STREAM),
}


@pytest.mark.parametrize("name", VIOLATIONS)
def test_protocol_violation_gets_goaway_invalid_argument(raw, assert_serving, name):
    raw.send(VIOLATIONS[name])
    raw.expect_goaway_and_close("INVALID_ARGUMENT")
    assert_serving()


def test_call_id_not_above_the_previous_one(raw, assert_serving):
    health_ok(raw, 5)
    raw.send_call(5, HEALTH)
    goaway = raw.expect_goaway_and_close("INVALID_ARGUMENT")
    assert goaway.last_stream_id == 5
    assert_serving()


# ---- call-level errors: a TRAILER, and the same connection goes on --------------------------------------------

def test_unknown_method_is_unimplemented(raw):
    raw.send_call(1, "/r2ec.v1.Recommender/NoSuchMethod")
    status = raw.expect_status(1, "UNIMPLEMENTED")
    assert "unknown method" in status.message
    health_ok(raw, 2)


def test_malformed_protobuf_is_invalid_argument(raw):
    raw.send_call(1, RECOMMEND, b"\x12\xff\xff\xff\xff\x0f")  # field 2 (history) with an impossible length
    raw.expect_status(1, "INVALID_ARGUMENT")
    raw.send_call(2, RECOMMEND, b"\x0a\x05ab")  # a string running past the end
    raw.expect_status(2, "INVALID_ARGUMENT")
    health_ok(raw, 3)


def test_message_without_end_stream_is_invalid_argument(raw):
    raw.send(F.encode_frame(F.FrameType.CALL, 1, wire_pb2.CallHeader(method=HEALTH).SerializeToString()))
    raw.send(F.encode_frame(F.FrameType.MESSAGE, 1, b"", flags=0))
    raw.expect_status(1, "INVALID_ARGUMENT")
    health_ok(raw, 2)


def test_negative_timeout_is_deadline_exceeded(raw):
    raw.send_call(1, RECOMMEND, RECOMMEND_50, timeout_ms=-5)
    messages, status = raw.read_call(1)
    assert (status.code, messages) == (4, [])
    health_ok(raw, 2)


def test_cancel_of_an_unknown_stream_is_ignored(raw):
    raw.send(F.encode_frame(F.FrameType.CANCEL, 1000, b""))  # never opened (above every id so far)
    health_ok(raw, 1)
    raw.send(F.encode_frame(F.FrameType.CANCEL, 1, b""))  # already finished
    health_ok(raw, 2)


def test_ping_on_a_raw_connection(raw):
    raw.send(F.encode_frame(F.FrameType.PING, 0, b"abcdefgh"))
    frame = raw.read_frame()
    assert (frame.type, frame.stream_id, frame.payload) == (F.FrameType.PONG, 0, b"abcdefgh")
    health_ok(raw, 1)


def test_half_close_still_gets_every_answer(server):
    with RawConnection(server.host, server.port) as raw:
        for stream_id in range(1, 6):
            raw.send_call(stream_id, HEALTH)
        raw.sock.shutdown(socket.SHUT_WR)
        answered = {}
        for _ in range(100):
            frame = raw.read_frame()
            if frame is None:
                break
            if frame.type == F.FrameType.TRAILER:
                answered[frame.stream_id] = wire_pb2.Status.FromString(frame.payload).code
        assert answered == {stream_id: 0 for stream_id in range(1, 6)}


# ---- bad values through the client -----------------------------------------------------------------------------

def expect_rpc_error(code: str, call, *args, **kwargs) -> RpcError:
    with pytest.raises(RpcError) as failure:
        call(*args, **kwargs)
    assert failure.value.code() == StatusCode[code], failure.value
    return failure.value


def test_unknown_item_ids_are_not_found(client):
    expect_rpc_error("NOT_FOUND", client.recommend, history=[50, "no-such-item", 172])
    expect_rpc_error("NOT_FOUND", client.get_items, ["99999"])
    expect_rpc_error("NOT_FOUND", client.recommend, history=[50], candidates=["99999"])
    assert client.health() == "SERVING"


def test_empty_history_is_invalid_argument(client):
    error = expect_rpc_error("INVALID_ARGUMENT", client.recommend, history=[])
    assert error.field == "history"
    assert client.health() == "SERVING"


def test_top_k_above_the_catalogue_is_invalid_argument(client):
    error = expect_rpc_error("INVALID_ARGUMENT", client.recommend, history=[50], top_k=1683)
    assert error.field == "top_k"
    assert client.health() == "SERVING"


def test_expired_deadline_through_the_client(client):
    expect_rpc_error("DEADLINE_EXCEEDED", client.recommend, history=[50], timeout=-1)
    assert client.health() == "SERVING"
