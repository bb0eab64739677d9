"""Where a call goes and whether it is sent again, without I/O (the clock aside) (shared by the threaded and asyncio clients).

`TargetPool` spreads calls round-robin over the client's targets ("host:port" addresses) that have a connection
ready; the others are connected in the background (a dead host that drops SYNs never holds a call while another
target is ready), and a target whose connection attempt failed waits out a backoff (doubling per failure, capped).

`Attempts` decides, after a failed attempt, whether and when to send the call again, as gRPC does:
- a call the server provably never processed (it was above a GOAWAY's last_stream_id, or no connection could be
  opened to send it) is sent again for every method, at once, preferably to another target ("transparent retry");
- a call that failed UNAVAILABLE after the server may have acted on it (connection lost, the server or its store
  unavailable) is sent again only when its method is idempotent for that request (reads; upserts and deletes; a
  RecordEvents whose every event has an idempotency key), after an exponential backoff with jitter;
- never past the call's deadline, never more than `max_attempts` sends in all; every other status is final."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

from .errors import RpcError, StatusCode


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts every send of a call (1 = never send twice). Backoff before the n-th resend of an
    idempotent call: uniform in [0, min(max_backoff, initial_backoff * multiplier**(n-1))] ("full jitter")."""
    max_attempts: int = 5
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    retryable_codes: frozenset = field(default_factory=lambda: frozenset({StatusCode.UNAVAILABLE}))
    # A target that refused a connection is skipped for this long, doubled per further refusal, capped.
    connect_backoff: float = 0.2
    max_connect_backoff: float = 5.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.initial_backoff, self.max_backoff, self.connect_backoff, self.max_connect_backoff) < 0:
            raise ValueError("backoffs must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")


NO_RETRY = RetryPolicy(max_attempts=1)


class TargetPool:
    """Round-robin over targets, with a per-target connect backoff. Not thread-safe: the caller serialises."""

    def __init__(self, count: int, policy: RetryPolicy) -> None:
        self._count = count
        self._policy = policy
        self._next = 0
        self._down_until = [0.0] * count
        self._refusals = [0] * count

    def pick(self, now: float, avoid: set[int] = frozenset(), ready: Sequence[bool] | None = None) -> int:
        """The next target, in round-robin order among the best kind available: one not in `avoid` (unless all
        are); of those, one with a connection `ready` to take the call, else one not in its connect backoff, else
        the first to come out of it (tried at once: calls fail fast rather than wait)."""
        order = [(self._next + offset) % self._count for offset in range(self._count)]
        candidates = [index for index in order if index not in avoid] or order
        up = [index for index in candidates if self._down_until[index] <= now]
        connected = [index for index in candidates if ready is not None and ready[index]]
        index = (connected or up or [min(candidates, key=lambda i: self._down_until[i])])[0]
        self._next = (index + 1) % self._count
        return index

    def to_connect(self, now: float, ready: Sequence[bool]) -> list[int]:
        """Targets without a ready connection and out of their backoff: the client connects them in the background,
        so calls keep going to the ready ones meanwhile."""
        return [index for index in range(self._count) if not ready[index] and self._down_until[index] <= now]

    def connected(self, index: int) -> None:
        self._refusals[index] = 0
        self._down_until[index] = 0.0

    def refused(self, index: int, now: float) -> None:
        """A connection attempt to the target failed: skip it for a while."""
        self._refusals[index] += 1
        backoff = self._policy.connect_backoff * 2 ** (self._refusals[index] - 1)
        self._down_until[index] = now + min(self._policy.max_connect_backoff, backoff)


def connect_timeout(limit: float | None, deadline: float | None) -> float | None:
    """How long opening a connection may take: the client's limit, cut to the call's time left (a target that drops
    SYNs must not hold a call past its deadline)."""
    if deadline is None:
        return limit
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise RpcError(StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before a connection was made")
    return remaining if limit is None else min(remaining, limit)


class Attempts:
    """The retry state of one call."""

    def __init__(self, policy: RetryPolicy, idempotent: bool, deadline: float | None) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.deadline = deadline
        self.sent = 0
        self.avoid: set[int] = set()  # targets that failed this call: the next attempt prefers others
        self._resends = 0  # attempts after an unknown outcome, for the backoff's exponent

    def delay_after(self, error: RpcError, target: int, now: float, rng: random.Random = random) -> float | None:
        """After an attempt on `target` failed with `error`: seconds to wait before the next attempt, or None when
        the error is final."""
        self.sent += 1
        if self.sent >= self.policy.max_attempts or error.code() not in self.policy.retryable_codes:
            return None
        if error.not_processed:
            delay = 0.0
        elif self.idempotent:
            self._resends += 1
            ceiling = self.policy.initial_backoff * self.policy.multiplier ** (self._resends - 1)
            delay = rng.uniform(0, min(self.policy.max_backoff, ceiling))
        else:
            return None
        if self.deadline is not None and now + delay >= self.deadline:
            return None
        self.avoid.add(target)
        return delay
