"""The public call methods, written once for both clients: each builds its request and hands it to the client's
`_unary` (which returns the result, or for AsyncClient an awaitable of it) or `_stream` (an iterator, or an async
iterator). So `Client.recommend(...)` and `await AsyncClient.recommend(...)` take the same arguments."""
from __future__ import annotations

from typing import Iterable, Sequence

from . import protocol as P


class CallMethods:
    """Mixin; the host class provides `_unary(method, request, timeout)` and `_stream(method, request, timeout)`."""

    # -- Health ---------------------------------------------------------------------------------------------------

    def health(self, service: str = "", timeout: float | None = None):
        """The serving state by name: "SERVING", "NOT_SERVING" or "UNKNOWN"; NOT_FOUND for an unknown service."""
        return self._unary(P.HEALTH_CHECK, P.HEALTH_CHECK.request_type(service=service), timeout)

    def watch_health(self, service: str = "", timeout: float | None = None):
        """Iterator of state names: the current one at once, then every change until cancelled or the deadline."""
        return self._stream(P.HEALTH_WATCH, P.HEALTH_WATCH.request_type(service=service), timeout)

    # -- Recommender ----------------------------------------------------------------------------------------------

    def recommend(self, history=None, user_id=None, top_k: int = 10, reasoning: bool = False,
                  max_reasoning_tokens: int = 0, temperature: float = 0, top_k_sampling: int = 0, top_p: float = 0,
                  seed: int = 0, exclude: Sequence = (), candidates: Sequence = (), include_seen: bool = False,
                  return_reasoning: bool = False, return_probabilities: bool = False, model: str = "", now: int = 0,
                  timeout: float | None = None):
        """Ranked items for a history (item ids, int or str, or (item_id, unix_time, rating) tuples) and/or a known
        user id. Returns a `Recommendation` (`.items`, `.reasoning`, `.model`)."""
        request = P.recommend_request(history, user_id, top_k, reasoning, max_reasoning_tokens, temperature,
                                      top_k_sampling, top_p, seed, exclude, candidates, include_seen,
                                      return_reasoning, return_probabilities, model, now)
        return self._unary(P.RECOMMEND, request, timeout)

    def recommend_stream(self, history=None, user_id=None, top_k: int = 10, reasoning: bool = False,
                         max_reasoning_tokens: int = 0, temperature: float = 0, top_k_sampling: int = 0,
                         top_p: float = 0, seed: int = 0, exclude: Sequence = (), candidates: Sequence = (),
                         include_seen: bool = False, return_reasoning: bool = False,
                         return_probabilities: bool = False, model: str = "", now: int = 0,
                         timeout: float | None = None):
        """Like recommend, but an iterator: reasoning text deltas (str) as the model writes them, then the final
        `Recommendation`, which also stays on the iterator's `.result`:

            for event in client.recommend_stream(history=[50, 172], reasoning=True):
                if isinstance(event, str):
                    print(event, end="", flush=True)
        """
        request = P.recommend_request(history, user_id, top_k, reasoning, max_reasoning_tokens, temperature,
                                      top_k_sampling, top_p, seed, exclude, candidates, include_seen,
                                      return_reasoning, return_probabilities, model, now)
        return self._stream(P.RECOMMEND_STREAM, request, timeout)

    def recommend_batch(self, requests: Iterable[dict], timeout: float | None = None):
        """Many Recommend requests in one call, each a dict of recommend()'s keyword arguments. Returns one element
        per request: a `Recommendation`, or that element's `RpcError` (returned, not raised)."""
        return self._unary(P.RECOMMEND_BATCH, P.batch_request(requests), timeout)

    def score_items(self, item_ids: Sequence, history=None, user_id=None, return_probabilities: bool = False,
                    model: str = "", now: int = 0, timeout: float | None = None):
        """Scores of the given items for a history/user, in the order asked (`.rank` is their rank among them)."""
        request = P.score_items_request(item_ids, history, user_id, return_probabilities, model, now)
        return self._unary(P.SCORE_ITEMS, request, timeout)

    def similar_items(self, item_id, top_k: int = 10, model: str = "", timeout: float | None = None):
        """Nearest neighbours of an item (itself excluded), ranked."""
        return self._unary(P.SIMILAR_ITEMS, P.similar_items_request(item_id, top_k, model), timeout)

    def get_items(self, item_ids, model: str = "", timeout: float | None = None):
        """Catalogue entries (`Item`: title, year, genres, ...) for item ids, in the order asked."""
        return self._unary(P.GET_ITEMS, P.get_items_request(item_ids, model), timeout)

    def model_info(self, model: str = "", timeout: float | None = None):
        """The `ModelInfo` of a model (default: the server's default), with `.loaded` and `.default_model`."""
        return self._unary(P.MODEL_INFO, P.MODEL_INFO.request_type(model=model), timeout)

    # -- Admin ----------------------------------------------------------------------------------------------------

    def load_model(self, name: str, path: str, make_default: bool = False, timeout: float | None = None):
        """Loads (or hot-reloads) a model under `name`; needs an admin token when the server runs with auth."""
        request = P.LOAD_MODEL.request_type(name=name, path=path, make_default=make_default)
        return self._unary(P.LOAD_MODEL, request, timeout)

    def unload_model(self, name: str, timeout: float | None = None):
        return self._unary(P.UNLOAD_MODEL, P.UNLOAD_MODEL.request_type(name=name), timeout)
