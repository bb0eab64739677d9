"""The asyncio client: `AsyncClient` has Client's methods, awaited (`await c.recommend(...)`), and its streams are
async iterators (`async for event in c.recommend_stream(...)`). One connection per target, opened on first use (or
by `async with` / `await c.connect()`); one reader task per connection demultiplexes frames to per-call asyncio
queues. Cancelling the task awaiting a call sends CANCEL. Targets, spreading and retries as for Client."""
from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any, Callable, Sequence

from . import protocol as P
from . import requests as R
from ._api import CallMethods, CallPlan, chunk_failed
from ._core import FAILED, MESSAGE, TRAILER, ConnectionState, Effects
from ._retry import RetryPolicy, TargetPool, connect_timeout
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
            raise self._state.failure.copy()
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
            raise self._state.failure.copy()
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
    """Async iterator over a server-streaming call. The call starts on the first `__anext__`; a stream that failed
    before its first message is reopened when the retry rules allow. `trailing_metadata()` after the end."""

    def __init__(self, client: "AsyncClient", plan: CallPlan) -> None:
        self._client = client
        self._plan = plan
        self._call: _AsyncCall | None = None
        self._target = 0
        self._received = False
        self._done = False
        self._trailing: tuple = ()

    def __aiter__(self) -> "AsyncServerStream":
        return self

    async def __anext__(self):
        if self._done:
            raise StopAsyncIteration
        while True:
            try:
                if self._call is None:
                    self._call, self._target = await self._client._open(self._plan)
                kind, value = await self._call.next_event(self._plan.deadline)
                if kind == MESSAGE:
                    self._received = True
                    return P.stream_message(self._plan.method, self._plan.request, value)
            except BaseException:
                self.cancel()
                raise
            if kind == TRAILER:
                self._trailing = P.trailing_metadata(value)
                error = P.status_error(value)
                if error is None:
                    self._done = True
                    raise StopAsyncIteration
            else:
                error = value
            if self._received:
                self._done = True
                raise error
            try:
                await asyncio.sleep(self._plan.retry_delay(error, self._target))
            except BaseException:
                self._done = True
                raise
            self._call = None

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

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
    """asyncio twin of Client (same targets, timeout, retry); use it from one event loop."""

    def __init__(self, targets: str | Sequence[str] = "127.0.0.1:7878", token: str | None = None,
                 timeout: float | None = None, *, retry: RetryPolicy = RetryPolicy(),
                 connect_timeout: float | None = 10.0, max_frame: int = CLIENT_MAX_FRAME) -> None:
        self.targets = P.parse_targets(targets)
        self.timeout = R.timeout_seconds(timeout)
        self.retry = retry
        self._addresses = [P.parse_address(target) for target in self.targets]
        self._metadata = P.metadata_for(token)
        self._connect_timeout = connect_timeout
        self._max_frame = max_frame
        self._pool = TargetPool(len(self.targets), retry)
        self._connections: list[_AsyncConnection | None] = [None] * len(self.targets)
        self._connecting: list[asyncio.Lock] | None = None  # made inside the loop
        self._background: dict[int, asyncio.Task] = {}  # targets being connected by a background task
        self._closed = False

    @property
    def address(self) -> str:
        return ",".join(self.targets)

    async def connect(self) -> "AsyncClient":
        """Opens a connection now (to the first target that answers; the others connect in the background)."""
        failure = None
        for index in range(len(self.targets)):
            try:
                await self._connection(index)
                break
            except RpcError as error:
                failure = error
        else:
            raise failure
        self._pick(frozenset())
        return self

    def _pick(self, avoid) -> int:
        """The target for the next attempt; targets without a ready connection start connecting meanwhile."""
        now = time.monotonic()
        ready = [connection is not None and connection.usable for connection in self._connections]
        index = self._pool.pick(now, avoid, ready)
        for target in self._pool.to_connect(now, ready):
            if target != index and target not in self._background:
                task = asyncio.get_running_loop().create_task(self._connect_in_background(target))
                self._background[target] = task
        return index

    async def _connect_in_background(self, index: int) -> None:
        try:
            await self._connection(index)
        except RpcError:
            pass  # the pool keeps the target out of rotation for its backoff
        finally:
            self._background.pop(index, None)

    async def _connection(self, index: int, deadline: float | None = None) -> _AsyncConnection:
        if self._closed:
            raise RpcError(StatusCode.CANCELLED, "the client is closed")
        current = self._connections[index]
        if current is not None and current.usable:
            return current
        if self._connecting is None:
            self._connecting = [asyncio.Lock() for _ in self.targets]
        async with self._connecting[index]:
            current = self._connections[index]
            if current is not None and current.usable:
                return current
            host, port = self._addresses[index]
            try:
                fresh = await _AsyncConnection.open(host, port, connect_timeout(self._connect_timeout, deadline),
                                                    self._max_frame)
            except RpcError as error:
                self._pool.refused(index, time.monotonic())
                error.not_processed = True
                raise
            if self._closed:
                await fresh.close(RpcError(StatusCode.CANCELLED, "the client was closed"))
                raise RpcError(StatusCode.CANCELLED, "the client is closed")
            self._connections[index] = fresh
            self._pool.connected(index)
            if current is not None:
                current.retire()
            return fresh

    async def _open(self, plan: CallPlan) -> tuple[_AsyncCall, int]:
        """Starts the call on the next target (see Client._open)."""
        while True:
            index = self._pick(plan.attempts.avoid)
            try:
                for _ in range(3):
                    connection = await self._connection(index, plan.deadline)
                    if connection.usable:
                        call = connection.start(plan.method.path, plan.payload, plan.deadline, plan.metadata)
                        try:
                            await connection.drain(plan.deadline)
                        except BaseException:
                            call.cancel()
                            raise
                        return call, index
                error = RpcError(StatusCode.UNAVAILABLE, f"no usable connection to {self.targets[index]}")
                error.not_processed = True
                raise error
            except RpcError as error:
                await asyncio.sleep(plan.retry_delay(error, index))

    async def _unary(self, method: P.Method, request, timeout: float | None, metadata):
        plan = CallPlan.of(self, method, request, timeout, metadata)
        while True:
            call, target = await self._open(plan)
            try:
                return await self._finish(call, plan)
            except RpcError as error:
                await asyncio.sleep(plan.retry_delay(error, target))

    @staticmethod
    async def _finish(call: _AsyncCall, plan: CallPlan):
        payloads: list[bytes] = []
        while True:
            kind, value = await call.next_event(plan.deadline)
            if kind == MESSAGE:
                payloads.append(value)
            elif kind == FAILED:
                raise value
            else:
                return P.unary_result(plan.method, plan.request, payloads, value)

    async def _unary_chunks(self, method: P.Method, requests: list, offsets: list[int], combine: Callable,
                            timeout: float | None, metadata):
        plan_timeout = self.timeout if timeout is None else timeout
        deadline = None if plan_timeout is None else time.monotonic() + plan_timeout
        answers = []
        for offset, request in zip(offsets, requests):
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                answers.append((offset, await self._unary(method, request, remaining, metadata)))
            except RpcError as error:
                raise chunk_failed(error, offset) from None
        return combine(answers)

    def _stream(self, method: P.Method, request, timeout: float | None, metadata):
        plan = CallPlan.of(self, method, request, timeout, metadata)
        return (AsyncRecommendStream if method is P.RECOMMEND_STREAM else AsyncServerStream)(self, plan)

    async def ping(self, timeout: float = 5.0) -> float:
        connection = await self._connection(self._pick(frozenset()))
        return await connection.ping(timeout)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._background.values()):
            task.cancel()
        connections, self._connections = self._connections, [None] * len(self.targets)
        for connection in connections:
            if connection is not None:
                await connection.close(RpcError(StatusCode.CANCELLED, "the client was closed"))

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.address!r})"
