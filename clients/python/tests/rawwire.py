"""A raw protocol connection for tests: send any bytes (well-formed or not) and read frames back with timeouts,
without the client library's call bookkeeping getting in the way."""
from __future__ import annotations

import socket
import time

from r2ec_client import frames as F
from r2ec_client import protocol as P
from r2ec_client._proto import wire_pb2
from r2ec_client.errors import StatusCode

READ_TIMEOUT = 10.0


class RawConnection:
    def __init__(self, host: str, port: int, timeout: float = READ_TIMEOUT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_call(self, stream_id: int, method: str, request: bytes = b"", timeout_ms: int = 0,
                  metadata=()) -> None:
        self.send(P.encode_call(stream_id, method, request, timeout_ms, metadata))

    def read_frame(self) -> F.Frame | None:
        """The next frame, or None at EOF; socket.timeout when nothing comes in time."""
        return F.read_frame(self.sock)

    def read_call(self, stream_id: int, limit: int = 10_000) -> tuple[list[bytes], wire_pb2.Status]:
        """MESSAGE payloads and the TRAILER's Status of one call; frames of other calls are skipped."""
        messages = []
        for _ in range(limit):
            frame = self.read_frame()
            assert frame is not None, f"connection closed before the TRAILER of stream {stream_id}"
            if frame.stream_id != stream_id:
                continue
            if frame.type == F.FrameType.MESSAGE:
                messages.append(frame.payload)
            elif frame.type == F.FrameType.TRAILER:
                return messages, wire_pb2.Status.FromString(frame.payload)
            else:
                raise AssertionError(f"unexpected {frame!r}")
        raise AssertionError(f"no TRAILER for stream {stream_id} within {limit} frames")

    def expect_status(self, stream_id: int, code: str) -> wire_pb2.Status:
        _, status = self.read_call(stream_id)
        assert StatusCode.of(status.code).name == code, f"stream {stream_id}: expected {code}, got " \
                                               f"{StatusCode.of(status.code).name}: {status.message!r}"
        return status

    def expect_goaway_and_close(self, code: str) -> wire_pb2.GoAway:
        """Reads until GOAWAY (skipping answers of earlier calls), checks its code, then expects EOF."""
        deadline = time.monotonic() + self.timeout
        goaway = None
        while time.monotonic() < deadline:
            try:
                frame = self.read_frame()
            except ConnectionResetError:
                frame = None
            if frame is None:
                break
            if frame.type == F.FrameType.GOAWAY:
                goaway = wire_pb2.GoAway.FromString(frame.payload)
        assert goaway is not None, "the connection closed without a GOAWAY"
        assert StatusCode.of(goaway.code).name == code, f"GOAWAY code {StatusCode.of(goaway.code).name} ({goaway.message!r}), " \
                                               f"expected {code}"
        assert self.at_eof(), "the server did not close the connection after GOAWAY"
        return goaway

    def at_eof(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
