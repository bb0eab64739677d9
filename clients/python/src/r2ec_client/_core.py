"""The I/O-free state of one client connection, shared by the threaded and the asyncio clients: stream ids, the
calls in flight, GOAWAY, the failure that ended the connection, PINGs awaiting their PONG. `receive(bytes)` decodes
frames and returns what the I/O layer must do: events to deliver to calls, frames to send back, pings answered.
The threaded client calls it under its lock; the asyncio client from its one reader task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from . import protocol as P
from ._proto import wire_pb2
from .errors import RpcError, StatusCode
from .frames import MAX_STREAM_ID, Frame, FrameDecoder, FrameType, encode_frame

MESSAGE, TRAILER, FAILED = "message", "trailer", "failed"


@dataclass
class Effects:
    deliveries: list[tuple[Any, tuple[str, Any]]] = field(default_factory=list)  # (call, (kind, value))
    replies: list[bytes] = field(default_factory=list)
    pongs: list[Any] = field(default_factory=list)  # the waiters of answered PINGs


class ConnectionState:
    def __init__(self, max_frame: int) -> None:
        self.calls: dict[int, Any] = {}
        self.last_stream_id = 0
        self.goaway: wire_pb2.GoAway | None = None
        self.failure: RpcError | None = None
        self.pings: dict[bytes, Any] = {}
        self.decoder = FrameDecoder(max_frame)

    @property
    def usable(self) -> bool:
        return self.failure is None and self.goaway is None and self.last_stream_id < MAX_STREAM_ID

    def next_stream_id(self) -> int:
        self.last_stream_id += 1
        return self.last_stream_id

    def forget(self, stream_id: int) -> bytes | None:
        """A call the client gives up on: the CANCEL frame to send, or None when its TRAILER already came."""
        if self.calls.pop(stream_id, None) is not None and self.failure is None:
            return encode_frame(FrameType.CANCEL, stream_id)
        return None

    def receive(self, data: bytes) -> Effects:
        """Raises ProtocolError when the server breaks the framing."""
        effects = Effects()
        for frame in self.decoder.feed(data):
            self._dispatch(frame, effects)
        return effects

    def _dispatch(self, frame: Frame, effects: Effects) -> None:
        kind = frame.type
        if kind == FrameType.MESSAGE:
            call = self.calls.get(frame.stream_id)
            if call is not None:  # else a call given up on; its frames may still be on the way
                effects.deliveries.append((call, (MESSAGE, frame.payload)))
        elif kind == FrameType.TRAILER:
            call = self.calls.pop(frame.stream_id, None)
            if call is not None:
                try:
                    effects.deliveries.append((call, (TRAILER, P.decode_status(frame.payload))))
                except RpcError as error:
                    effects.deliveries.append((call, (FAILED, error)))
        elif kind == FrameType.PING:
            if len(frame.payload) == 8:
                effects.replies.append(encode_frame(FrameType.PONG, 0, frame.payload))
        elif kind == FrameType.PONG:
            waiter = self.pings.pop(frame.payload, None)
            if waiter is not None:
                effects.pongs.append(waiter)
        elif kind == FrameType.GOAWAY:
            self._on_goaway(frame.payload, effects)
        # CALL and CANCEL never come from a server; ignoring them costs nothing.

    def _on_goaway(self, payload: bytes, effects: Effects) -> None:
        try:
            goaway = wire_pb2.GoAway.FromString(payload)
        except DecodeError:
            goaway = wire_pb2.GoAway(last_stream_id=0, code=StatusCode.UNKNOWN, message="undecodable GOAWAY")
        self.goaway = goaway
        text = (f"the server is going away (GOAWAY code {goaway.code}, last stream {goaway.last_stream_id})"
                + (f": {goaway.message}" if goaway.message else ""))
        for stream_id in [sid for sid in self.calls if sid > goaway.last_stream_id]:
            error = RpcError(StatusCode.UNAVAILABLE, text)
            error.not_processed = True  # the server promised not to process calls above last_stream_id
            effects.deliveries.append((self.calls.pop(stream_id), (FAILED, error)))

    def closed_reason(self) -> RpcError:
        """Why the server's EOF ended the connection, in words a user can act on."""
        text = "connection closed by the server"
        if self.goaway is not None:
            text += (f" after GOAWAY (code {self.goaway.code}, last stream {self.goaway.last_stream_id}"
                     + (f": {self.goaway.message})" if self.goaway.message else ")"))
        if self.decoder.buffered:
            text += " in the middle of a frame"
        return RpcError(StatusCode.UNAVAILABLE, text)

    def fail(self, reason: RpcError) -> Effects:
        """The connection is dead: every waiting call gets the (first) reason, every ping waiter is released."""
        if self.failure is None:
            self.failure = reason
        effects = Effects(deliveries=[(call, (FAILED, self.failure.copy())) for call in self.calls.values()],
                          pongs=list(self.pings.values()))
        self.calls.clear()
        self.pings.clear()
        return effects
