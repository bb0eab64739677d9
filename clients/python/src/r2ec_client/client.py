"""The blocking client: `Client("127.0.0.1:7878", token=None, timeout=None)` keeps one TCP connection per target on
which any number of threads make calls at once (docs/protocol.md); with several targets, calls are spread over them
round-robin. A reader thread per connection demultiplexes frames to per-call queues and answers PINGs; a writer
thread owns the socket's send side, so no caller (and never the reader) blocks on a server that has stopped
reading. After a GOAWAY or a lost connection, the next call opens a new connection; failed calls are sent again
where `_retry` allows it."""
from __future__ import annotations

import os
import queue
import socket
import threading
import time
from typing import Any, Callable, Sequence

from . import protocol as P
from . import requests as R
from ._api import CallMethods, CallPlan, chunk_failed
from ._proto import wire_pb2
from ._retry import RetryPolicy, TargetPool, connect_timeout
from .errors import ProtocolError, RpcError, StatusCode
from ._core import FAILED as _FAILED, MESSAGE as _MESSAGE, TRAILER as _TRAILER, ConnectionState, Effects
from .frames import FrameType, encode_frame

# Responses may be bigger than the server's request limit; this only guards against a broken peer.
CLIENT_MAX_FRAME = 64 * 1024 * 1024

_HALF_CLOSE = object()  # writer-queue sentinel: flush, then shut the write side
_STOP = object()  # writer-queue sentinel: the connection is dead


class _Unusable(Exception):
    """The connection takes no new call (GOAWAY seen, stream ids used up, or dead): open another."""


class _Call:
    """One call in flight: its stream id and the queue of events the reader thread fills."""

    def __init__(self, connection: "_Connection", stream_id: int) -> None:
        self.connection = connection
        self.stream_id = stream_id
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.finished = False

    def next_event(self, deadline: float | None) -> tuple[str, Any]:
        """(kind, value): a MESSAGE payload, the TRAILER's Status, or an RpcError decided locally. Past the deadline
        the call is cancelled on the wire and DEADLINE_EXCEEDED raised."""
        try:
            if deadline is None:
                event = self.events.get()
            else:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.cancel()
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the server answered") from None
        if event[0] != _MESSAGE:
            self.finished = True
        return event

    def cancel(self) -> None:
        if not self.finished:
            self.finished = True
            self.connection.cancel(self.stream_id)


class _Connection:
    """One TCP connection: its ConnectionState under a lock, and the reader and writer threads."""

    def __init__(self, host: str, port: int, connect_timeout: float | None, max_frame: int) -> None:
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as error:
            raise RpcError(StatusCode.UNAVAILABLE, f"cannot connect to {host}:{port}: {error}") from None
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._lock = threading.Lock()  # guards _state and the order of frames put on _outgoing
        self._state = ConnectionState(max_frame)
        self._outgoing: queue.SimpleQueue = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name=f"r2ec-writer-{host}:{port}", daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name=f"r2ec-reader-{host}:{port}", daemon=True)
        self._writer.start()
        self._reader.start()

    @property
    def usable(self) -> bool:
        with self._lock:
            return self._state.usable

    @property
    def goaway(self) -> wire_pb2.GoAway | None:
        return self._state.goaway

    def start(self, method_path: str, request: bytes, deadline: float | None,
              metadata: list[tuple[str, str]]) -> _Call:
        with self._lock:
            if not self._state.usable:
                raise _Unusable()
            call = _Call(self, self._state.next_stream_id())
            self._state.calls[call.stream_id] = call
            # Encoded and queued under the lock, so ids reach the wire strictly increasing.
            self._outgoing.put(P.encode_call(call.stream_id, method_path, request, P.timeout_ms_for(deadline),
                                             metadata))
        return call

    def cancel(self, stream_id: int) -> None:
        with self._lock:
            frame = self._state.forget(stream_id)
            if frame is not None:
                self._outgoing.put(frame)

    def ping(self, timeout: float) -> float:
        payload = os.urandom(8)
        answered = threading.Event()
        with self._lock:
            if self._state.failure is not None:
                raise self._state.failure.copy()
            self._state.pings[payload] = answered
            self._outgoing.put(encode_frame(FrameType.PING, 0, payload))
        started = time.monotonic()
        if not answered.wait(timeout):
            with self._lock:
                self._state.pings.pop(payload, None)
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, f"no PONG within {timeout} s")
        if self._state.failure is not None:
            raise self._state.failure.copy()
        return time.monotonic() - started

    def retire(self) -> None:
        """No more calls will be started here: half-close, so the server answers what is open and closes."""
        self._outgoing.put(_HALF_CLOSE)

    def close(self, reason: RpcError) -> None:
        self._fail(reason)
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5)

    # -- threads --------------------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            item = self._outgoing.get()
            batch: list[bytes] = []
            while isinstance(item, bytes):  # coalesce whatever else is queued into one send
                batch.append(item)
                try:
                    item = self._outgoing.get_nowait()
                except queue.Empty:
                    item = None
            try:
                if batch:
                    self._sock.sendall(b"".join(batch))
                if item is _HALF_CLOSE:
                    self._sock.shutdown(socket.SHUT_WR)
            except OSError as error:
                self._fail(RpcError(StatusCode.UNAVAILABLE, f"connection lost while sending: {error}"))
                return
            if item is _STOP or item is _HALF_CLOSE:
                return

    def _read_loop(self) -> None:
        reason: RpcError | None = None
        try:
            while True:
                data = self._sock.recv(1 << 16)
                if not data:
                    break
                with self._lock:
                    effects = self._state.receive(data)
                    for reply in effects.replies:
                        self._outgoing.put(reply)
                self._apply(effects)
        except ProtocolError as error:
            reason = RpcError(StatusCode.INTERNAL, f"the server broke the framing: {error}")
        except OSError as error:
            reason = RpcError(StatusCode.UNAVAILABLE, f"connection lost: {error}")
        if reason is None:
            with self._lock:
                reason = self._state.closed_reason()
        self._fail(reason)
        self._writer.join(timeout=5)
        self._sock.close()

    @staticmethod
    def _apply(effects: Effects) -> None:
        for call, event in effects.deliveries:
            call.events.put(event)
        for answered in effects.pongs:
            answered.set()

    def _fail(self, reason: RpcError) -> None:
        """The connection is dead: every call and ping still waiting gets `reason`; both threads wind down."""
        with self._lock:
            effects = self._state.fail(reason)
            self._outgoing.put(_STOP)
        self._apply(effects)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class ServerStream:
    """Iterator over a server-streaming call's messages. Ends when the call ends OK, raises RpcError otherwise; a
    stream that failed before its first message is reopened when the retry rules allow (see `_retry`).
    `cancel()` (or leaving a `with` block, or dropping the iterator early) sends CANCEL. After the end,
    `trailing_metadata()` has the TRAILER's metadata."""

    def __init__(self, client: "Client", plan: CallPlan) -> None:
        self._client = client
        self._plan = plan
        self._call, self._target = client._open(plan)
        self._received = False
        self._done = False
        self._trailing: tuple = ()

    def __iter__(self) -> "ServerStream":
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        while True:
            try:
                kind, value = self._call.next_event(self._plan.deadline)
                if kind == _MESSAGE:
                    self._received = True
                    return P.stream_message(self._plan.method, self._plan.request, value)
            except BaseException:
                self.cancel()
                raise
            if kind == _TRAILER:
                self._trailing = P.trailing_metadata(value)
                error = P.status_error(value)
                if error is None:
                    self._done = True
                    raise StopIteration
            else:
                error = value
            self._reopen_or_raise(error)

    def _reopen_or_raise(self, error: RpcError) -> None:
        if self._received:
            self._done = True
            raise error
        try:
            time.sleep(self._plan.retry_delay(error, self._target))
            self._call, self._target = self._client._open(self._plan)
        except BaseException:
            self._done = True
            raise

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._call.cancel()

    def __enter__(self) -> "ServerStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.cancel()

    def __del__(self) -> None:
        try:
            self.cancel()
        except Exception:
            pass


class RecommendStream(ServerStream):
    """RecommendStream's iterator: reasoning deltas (str), then the final Recommendation. After the loop, `.result`
    holds the Recommendation and `.reasoning` the concatenated deltas."""

    def __init__(self, *args) -> None:
        self.result = None
        self._deltas: list[str] = []
        super().__init__(*args)

    @property
    def reasoning(self) -> str:
        return "".join(self._deltas)

    def __next__(self):
        event = super().__next__()
        if isinstance(event, str):
            self._deltas.append(event)
        else:
            self.result = event
        return event

    def collect(self):
        """Runs the stream to its end and returns the final Recommendation."""
        for _ in self:
            pass
        if self.result is None:
            raise RpcError(StatusCode.INTERNAL, "RecommendStream ended without a result")
        return self.result


class Client(CallMethods):
    """Blocking, thread-safe client. `targets`: one "host:port", several (a list, or separated by commas) over
    which calls are spread round-robin, one multiplexed connection each. `timeout` (seconds) is the default
    deadline of every call; a call's own `timeout=` overrides it; None means no deadline. `retry` says when a failed
    call is sent again (RetryPolicy(max_attempts=1): never)."""

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
        self._lock = threading.Lock()  # guards the pool, the connection list and _closed
        self._pool = TargetPool(len(self.targets), retry)
        self._connections: list[_Connection | None] = [None] * len(self.targets)
        self._connecting = [threading.Lock() for _ in self.targets]  # one connection attempt per target at once
        self._closed = False
        self._background: set[int] = set()  # targets being connected by a background thread
        failure = None
        for index in range(len(self.targets)):  # one connection now, so a wrong address fails here
            try:
                self._connection(index)
                break
            except RpcError as error:
                failure = error
        else:
            raise failure
        self._pick(frozenset())  # and the other targets' connections in the background

    @property
    def address(self) -> str:
        return ",".join(self.targets)

    def _connection(self, index: int, deadline: float | None = None) -> _Connection:
        """The target's live connection, opened (again) when there is none or it takes no new call."""
        with self._connecting[index]:
            with self._lock:
                if self._closed:
                    raise RpcError(StatusCode.CANCELLED, "the client is closed")
                current = self._connections[index]
            if current is not None and current.usable:
                return current
            host, port = self._addresses[index]
            try:
                fresh = _Connection(host, port, connect_timeout(self._connect_timeout, deadline), self._max_frame)
            except RpcError as error:
                with self._lock:
                    self._pool.refused(index, time.monotonic())
                error.not_processed = True
                raise
            with self._lock:
                closed = self._closed
                if not closed:
                    self._connections[index] = fresh
                    self._pool.connected(index)
            if closed:
                fresh.close(RpcError(StatusCode.CANCELLED, "the client was closed"))
                raise RpcError(StatusCode.CANCELLED, "the client is closed")
            if current is not None:
                current.retire()
            return fresh

    def _pick(self, avoid) -> int:
        """The target for the next attempt; targets without a ready connection start connecting meanwhile."""
        with self._lock:
            now = time.monotonic()
            ready = [connection is not None and connection.usable for connection in self._connections]
            index = self._pool.pick(now, avoid, ready)
            starting = [i for i in self._pool.to_connect(now, ready) if i != index and i not in self._background]
            self._background.update(starting)
        for target in starting:
            threading.Thread(target=self._connect_in_background, args=(target,), daemon=True,
                             name=f"r2ec-connect-{self.targets[target]}").start()
        return index

    def _connect_in_background(self, index: int) -> None:
        try:
            self._connection(index)
        except RpcError:
            pass  # the pool keeps the target out of rotation for its backoff
        finally:
            with self._lock:
                self._background.discard(index)

    def _open(self, plan: CallPlan) -> tuple[_Call, int]:
        """Starts the call on the next target: (the call, the target's index). A target that cannot be reached
        makes way for the next, as the retry rules allow."""
        while True:
            index = self._pick(plan.attempts.avoid)
            try:
                for _ in range(3):  # a GOAWAY may land between taking the connection and starting the call
                    try:
                        connection = self._connection(index, plan.deadline)
                        return connection.start(plan.method.path, plan.payload, plan.deadline, plan.metadata), index
                    except _Unusable:
                        continue
                error = RpcError(StatusCode.UNAVAILABLE, f"no usable connection to {self.targets[index]}")
                error.not_processed = True
                raise error
            except RpcError as error:
                time.sleep(plan.retry_delay(error, index))

    def _unary(self, method: P.Method, request, timeout: float | None, metadata):
        plan = CallPlan.of(self, method, request, timeout, metadata)
        while True:
            call, target = self._open(plan)
            try:
                return self._finish(call, plan)
            except RpcError as error:
                time.sleep(plan.retry_delay(error, target))

    @staticmethod
    def _finish(call: _Call, plan: CallPlan):
        payloads: list[bytes] = []
        try:
            while True:
                kind, value = call.next_event(plan.deadline)
                if kind == _MESSAGE:
                    payloads.append(value)
                elif kind == _FAILED:
                    raise value
                else:
                    return P.unary_result(plan.method, plan.request, payloads, value)
        except KeyboardInterrupt:
            call.cancel()
            raise

    def _unary_chunks(self, method: P.Method, requests: list, offsets: list[int], combine: Callable,
                      timeout: float | None, metadata):
        plan_timeout = self.timeout if timeout is None else timeout
        deadline = None if plan_timeout is None else time.monotonic() + plan_timeout
        answers = []
        for offset, request in zip(offsets, requests):
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                answers.append((offset, self._unary(method, request, remaining, metadata)))
            except RpcError as error:
                raise chunk_failed(error, offset) from None
        return combine(answers)

    def _stream(self, method: P.Method, request, timeout: float | None, metadata):
        plan = CallPlan.of(self, method, request, timeout, metadata)
        return (RecommendStream if method is P.RECOMMEND_STREAM else ServerStream)(self, plan)

    def call_raw(self, method_path: str, request: bytes, timeout: float | None = None,
                 metadata=None) -> tuple[list[bytes], Any]:
        """Any method by path with a serialized request, sent once: (MESSAGE payloads, Status). For tests and
        methods this client does not know yet."""
        method = P.Method(method_path, object, object, lambda *_: None, idempotent=lambda request: False)
        plan = CallPlan.of(self, method, _Raw(request), timeout, metadata)
        call, _ = self._open(plan)
        payloads = []
        while True:
            kind, value = call.next_event(plan.deadline)
            if kind == _MESSAGE:
                payloads.append(value)
            elif kind == _FAILED:
                raise value
            else:
                return payloads, value

    def ping(self, timeout: float = 5.0) -> float:
        """Round trip of a PING on the next target's connection, in seconds."""
        return self._connection(self._pick(frozenset())).ping(timeout)

    def close(self) -> None:
        """Closes the connections; calls still in flight fail with CANCELLED."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, [None] * len(self.targets)
        for connection in connections:
            if connection is not None:
                connection.close(RpcError(StatusCode.CANCELLED, "the client was closed"))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"


class _Raw:
    """A pre-serialized request, for call_raw."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf name
        return self._payload
