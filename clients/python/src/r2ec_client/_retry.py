"""Where a call goes and whether it is sent again, without I/O (shared by the threaded and asyncio clients).

`TargetPool` spreads calls round-robin over the client's targets ("host:port" addresses), skipping a target whose
last connection attempt failed until its backoff has passed (doubling per failure, capped) while another is up.

`Attempts` decides, after a failed attempt, whether and when to send the call again, as gRPC does:
- a call the server provably never processed (it was above a GOAWAY's last_stream_id, or no connection could be
  opened to send it) is sent again for every method, at once, preferably to another target ("transparent retry");
- a call that failed UNAVAILABLE after the server may have acted on it (connection lost, the server or its store
  unavailable) is sent again only when its method is idempotent for that request (reads; upserts and deletes; a
  RecordEvents whose every event has an idempotency key), after an exponential backoff with jitter;
- never past the call's deadline, never more than `max_attempts` sends in all; every other status is final."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

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

    def pick(self, now: float, avoid: set[int] = frozenset()) -> int:
        """The next target: one not in `avoid` (unless all are), up before down (a down one is tried anyway when
        no other is left: calls fail fast rather than wait); among up ones the round-robin order, among down ones
        the first to come back."""
        order = [(self._next + offset) % self._count for offset in range(self._count)]
        candidates = [index for index in order if index not in avoid] or order
        up = [index for index in candidates if self._down_until[index] <= now]
        index = up[0] if up else min(candidates, key=lambda i: self._down_until[i])
        self._next = (index + 1) % self._count
        return index

    def connected(self, index: int) -> None:
        self._refusals[index] = 0
        self._down_until[index] = 0.0

    def refused(self, index: int, now: float) -> None:
        """A connection attempt to the target failed: skip it for a while."""
        self._refusals[index] += 1
        backoff = self._policy.connect_backoff * 2 ** (self._refusals[index] - 1)
        self._down_until[index] = now + min(self._policy.max_connect_backoff, backoff)


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
