"""The asyncio client: `AsyncClient` has Client's methods, awaited (`await c.recommend(...)`), and its streams are
async iterators (`async for event in c.recommend_stream(...)`). One connection, opened on first use (or by
`async with` / `await c.connect()`); one reader task demultiplexes frames to per-call asyncio queues. Cancelling the
task awaiting a call sends CANCEL."""
from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any, Callable

from . import protocol as P
from ._api import CallMethods
from ._core import FAILED, MESSAGE, TRAILER, ConnectionState, Effects
from .client import CLIENT_MAX_FRAME
from .errors import ProtocolError, RpcError, StatusCode
from .frames import FrameType, encode_frame


class _AsyncCall:
    def __init__(self, connection: "_AsyncConnection", stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.events: asyncio.Queue = asyncio.Queue()
        self.finished = False

    async def next_event(self, deadline: float | None) -> tuple[str, Any]:
        try:
            if deadline is None:
                event = await self.events.get()
            else:
                event = await asyncio.wait_for(self.events.get(), max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            self.cancel()
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the server answered") from None
        except asyncio.CancelledError:
            self.cancel()
            raise
        if event[0] != MESSAGE:
            self.finished = True
        return event

    def cancel(self) -> None:
        if not self.finished:
            self.finished = True
            self.connection.cancel(self.stream_id)


class _AsyncConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_frame: int) -> None:
        self._reader = reader
        self._writer = writer
        self._state = ConnectionState(max_frame)
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def open(cls, host: str, port: int, connect_timeout: float | None, max_frame: int) -> "_AsyncConnection":
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), connect_timeout)
        except (OSError, asyncio.TimeoutError) as error:
            raise RpcError(StatusCode.UNAVAILABLE, f"cannot connect to {host}:{port}: {error!r}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, max_frame)

    @property
    def usable(self) -> bool:
        return self._state.usable and not self._writer.is_closing()

    def start(self, method_path: str, request: bytes, deadline: float | None,
              metadata: list[tuple[str, str]]) -> _AsyncCall:
        # No await between taking the id and writing the frames: ids reach the wire strictly increasing.
        call = _AsyncCall(self, self._state.next_stream_id())
        self._state.calls[call.stream_id] = call
        self._writer.write(P.encode_call(call.stream_id, method_path, request, P.timeout_ms_for(deadline),
                                         metadata))
        return call

    async def drain(self, deadline: float | None) -> None:
        """Waits while the kernel's send buffer is full (a server that stopped reading), up to the deadline."""
        try:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.wait_for(self._writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded while sending the request") from None
        except ConnectionError as error:
            self._fail(RpcError(StatusCode.UNAVAILABLE, f"connection lost while sending: {error}"))

    def cancel(self, stream_id: int) -> None:
        frame = self._state.forget(stream_id)
        if frame is not None and not self._writer.is_closing():
            self._writer.write(frame)

    async def ping(self, timeout: float) -> float:
        if self._state.failure is not None:
            raise self._state.failure
        payload = os.urandom(8)
        answered = asyncio.Event()
        self._state.pings[payload] = answered
        self._writer.write(encode_frame(FrameType.PING, 0, payload))
        started = time.monotonic()
        try:
            await asyncio.wait_for(answered.wait(), timeout)
        except asyncio.TimeoutError:
            self._state.pings.pop(payload, None)
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, f"no PONG within {timeout} s") from None
        if self._state.failure is not None:
            raise self._state.failure
        return time.monotonic() - started

    def retire(self) -> None:
        if self._writer.can_write_eof() and not self._writer.is_closing():
            self._writer.write_eof()

    async def close(self, reason: RpcError) -> None:
        self._fail(reason)
        self._read_task.cancel()
        try:
            await self._read_task
        except asyncio.CancelledError:
            pass
        try:
            await self._writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def _read_loop(self) -> None:
        reason: RpcError | None = None
        try:
            while True:
                data = await self._reader.read(1 << 16)
                if not data:
                    break
                effects = self._state.receive(data)
                for reply in effects.replies:
                    self._writer.write(reply)
                self._apply(effects)
        except ProtocolError as error:
            reason = RpcError(StatusCode.INTERNAL, f"the server broke the framing: {error}")
        except (OSError, ConnectionError) as error:
            reason = RpcError(StatusCode.UNAVAILABLE, f"connection lost: {error}")
        self._fail(reason or self._state.closed_reason())

    @staticmethod
    def _apply(effects: Effects) -> None:
        for call, event in effects.deliveries:
            call.events.put_nowait(event)
        for answered in effects.pongs:
            answered.set()

    def _fail(self, reason: RpcError) -> None:
        self._apply(self._state.fail(reason))
        self._writer.close()


class AsyncServerStream:
    """Async iterator over a server-streaming call. The call starts on the first `__anext__`."""

    def __init__(self, client: "AsyncClient", method: P.Method, request, timeout: float | None,
                 convert: Callable) -> None:
        self._client = client
        self._method = method
        self._request = request
        self._timeout = timeout
        self._convert = convert
        self._call: _AsyncCall | None = None
        self._deadline: float | None = None
        self._done = False

    def __aiter__(self) -> "AsyncServerStream":
        return self

    async def __anext__(self):
        if self._done:
            raise StopAsyncIteration
        try:
            if self._call is None:
                self._call, self._deadline = await self._client._start(self._method, self._request, self._timeout)
            kind, value = await self._call.next_event(self._deadline)
            if kind == MESSAGE:
                return self._convert(P.decode_response(self._method, value))
        except BaseException:
            self.cancel()
            raise
        self._done = True
        if kind == TRAILER:
            if value.code == StatusCode.OK:
                raise StopAsyncIteration
            raise RpcError.from_status(value)
        raise value

    def cancel(self) -> None:
        self._done = True
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> "AsyncServerStream":
        return self

    async def __aexit__(self, *exc_info) -> None:
        self.cancel()


class AsyncRecommendStream(AsyncServerStream):
    """Reasoning deltas (str), then the final Recommendation, also kept on `.result`."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.result = None
        self._deltas: list[str] = []

    @property
    def reasoning(self) -> str:
        return "".join(self._deltas)

    async def __anext__(self):
        event = await super().__anext__()
        if isinstance(event, str):
            self._deltas.append(event)
        else:
            self.result = event
        return event

    async def collect(self):
        async for _ in self:
            pass
        if self.result is None:
            raise RpcError(StatusCode.INTERNAL, "RecommendStream ended without a result")
        return self.result


class AsyncClient(CallMethods):
    """asyncio twin of Client; use it from one event loop."""

    def __init__(self, address: str = "127.0.0.1:7878", token: str | None = None, timeout: float | None = None, *,
                 connect_timeout: float | None = 10.0, max_frame: int = CLIENT_MAX_FRAME) -> None:
        self.address = address
        self.timeout = timeout
        self._host, self._port = P.parse_address(address)
        self._metadata = P.metadata_for(token)
        self._connect_timeout = connect_timeout
        self._max_frame = max_frame
        self._connection: _AsyncConnection | None = None
        self._connecting: asyncio.Lock | None = None
        self._closed = False

    async def connect(self) -> "AsyncClient":
        await self._current_connection()
        return self

    async def _current_connection(self) -> _AsyncConnection:
        if self._closed:
            raise RpcError(StatusCode.CANCELLED, "the client is closed")
        if self._connection is not None and self._connection.usable:
            return self._connection
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is None or not self._connection.usable:
                old = self._connection
                self._connection = await _AsyncConnection.open(self._host, self._port, self._connect_timeout,
                                                               self._max_frame)
                if old is not None:
                    old.retire()
            return self._connection

    def _deadline(self, timeout: float | None) -> float | None:
        timeout = self.timeout if timeout is None else timeout
        return None if timeout is None else time.monotonic() + timeout

    async def _start(self, method: P.Method, request, timeout: float | None) -> tuple[_AsyncCall, float | None]:
        deadline = self._deadline(timeout)
        payload = request.SerializeToString()
        for _ in range(3):
            connection = await self._current_connection()
            if connection.usable:
                call = connection.start(method.path, payload, deadline, self._metadata)
                try:
                    await connection.drain(deadline)
                except BaseException:
                    call.cancel()
                    raise
                return call, deadline
        raise RpcError(StatusCode.UNAVAILABLE, "no usable connection to the server")

    async def _unary(self, method: P.Method, request, timeout: float | None):
        call, deadline = await self._start(method, request, timeout)
        payloads: list[bytes] = []
        while True:
            kind, value = await call.next_event(deadline)
            if kind == MESSAGE:
                payloads.append(value)
                continue
            if kind == FAILED:
                raise value
            if value.code != StatusCode.OK:
                raise RpcError.from_status(value)
            if len(payloads) != 1:
                raise RpcError(StatusCode.INTERNAL, f"unary call {method.path} got {len(payloads)} messages")
            return P.CONVERTERS[method.path](P.decode_response(method, payloads[0]))

    def _stream(self, method: P.Method, request, timeout: float | None):
        stream_type = AsyncRecommendStream if method is P.RECOMMEND_STREAM else AsyncServerStream
        return stream_type(self, method, request, timeout, P.CONVERTERS[method.path])

    async def ping(self, timeout: float = 5.0) -> float:
        connection = await self._current_connection()
        return await connection.ping(timeout)

    async def close(self) -> None:
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close(RpcError(StatusCode.CANCELLED, "the client was closed"))

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.address!r})"
