"""Status codes and the exception a failed call raises, shaped like grpcio's (docs/protocol.md, "Status codes"):
`StatusCode` members carry `(number, "words")` as `grpc.StatusCode` does, and `RpcError` answers `.code()`,
`.details()` and `.trailing_metadata()` like a failed grpcio call, plus `.field`, the request field at fault."""
from __future__ import annotations

import enum
from typing import Iterable, Sequence


@enum.unique
class StatusCode(enum.Enum):
    """gRPC's 17 canonical status codes. As in grpcio, `.value` is `(number on the wire, "lower-case words")`;
    `StatusCode.of(number)` maps a wire number back (a number outside 0..16 reads as UNKNOWN, as grpcio does)."""
    OK = (0, "ok")
    CANCELLED = (1, "cancelled")
    UNKNOWN = (2, "unknown")
    INVALID_ARGUMENT = (3, "invalid argument")
    DEADLINE_EXCEEDED = (4, "deadline exceeded")
    NOT_FOUND = (5, "not found")
    ALREADY_EXISTS = (6, "already exists")
    PERMISSION_DENIED = (7, "permission denied")
    RESOURCE_EXHAUSTED = (8, "resource exhausted")
    FAILED_PRECONDITION = (9, "failed precondition")
    ABORTED = (10, "aborted")
    OUT_OF_RANGE = (11, "out of range")
    UNIMPLEMENTED = (12, "unimplemented")
    INTERNAL = (13, "internal")
    UNAVAILABLE = (14, "unavailable")
    DATA_LOSS = (15, "data loss")
    UNAUTHENTICATED = (16, "unauthenticated")

    @classmethod
    def of(cls, code: "int | str | StatusCode") -> "StatusCode":
        """A member from itself, its wire number or its name ("NOT_FOUND")."""
        if isinstance(code, StatusCode):
            return code
        if isinstance(code, str):
            return cls[code]
        return _BY_NUMBER.get(int(code), cls.UNKNOWN)


_BY_NUMBER = {member.value[0]: member for member in StatusCode}

Metadata = Sequence[tuple[str, str]]


def metadata_value(metadata: Iterable[tuple[str, str]], key: str) -> str | None:
    """The last value of `key` in (key, value) pairs, or None."""
    found = None
    for name, value in metadata:
        if name == key:
            found = value
    return found


class RpcError(Exception):
    """A call that ended with a non-OK status: from the server's TRAILER, or decided by the client (an argument it
    refused before sending anything, a deadline, a lost connection, GOAWAY).

        except RpcError as error:
            error.code()               # StatusCode.INVALID_ARGUMENT
            error.details()            # "history: is empty"
            error.field                # "history": the request field at fault, when known
            error.trailing_metadata()  # (("x-request-id", "..."),) as the server sent them
    """

    def __init__(self, code: int | str | StatusCode, details: str = "", field: str = "",
                 trailing_metadata: Metadata = (), *, number: int | None = None) -> None:
        self._code = StatusCode.of(code)
        self._number = self._code.value[0] if number is None else number
        self._details = details
        self.field = field
        self._trailing_metadata = tuple(trailing_metadata)
        # Set by the client on calls the server provably never processed (above a GOAWAY's last_stream_id, or never
        # sent because no connection could be made): retrying those is safe for every method.
        self.not_processed = False
        super().__init__(self._text())

    def code(self) -> StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailing_metadata

    @property
    def request_id(self) -> str | None:
        """The id the server logged the call under (trailing metadata "x-request-id"), when it sent one."""
        return metadata_value(self._trailing_metadata, "x-request-id")

    def copy(self) -> "RpcError":
        """The same error as a new exception object (one failure delivered to many waiting calls, each raising
        its own)."""
        twin = RpcError(self._code, self._details, self.field, self._trailing_metadata, number=self._number)
        twin.not_processed = self.not_processed
        return twin

    @classmethod
    def from_status(cls, status) -> "RpcError":
        """From an `r2ec.v1.Status` message (its code number is kept as sent, even outside 0..16)."""
        return cls(status.code, status.message, status.field,
                   [(entry.key, entry.value) for entry in status.metadata], number=status.code)

    def _text(self) -> str:
        name = self._code.name if self._number == self._code.value[0] else f"UNKNOWN({self._number})"
        text = f"{name}: {self._details}" if self._details else name
        if self.field:
            text += f" (field {self.field})"
        if self.request_id:
            text += f" [request id {self.request_id}]"
        return text

    def __repr__(self) -> str:
        return f"RpcError({self._code}, details={self._details!r}, field={self.field!r})"


def invalid_argument(field: str, problem: str) -> RpcError:
    """The error of an argument the client refuses before sending anything; worded as the server words its own
    ("field: problem")."""
    return RpcError(StatusCode.INVALID_ARGUMENT, f"{field}: {problem}", field)


class ProtocolError(Exception):
    """Bytes that break the framing rules (bad magic, version, type or length): the connection cannot go on."""
