"""Unit tests of the frame codec and the call encoding against the byte examples of docs/protocol.md ("Example:
Health/Check with a one-second deadline"), fed whole, byte by byte and split at every offset; plus the header
checks (magic, version, type, length limit) and the deadline arithmetic. No server needed."""
from __future__ import annotations

import re

import pytest

from conftest import REPO
from r2ec_client import frames as F
from r2ec_client import protocol as P
from r2ec_client import requests as R
from r2ec_client._proto import health_pb2, wire_pb2
from r2ec_client.errors import ProtocolError, RpcError, StatusCode


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(" ".join(text.split()))


# The doc's example, with the CALL's length as the 26 bytes its CallHeader encodes to.
CLIENT_CALL = hexbytes("""
52 32 45 43 01 01 00 00 00 00 00 01 00 00 00 1a
0a 15 2f 72 32 65 63 2e 76 31 2e 48 65 61 6c 74 68 2f 43 68 65 63 6b 10 e8 07""")
CLIENT_MESSAGE = hexbytes("52 32 45 43 01 02 00 01 00 00 00 01 00 00 00 00")
SERVER_MESSAGE = hexbytes("52 32 45 43 01 02 00 00 00 00 00 01 00 00 00 02 08 01")
SERVER_TRAILER = hexbytes("52 32 45 43 01 03 00 00 00 00 00 01 00 00 00 00")


def test_encode_call_matches_the_documented_bytes():
    assert P.encode_call(1, "/r2ec.v1.Health/Check", b"", timeout_ms=1000) == CLIENT_CALL + CLIENT_MESSAGE


def test_call_header_payload():
    header = wire_pb2.CallHeader(method="/r2ec.v1.Health/Check", timeout_ms=1000).SerializeToString()
    assert header == CLIENT_CALL[16:]
    assert len(header) == 26


def test_decode_header_fields():
    header = F.decode_header(CLIENT_MESSAGE)
    assert (header.magic, header.version, header.type, header.flags, header.stream_id, header.length) == \
           (b"R2EC", 1, F.FrameType.MESSAGE, F.FLAG_END_STREAM, 1, 0)
    assert header.end_stream


def test_server_answer_decodes_all_at_once():
    frames = F.FrameDecoder().feed(SERVER_MESSAGE + SERVER_TRAILER)
    assert [(f.type, f.stream_id, f.flags) for f in frames] == [(F.FrameType.MESSAGE, 1, 0),
                                                                (F.FrameType.TRAILER, 1, 0)]
    assert health_pb2.HealthCheckResponse.FromString(frames[0].payload).status == \
           health_pb2.HealthCheckResponse.SERVING
    status = wire_pb2.Status.FromString(frames[1].payload)
    assert status.code == 0 and frames[1].payload == b""


ALL_EXAMPLE_BYTES = CLIENT_CALL + CLIENT_MESSAGE + SERVER_MESSAGE + SERVER_TRAILER
EXPECTED = [(F.FrameType.CALL, 1, 0, CLIENT_CALL[16:]), (F.FrameType.MESSAGE, 1, 1, b""),
            (F.FrameType.MESSAGE, 1, 0, b"\x08\x01"), (F.FrameType.TRAILER, 1, 0, b"")]


def summary(frames):
    return [(f.type, f.stream_id, f.flags, f.payload) for f in frames]


def test_decoder_byte_by_byte():
    decoder = F.FrameDecoder()
    frames = []
    for byte in ALL_EXAMPLE_BYTES:
        frames += decoder.feed(bytes([byte]))
    assert summary(frames) == EXPECTED
    assert decoder.buffered == 0


@pytest.mark.parametrize("split", range(len(ALL_EXAMPLE_BYTES) + 1))
def test_decoder_split_at_every_offset(split):
    decoder = F.FrameDecoder()
    frames = decoder.feed(ALL_EXAMPLE_BYTES[:split]) + decoder.feed(ALL_EXAMPLE_BYTES[split:])
    assert summary(frames) == EXPECTED


def test_encoder_roundtrip_every_type():
    for frame_type in F.FrameType:
        frame = F.Frame(frame_type, 0x8001, 2**31 - 1, b"xyz")
        decoded = F.FrameDecoder().feed(frame.encode())
        assert decoded == [frame]


@pytest.mark.parametrize("bad, message", [
    (b"R2ED" + CLIENT_MESSAGE[4:], "magic"),
    (CLIENT_MESSAGE[:4] + b"\x02" + CLIENT_MESSAGE[5:], "version"),
    (CLIENT_MESSAGE[:5] + b"\x08" + CLIENT_MESSAGE[6:], "frame type"),
    (CLIENT_MESSAGE[:5] + b"\x00" + CLIENT_MESSAGE[6:], "frame type"),
])
def test_decoder_refuses_bad_headers(bad, message):
    with pytest.raises(ProtocolError, match=message):
        F.FrameDecoder().feed(bad)


def test_decoder_refuses_over_limit_length_on_the_header_alone():
    header = F.encode_header(F.FrameType.MESSAGE, 1, F.DEFAULT_MAX_FRAME + 1)
    with pytest.raises(ProtocolError, match="over the limit"):
        F.FrameDecoder().feed(header)  # no payload bytes at all
    # exactly at the limit is fine (the decoder then waits for the payload)
    assert F.FrameDecoder().feed(F.encode_header(F.FrameType.MESSAGE, 1, F.DEFAULT_MAX_FRAME)) == []


def test_truncated_frame_stays_buffered():
    decoder = F.FrameDecoder()
    assert decoder.feed(SERVER_MESSAGE[:-1]) == []
    assert decoder.buffered == len(SERVER_MESSAGE) - 1


def test_timeout_ms_arithmetic():
    assert P.timeout_ms_for(None, now=5.0) == 0
    assert P.timeout_ms_for(6.0, now=5.0) == 1000
    assert P.timeout_ms_for(5.0001, now=5.0) == 1  # never rounds down to "no deadline"
    assert P.timeout_ms_for(5.0, now=5.0) < 0
    assert P.timeout_ms_for(4.5, now=5.0) == -500


def test_negative_timeout_survives_the_call_header():
    header = wire_pb2.CallHeader(method="/x/y", timeout_ms=-5)
    assert wire_pb2.CallHeader.FromString(header.SerializeToString()).timeout_ms == -5


def test_history_forms():
    events = R.history_events([50, "172", (181, 880000000, 4.5), ("1",), {"item_id": 7, "rating": 3}])
    assert [(e.item_id, e.timestamp, e.rating) for e in events] == [
        ("50", 0, 0), ("172", 0, 0), ("181", 880000000, 4.5), ("1", 0, 0), ("7", 0, 3)]
    for bad, field in (([True], "history[0].item_id"), ([3.5], "history[0].item_id"), ([(1, 2, 3, 4)], "history[0]")):
        with pytest.raises(RpcError) as failure:
            R.history_events(bad)
        assert (failure.value.code(), failure.value.field) == (StatusCode.INVALID_ARGUMENT, field)


def test_rpc_error_is_shaped_like_grpcio():
    error = RpcError(3, "history: is empty", "history", [("x-request-id", "abc")])
    assert (error.code(), error.details(), error.field) == (StatusCode.INVALID_ARGUMENT, "history: is empty", "history")
    assert error.trailing_metadata() == (("x-request-id", "abc"),) and error.request_id == "abc"
    assert str(error) == "INVALID_ARGUMENT: history: is empty (field history) [request id abc]"
    assert RpcError("NOT_FOUND").code() is StatusCode.NOT_FOUND
    assert StatusCode.NOT_FOUND.value == (5, "not found")
    unknown = RpcError.from_status(wire_pb2.Status(code=99, message="?"))
    assert unknown.code() is StatusCode.UNKNOWN and str(unknown) == "UNKNOWN(99): ?"


def test_bearer_token_metadata():
    call = P.encode_call(3, "/r2ec.v1.Health/Check", b"", 0, P.metadata_for("s3cret"))
    header = wire_pb2.CallHeader.FromString(F.FrameDecoder().feed(call)[0].payload)
    assert [(m.key, m.value) for m in header.metadata] == [("authorization", "Bearer s3cret")]


def doc_example_blocks() -> list[bytes]:
    doc = REPO / "docs" / "protocol.md"
    if not doc.exists():
        pytest.skip("docs/protocol.md not present")
    text = doc.read_text()
    section = text[text.index("## Example"):]
    blocks = re.findall(r"```\n((?:[0-9a-f]{2}[ \n])+)```", section)
    return [hexbytes(block) for block in blocks]


def test_every_example_block_of_the_doc_is_whole_frames():
    """Each hex block in the doc's example section must decode to complete frames with nothing left over."""
    blocks = doc_example_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        decoder = F.FrameDecoder()
        frames = decoder.feed(block)
        assert frames and decoder.buffered == 0, f"doc example block {block.hex(' ')} does not split into " \
                                                 f"whole frames (declared lengths disagree with the bytes)"


def test_status_codes_are_grpcios():
    grpc = pytest.importorskip("grpc")
    assert [(code.name, code.value) for code in StatusCode] == \
           [(code.name, (int(code.value[0]), code.value[1])) for code in grpc.StatusCode]
