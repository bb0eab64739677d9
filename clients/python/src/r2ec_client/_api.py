"""The public call methods, written once for both clients: each checks its arguments and builds its request (an
argument the client refuses raises RpcError(INVALID_ARGUMENT) before anything is sent), then hands it to the
client's `_unary` (which returns the result, or for AsyncClient an awaitable of it), `_stream` (an iterator, or an
async iterator) or `_unary_chunks` (several calls in order, their answers combined).

Every method takes, keyword-only, `timeout` (seconds: the call's deadline, across retries; default the client's)
and `metadata` ((key, value) pairs or a dict sent in the CALL header; keys lower-case ASCII)."""
from __future__ import annotations

import re
import time
from typing import Sequence

from . import protocol as P
from . import requests as R
from ._proto import admin_pb2, events_pb2
from ._retry import Attempts, RetryPolicy
from .errors import RpcError
from .results import Recorded, Upserted


class CallMethods:
    """Mixin; the host class provides `_unary(method, request, timeout, metadata)`, `_stream(...)` with the same
    arguments, and `_unary_chunks(method, requests, offsets, combine, timeout, metadata)`."""

    # -- Health ---------------------------------------------------------------------------------------------------

    def health(self, service: str = "", *, timeout: float | None = None, metadata=None):
        """The serving state by name: "SERVING", "NOT_SERVING" or "UNKNOWN"; NOT_FOUND for an unknown service."""
        return self._unary(P.HEALTH_CHECK, R.health_request(service), timeout, metadata)

    def watch_health(self, service: str = "", *, timeout: float | None = None, metadata=None):
        """Iterator of state names: the current one at once, then every change until cancelled or the deadline."""
        return self._stream(P.HEALTH_WATCH, R.health_request(service), timeout, metadata)

    # -- Recommender ----------------------------------------------------------------------------------------------

    def recommend(self, history=None, user_id=None, top_k: int = 10, reasoning: bool = False,
                  max_reasoning_tokens: int = 0, temperature: float = 0, top_k_sampling: int = 0, top_p: float = 0,
                  seed: int = 0, exclude: Sequence = (), candidates: Sequence = (), include_seen: bool = False,
                  return_reasoning: bool = False, return_probabilities: bool = False, model: str = "", now=0,
                  priority: int = 0, *, timeout: float | None = None, metadata=None):
        """Ranked items for a user id (the store's latest events of that user, or a user of the training data)
        and/or a history: item ids (int or str), (item_id, unix_time, rating) tuples, dicts, or a DataFrame with
        item_id[, timestamp, rating] columns (unix seconds >= 0; 0 = unknown). `priority` 1 is the most urgent, up
        to the server's --priority-levels, in either mode (0: the server's default, its least urgent level).
        Returns a `Recommendation` (`.items`, `.reasoning`, `.model`, `.model_version`, `.to_pandas()`); an item's
        `probability` is None unless asked for with `return_probabilities` and defined for its rank."""
        request = R.recommend_request(history, user_id, top_k, reasoning, max_reasoning_tokens, temperature,
                                      top_k_sampling, top_p, seed, exclude, candidates, include_seen,
                                      return_reasoning, return_probabilities, model, now, priority)
        return self._unary(P.RECOMMEND, request, timeout, metadata)

    def recommend_stream(self, history=None, user_id=None, top_k: int = 10, reasoning: bool = False,
                         max_reasoning_tokens: int = 0, temperature: float = 0, top_k_sampling: int = 0,
                         top_p: float = 0, seed: int = 0, exclude: Sequence = (), candidates: Sequence = (),
                         include_seen: bool = False, return_reasoning: bool = False,
                         return_probabilities: bool = False, model: str = "", now=0, priority: int = 0, *,
                         timeout: float | None = None, metadata=None):
        """Like recommend, but an iterator: reasoning text deltas (str) as the model writes them, then the final
        `Recommendation`, which also stays on the iterator's `.result`:

            for event in client.recommend_stream(history=[50, 172], reasoning=True):
                if isinstance(event, str):
                    print(event, end="", flush=True)
        """
        request = R.recommend_request(history, user_id, top_k, reasoning, max_reasoning_tokens, temperature,
                                      top_k_sampling, top_p, seed, exclude, candidates, include_seen,
                                      return_reasoning, return_probabilities, model, now, priority)
        return self._stream(P.RECOMMEND_STREAM, request, timeout, metadata)

    def recommend_batch(self, requests, *, timeout: float | None = None, metadata=None):
        """Many Recommend requests in one call, each a dict of recommend()'s keyword arguments. Returns
        `BatchRecommendations`: per request a `Recommendation`, or that element's `RpcError` (returned, not
        raised)."""
        return self._unary(P.RECOMMEND_BATCH, R.batch_request(requests), timeout, metadata)

    def score_items(self, item_ids, history=None, user_id=None, return_probabilities: bool = False,
                    model: str = "", now=0, *, timeout: float | None = None, metadata=None):
        """Scores of the given items for a history/user, in the order asked (`.rank` is their rank among them)."""
        request = R.score_items_request(item_ids, history, user_id, return_probabilities, model, now)
        return self._unary(P.SCORE_ITEMS, request, timeout, metadata)

    def similar_items(self, item_id, top_k: int = 10, model: str = "", *, timeout: float | None = None,
                      metadata=None):
        """Nearest neighbours of an item (itself excluded), ranked by the model's similarity."""
        return self._unary(P.SIMILAR_ITEMS, R.similar_items_request(item_id, top_k, model), timeout, metadata)

    def get_items(self, item_ids, model: str = "", *, timeout: float | None = None, metadata=None):
        """Catalogue entries (`Items` of `Item`: title, year, genres, metadata, ...) for item ids, in the order
        asked."""
        return self._unary(P.GET_ITEMS, R.get_items_request(item_ids, model), timeout, metadata)

    def search_items(self, query: str = "", genres=(), *, min_year: int = 0, max_year: int = 0,
                     metadata_equals=None, limit: int = 20, offset: int = 0, model: str = "",
                     timeout: float | None = None, metadata=None):
        """Catalogue items matching every filter given: `query` a case-insensitive title substring, every genre of
        `genres`, release years within `min_year`..`max_year` (0 = unbounded), and `metadata_equals` {key: value} against
        the items' metadata JSON (`metadata_equals={"studio": "Pixar"}`: strings compared as text, numbers, bools and
        None by their JSON text). Returns `FoundItems` (most-rated first; `.total_matches`; page with `offset`).
        `metadata` is the call's metadata, as in every method."""
        return self._unary(P.SEARCH_ITEMS, R.search_items_request(query, genres, min_year, max_year, metadata_equals,
                                                                  limit, offset, model), timeout, metadata)

    def model_info(self, model: str = "", *, timeout: float | None = None, metadata=None):
        """The `ModelInfo` of a model (default: the server's default), with `.loaded` and `.default_model`."""
        return self._unary(P.MODEL_INFO, R.model_info_request(model), timeout, metadata)

    # -- Events (the live store) ----------------------------------------------------------------------------------

    def record_events(self, events, *, batch_size: int | None = None, timeout: float | None = None,
                      metadata=None):
        """Records what users did. `events`: a DataFrame with the columns user_id, item_id (required), timestamp
        (unix seconds or datetimes; missing = the server's clock), kind ("" = interaction), rating (missing = none),
        idempotency_key; or a list of dicts with those keys, of tuples in that order, or of `Event`s. Returns
        `Recorded` (.recorded, .duplicates, .duplicate_indices) once the store committed them.

        One call is all-or-nothing (the server refuses the whole batch over one bad event). With `batch_size`, the
        events go in consecutive calls of at most that many: every event is checked before the first call, but a
        call refused by the server leaves the earlier ones stored (its error names the event by its index in
        `events`). Calls whose every event has an idempotency key are retried after a lost connection."""
        messages = R.record_events_messages(events)
        chunks = _chunks(messages, batch_size, "batch_size")
        if len(chunks) == 1:
            return self._unary(P.RECORD_EVENTS, events_pb2.RecordEventsRequest(events=messages), timeout, metadata)
        return self._unary_chunks(P.RECORD_EVENTS, [events_pb2.RecordEventsRequest(events=c) for _, c in chunks],
                                  [offset for offset, _ in chunks], Recorded.combine, timeout, metadata)

    def upsert_items(self, items, *, batch_size: int | None = None, timeout: float | None = None, metadata=None):
        """Creates or replaces catalogue items. `items`: a DataFrame with the columns item_id, title (required),
        year, genres (a list, or "A|B"), description, metadata (a dict, or a JSON object's text; the column may be
        called metadata_json); or a list of dicts with those keys or tuples in that order. Returns `Upserted`
        (.created, .updated, .catalog_version, .encoded_by: the models that can recommend them at once).
        `batch_size` splits as for record_events."""
        messages = R.upsert_items_messages(items)
        chunks = _chunks(messages, batch_size, "batch_size")
        if len(chunks) == 1:
            return self._unary(P.UPSERT_ITEMS, events_pb2.UpsertItemsRequest(items=messages), timeout, metadata)
        return self._unary_chunks(P.UPSERT_ITEMS, [events_pb2.UpsertItemsRequest(items=c) for _, c in chunks],
                                  [offset for offset, _ in chunks], Upserted.combine, timeout, metadata)

    def get_history(self, user_id, limit: int = 0, *, timeout: float | None = None, metadata=None):
        """The user's latest `limit` events (0: the server's default of 100; at most 10,000), oldest first, as a
        `History` (.events, .total: every event the store holds for the user, .to_pandas())."""
        return self._unary(P.GET_USER_HISTORY, R.history_request(user_id, limit), timeout, metadata)

    def delete_user(self, user_id, *, timeout: float | None = None, metadata=None):
        """Erases the user's events and every cached copy (privacy requests). Returns `DeletedUser`
        (.deleted_events)."""
        return self._unary(P.DELETE_USER, R.delete_user_request(user_id), timeout, metadata)

    # -- Admin ----------------------------------------------------------------------------------------------------

    def load_model(self, name: str, path: str, make_default: bool = False, *, timeout: float | None = None,
                   metadata=None):
        """Loads (or hot-reloads) a model under `name`; needs an admin token when the server runs with auth. The
        server loads one model at a time; with 4 loads already queued or loading it answers RESOURCE_EXHAUSTED at
        once (retry later)."""
        request = admin_pb2.LoadModelRequest(name=R.text("name", name), path=R.text("path", path),
                                             make_default=R.flag("make_default", make_default))
        return self._unary(P.LOAD_MODEL, request, timeout, metadata)

    def unload_model(self, name: str, *, timeout: float | None = None, metadata=None):
        return self._unary(P.UNLOAD_MODEL, admin_pb2.UnloadModelRequest(name=R.text("name", name)), timeout,
                           metadata)


def _chunks(messages: list, batch_size: int | None, field: str) -> list[tuple[int, list]]:
    """(offset, messages) runs of at most batch_size (None: one run)."""
    if batch_size is None:
        return [(0, messages)]
    size = R.uint32(field, batch_size)
    if size == 0:
        raise R.invalid_argument(field, "must be at least 1")
    return [(offset, messages[offset:offset + size]) for offset in range(0, len(messages), size)]


_INDEXED = re.compile(r"^(\w+)\[(\d+)\]")


def chunk_failed(error: RpcError, offset: int) -> RpcError:
    """The error of the chunk starting at `offset`, its field and message re-indexed into the whole input
    ("events[3].kind" of the chunk at 2000 becomes "events[2003].kind"), saying what earlier chunks did."""
    def shift(text: str) -> str:
        return _INDEXED.sub(lambda m: f"{m.group(1)}[{int(m.group(2)) + offset}]", text, count=1)
    note = f" (the {offset} rows before this call's were stored by earlier calls)" if offset else ""
    rebased = RpcError(error.code(), shift(error.details()) + note, shift(error.field), error.trailing_metadata())
    rebased.not_processed = error.not_processed
    return rebased


class CallPlan:
    """One call as both clients carry it out: the request's bytes, the absolute deadline (over every attempt), the
    metadata to send, and its retry state."""

    def __init__(self, method: P.Method, request, deadline: float | None, metadata: list[tuple[str, str]],
                 policy: RetryPolicy) -> None:
        self.method = method
        self.request = request
        self.payload = request.SerializeToString()
        self.deadline = deadline
        self.metadata = metadata
        self.attempts = Attempts(policy, method.idempotent(request), deadline)

    @classmethod
    def of(cls, client, method: P.Method, request, timeout, metadata) -> "CallPlan":
        """Checks the call's own timeout and metadata (INVALID_ARGUMENT before anything is sent)."""
        timeout = client.timeout if timeout is None else R.timeout_seconds(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        return cls(method, request, deadline, P.call_metadata(client._metadata, R.metadata(metadata)), client.retry)

    def retry_delay(self, error: RpcError, target: int) -> float:
        """Seconds to wait before the next attempt; raises `error` when it is final."""
        delay = self.attempts.delay_after(error, target, time.monotonic())
        if delay is None:
            raise error
        return delay
