"""The r2ec frame codec (docs/protocol.md, "Frames"): a 16-byte big-endian header (magic "R2EC", version 1, type,
flags, stream id, length) followed by `length` payload bytes. Pure bytes, no protobuf and no I/O besides
`read_frame`; the encoders accept out-of-range values on purpose so tests can build malformed traffic."""
from __future__ import annotations

import enum
import socket
import struct
from dataclasses import dataclass

from .errors import ProtocolError

MAGIC = b"R2EC"
VERSION = 1
HEADER_SIZE = 16
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
MAX_STREAM_ID = 2**31 - 1
FLAG_END_STREAM = 0x0001

_HEADER = struct.Struct(">4sBBHII")


class FrameType(enum.IntEnum):
    CALL = 0x01
    MESSAGE = 0x02
    TRAILER = 0x03
    CANCEL = 0x04
    PING = 0x05
    PONG = 0x06
    GOAWAY = 0x07


CONNECTION_FRAME_TYPES = frozenset({FrameType.PING, FrameType.PONG, FrameType.GOAWAY})


@dataclass(frozen=True)
class FrameHeader:
    magic: bytes
    version: int
    type: int
    flags: int
    stream_id: int
    length: int

    @property
    def end_stream(self) -> bool:
        return bool(self.flags & FLAG_END_STREAM)


@dataclass(frozen=True)
class Frame:
    type: int
    flags: int
    stream_id: int
    payload: bytes = b""

    @property
    def end_stream(self) -> bool:
        return bool(self.flags & FLAG_END_STREAM)

    def encode(self) -> bytes:
        return encode_frame(self.type, self.stream_id, self.payload, self.flags)

    def __repr__(self) -> str:
        try:
            kind = FrameType(self.type).name
        except ValueError:
            kind = f"0x{self.type:02x}"
        return f"Frame({kind}, stream={self.stream_id}, flags={self.flags:#x}, payload={self.payload[:32]!r})"


def encode_header(frame_type: int, stream_id: int, length: int, flags: int = 0, *,
                  magic: bytes = MAGIC, version: int = VERSION) -> bytes:
    """The 16 header bytes. Any value that fits its field is accepted (tests send wrong magic, versions, types)."""
    return _HEADER.pack(magic, version, int(frame_type), flags, stream_id, length)


def encode_frame(frame_type: int, stream_id: int, payload: bytes = b"", flags: int = 0, *,
                 magic: bytes = MAGIC, version: int = VERSION, length: int | None = None) -> bytes:
    """Header plus payload; `length` overrides the header's length field (to lie about it in tests)."""
    declared = len(payload) if length is None else length
    return encode_header(frame_type, stream_id, declared, flags, magic=magic, version=version) + bytes(payload)


def decode_header(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> FrameHeader:
    """Parses and checks the first 16 bytes of `data`: magic, version, known type, length <= max_frame.
    Raises ProtocolError naming the broken rule."""
    if len(data) < HEADER_SIZE:
        raise ValueError(f"a frame header is {HEADER_SIZE} bytes, got {len(data)}")
    magic, version, frame_type, flags, stream_id, length = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise ProtocolError(f"wrong magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version}, expected {VERSION}")
    if frame_type not in FrameType._value2member_map_:
        raise ProtocolError(f"unknown frame type 0x{frame_type:02x}")
    if length > max_frame:
        raise ProtocolError(f"frame length {length} over the limit {max_frame}")
    return FrameHeader(magic, version, frame_type, flags, stream_id, length)


class FrameDecoder:
    """Incremental decoder, two states: waiting for a header / waiting for a payload of N bytes. `feed` takes any
    chunk of bytes and returns every frame completed by it; an over-limit length is refused on the header alone,
    before any room for the payload is taken."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        self._header: FrameHeader | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned frame (non-zero at EOF means a truncated frame)."""
        return len(self._buffer) + (HEADER_SIZE if self._header is not None else 0)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        cursor = 0
        while True:
            if self._header is None:
                if len(self._buffer) - cursor < HEADER_SIZE:
                    break
                self._header = decode_header(bytes(self._buffer[cursor:cursor + HEADER_SIZE]), self.max_frame)
                cursor += HEADER_SIZE
            needed = self._header.length
            if len(self._buffer) - cursor < needed:
                break
            payload = bytes(self._buffer[cursor:cursor + needed])
            cursor += needed
            frames.append(Frame(self._header.type, self._header.flags, self._header.stream_id, payload))
            self._header = None
        del self._buffer[:cursor]  # compact once per feed
        return frames


def _recv_exactly(sock: socket.socket, count: int, *, at_boundary: bool) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        if not chunk:
            if at_boundary and not chunks:
                return None
            raise ConnectionError(f"connection closed inside a frame ({len(chunks)} of {count} bytes)")
        chunks += chunk
    return bytes(chunks)


def read_frame(sock: socket.socket, max_frame: int = 1 << 30) -> Frame | None:
    """Reads one whole frame from a blocking socket; None on a clean EOF between frames."""
    header_bytes = _recv_exactly(sock, HEADER_SIZE, at_boundary=True)
    if header_bytes is None:
        return None
    header = decode_header(header_bytes, max_frame)
    payload = _recv_exactly(sock, header.length, at_boundary=False) if header.length else b""
    return Frame(header.type, header.flags, header.stream_id, payload)
