"""A scripted in-process r2ec peer for tests that need a server to misbehave (or just answer) on cue: each accepted
connection runs a test-supplied script against a `Peer` that reads calls and writes frames."""
from __future__ import annotations

import queue
import socket
import threading
import time

from r2ec_client import frames as F
from r2ec_client._proto import health_pb2, wire_pb2

WAIT = 10.0
SERVING = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING).SerializeToString()


class Peer:
    """One accepted connection of the scripted server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(WAIT)

    def frame(self) -> F.Frame | None:
        return F.read_frame(self.sock)

    def call(self) -> tuple[int, wire_pb2.CallHeader, bytes]:
        """Reads a CALL and its MESSAGE: (stream id, header, request payload)."""
        call = self.frame()
        assert call is not None and call.type == F.FrameType.CALL, call
        message = self.frame()
        assert message.type == F.FrameType.MESSAGE and message.stream_id == call.stream_id and message.end_stream
        return call.stream_id, wire_pb2.CallHeader.FromString(call.payload), message.payload

    def send(self, frame_type: int, stream_id: int, payload: bytes = b"", flags: int = 0) -> None:
        self.sock.sendall(F.encode_frame(frame_type, stream_id, payload, flags))

    def answer(self, stream_id: int, payload: bytes | None, code: int = 0, message: str = "", field: str = "",
               metadata=()):
        if payload is not None:
            self.send(F.FrameType.MESSAGE, stream_id, payload)
        status = wire_pb2.Status(code=code, message=message, field=field,
                                 metadata=[wire_pb2.MetadataEntry(key=k, value=v) for k, v in metadata])
        status = status.SerializeToString()
        self.send(F.FrameType.TRAILER, stream_id, status)


class ScriptedServer:
    """Accepts connections and runs `script(peer, index)` for each in its own thread; failures are re-raised by
    `check()`."""

    def __init__(self, script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.script = script
        self.errors: queue.SimpleQueue = queue.SimpleQueue()
        self.done = threading.Event()
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        index = 0
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._run, args=(Peer(sock), index), daemon=True)
            thread.start()  # before it is listed: check() may join the list at any moment
            self.threads.append(thread)
            index += 1

    def _run(self, peer: Peer, index: int) -> None:
        try:
            self.script(peer, index)
        except BaseException as error:  # noqa: BLE001 - reported to the test thread
            self.errors.put(error)
        finally:
            peer.sock.close()

    def check(self) -> None:
        """Joins every connection's script (a connection still in the accept backlog gets a moment to show up),
        closes the listener, and re-raises the first failure of a script."""
        joined = 0
        while True:
            listed = list(self.threads)
            for thread in listed[joined:]:
                thread.join(WAIT)
            joined = len(listed)
            time.sleep(0.05)
            if len(self.threads) == joined:
                break
        self.listener.close()
        if not self.errors.empty():
            raise self.errors.get()
