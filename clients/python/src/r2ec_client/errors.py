"""Status codes and the exception a failed call raises: `RpcError` carries the gRPC canonical code by name
(`.code`, e.g. "INVALID_ARGUMENT"), its number (`.code_value`), the server's `.message` and the request `.field` at
fault (docs/protocol.md, "Status codes")."""
from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """gRPC's 17 canonical status codes, numbered as on the wire."""
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


def code_name(value: int) -> str:
    """The canonical name of a numeric code; a number outside 0..16 reads as "UNKNOWN(n)" rather than failing."""
    try:
        return StatusCode(value).name
    except ValueError:
        return f"UNKNOWN({value})"


class RpcError(Exception):
    """A call that ended with a non-OK status, from the server's TRAILER or decided locally (deadline, lost
    connection, GOAWAY)."""

    def __init__(self, code: int | str | StatusCode, message: str = "", field: str = "") -> None:
        if isinstance(code, str):
            code = StatusCode[code]
        self.code_value = int(code)
        self.code = code_name(self.code_value)
        self.message = message
        self.field = field
        text = f"{self.code}: {message}" if message else self.code
        if field:
            text += f" (field {field})"
        super().__init__(text)

    @classmethod
    def from_status(cls, status) -> "RpcError":
        """From an `r2ec.v1.Status` message."""
        return cls(status.code, status.message, status.field)

    def __repr__(self) -> str:
        return f"RpcError(code={self.code!r}, message={self.message!r}, field={self.field!r})"


class ProtocolError(Exception):
    """Bytes that break the framing rules (bad magic, version, type or length): the connection cannot go on."""
