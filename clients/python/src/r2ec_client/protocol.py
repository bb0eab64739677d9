"""The call layer shared by the sync and asyncio clients, without I/O: the method table, CALL+MESSAGE encoding
(call header, deadline, bearer token), request builders from keyword arguments, and response decoding into
`results` objects or `RpcError`s (docs/protocol.md, "Calls")."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from google.protobuf.message import DecodeError

from ._proto import admin_pb2, health_pb2, recommender_pb2, wire_pb2
from .errors import RpcError, StatusCode
from .frames import FLAG_END_STREAM, FrameType, encode_frame
from .results import Item, LoadedModel, ModelInfo, Recommendation, ScoredItems


@dataclass(frozen=True)
class Method:
    path: str
    request_type: type
    response_type: type
    server_streaming: bool = False


RECOMMEND = Method("/r2ec.v1.Recommender/Recommend", recommender_pb2.RecommendRequest,
                   recommender_pb2.RecommendResponse)
RECOMMEND_STREAM = Method("/r2ec.v1.Recommender/RecommendStream", recommender_pb2.RecommendRequest,
                          recommender_pb2.RecommendStreamResponse, server_streaming=True)
RECOMMEND_BATCH = Method("/r2ec.v1.Recommender/RecommendBatch", recommender_pb2.RecommendBatchRequest,
                         recommender_pb2.RecommendBatchResponse)
SCORE_ITEMS = Method("/r2ec.v1.Recommender/ScoreItems", recommender_pb2.ScoreItemsRequest,
                     recommender_pb2.ScoreItemsResponse)
SIMILAR_ITEMS = Method("/r2ec.v1.Recommender/SimilarItems", recommender_pb2.SimilarItemsRequest,
                       recommender_pb2.SimilarItemsResponse)
GET_ITEMS = Method("/r2ec.v1.Recommender/GetItems", recommender_pb2.GetItemsRequest, recommender_pb2.GetItemsResponse)
MODEL_INFO = Method("/r2ec.v1.Recommender/ModelInfo", recommender_pb2.ModelInfoRequest,
                    recommender_pb2.ModelInfoResponse)
HEALTH_CHECK = Method("/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse)
HEALTH_WATCH = Method("/r2ec.v1.Health/Watch", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse,
                      server_streaming=True)
LOAD_MODEL = Method("/r2ec.v1.Admin/LoadModel", admin_pb2.LoadModelRequest, admin_pb2.LoadModelResponse)
UNLOAD_MODEL = Method("/r2ec.v1.Admin/UnloadModel", admin_pb2.UnloadModelRequest, admin_pb2.UnloadModelResponse)

METHODS = {m.path: m for m in (RECOMMEND, RECOMMEND_STREAM, RECOMMEND_BATCH, SCORE_ITEMS, SIMILAR_ITEMS, GET_ITEMS,
                               MODEL_INFO, HEALTH_CHECK, HEALTH_WATCH, LOAD_MODEL, UNLOAD_MODEL)}


# ---- frames of a call -------------------------------------------------------------------------------------------

def timeout_ms_for(deadline: float | None, now: float | None = None) -> int:
    """CallHeader.timeout_ms for an absolute monotonic deadline: 0 for none, >= 1 while time is left (rounded up,
    so a short deadline never reads as "none"), negative once it has passed."""
    if deadline is None:
        return 0
    remaining = deadline - (time.monotonic() if now is None else now)
    if remaining <= 0:
        return min(-1, math.floor(remaining * 1000))
    return max(1, math.ceil(remaining * 1000))


def metadata_for(token: str | None) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token else []


def encode_call(stream_id: int, method_path: str, request: bytes, timeout_ms: int = 0,
                metadata: Iterable[tuple[str, str]] = ()) -> bytes:
    """CALL with the CallHeader, then the one MESSAGE with END_STREAM, as one byte string."""
    header = wire_pb2.CallHeader(method=method_path, timeout_ms=timeout_ms,
                                 metadata=[wire_pb2.MetadataEntry(key=k, value=v) for k, v in metadata])
    return (encode_frame(FrameType.CALL, stream_id, header.SerializeToString())
            + encode_frame(FrameType.MESSAGE, stream_id, request, FLAG_END_STREAM))


def decode_status(payload: bytes) -> wire_pb2.Status:
    try:
        return wire_pb2.Status.FromString(payload)
    except DecodeError as error:
        raise RpcError(StatusCode.INTERNAL, f"undecodable TRAILER from the server: {error}") from None


def decode_response(method: Method, payload: bytes):
    try:
        return method.response_type.FromString(payload)
    except DecodeError as error:
        raise RpcError(StatusCode.INTERNAL, f"undecodable {method.response_type.__name__} from the server: "
                                            f"{error}") from None


# ---- requests ---------------------------------------------------------------------------------------------------

HistoryLike = Iterable[Any]


def history_events(history: HistoryLike | None) -> list[recommender_pb2.HistoryEvent]:
    """Item ids (int or str), (item_id[, time[, rating]]) tuples, dicts with those keys, or HistoryEvent messages.
    Emptiness is not checked here: that is the server's call (INVALID_ARGUMENT, field "history")."""
    events = []
    for index, entry in enumerate(history or ()):
        if isinstance(entry, recommender_pb2.HistoryEvent):
            events.append(entry)
        elif isinstance(entry, bool):
            raise TypeError(f"history[{index}]: a bool is not an item id")
        elif isinstance(entry, (int, str)):
            events.append(recommender_pb2.HistoryEvent(item_id=str(entry)))
        elif isinstance(entry, dict):
            events.append(recommender_pb2.HistoryEvent(item_id=str(entry["item_id"]),
                                                       timestamp=int(entry.get("timestamp", entry.get("time", 0))),
                                                       rating=float(entry.get("rating", 0))))
        elif isinstance(entry, (tuple, list)) and 1 <= len(entry) <= 3:
            item_id, timestamp, rating = (list(entry) + [0, 0])[:3]
            events.append(recommender_pb2.HistoryEvent(item_id=str(item_id), timestamp=int(timestamp or 0),
                                                       rating=float(rating or 0)))
        else:
            raise TypeError(f"history[{index}]: expected an item id, an (item_id, time, rating) tuple or a dict, "
                            f"got {entry!r}")
    return events


def recommend_request(history: HistoryLike | None = None, user_id: str | int | None = None, top_k: int = 10,
                      reasoning: bool = False, max_reasoning_tokens: int = 0, temperature: float = 0,
                      top_k_sampling: int = 0, top_p: float = 0, seed: int = 0, exclude: Sequence = (),
                      candidates: Sequence = (), include_seen: bool = False, return_reasoning: bool = False,
                      return_probabilities: bool = False, model: str = "", now: int = 0
                      ) -> recommender_pb2.RecommendRequest:
    sampling = None  # left unset when every setting is its default
    if temperature or top_k_sampling or top_p or seed:
        sampling = recommender_pb2.Sampling(temperature=temperature, top_k=top_k_sampling, top_p=top_p, seed=seed)
    return recommender_pb2.RecommendRequest(
        user_id="" if user_id is None else str(user_id),
        history=history_events(history),
        top_k=top_k,
        mode=recommender_pb2.MODE_REASONING if reasoning else recommender_pb2.MODE_DIRECT,
        max_reasoning_tokens=max_reasoning_tokens,
        sampling=sampling,
        exclude_item_ids=[str(i) for i in exclude],
        candidate_item_ids=[str(i) for i in candidates],
        include_seen=include_seen,
        return_reasoning=return_reasoning,
        return_probabilities=return_probabilities,
        model=model,
        now=now,
    )


def batch_request(requests: Iterable[dict]) -> recommender_pb2.RecommendBatchRequest:
    """Each element holds recommend()'s keyword arguments (without timeout)."""
    return recommender_pb2.RecommendBatchRequest(requests=[recommend_request(**r) for r in requests])


def score_items_request(item_ids: Sequence, history: HistoryLike | None = None, user_id: str | int | None = None,
                        return_probabilities: bool = False, model: str = "", now: int = 0):
    return recommender_pb2.ScoreItemsRequest(user_id="" if user_id is None else str(user_id),
                                             history=history_events(history), item_ids=[str(i) for i in item_ids],
                                             return_probabilities=return_probabilities, model=model, now=now)


def similar_items_request(item_id, top_k: int = 10, model: str = ""):
    return recommender_pb2.SimilarItemsRequest(item_id=str(item_id), top_k=top_k, model=model)


def get_items_request(item_ids: Sequence, model: str = ""):
    if isinstance(item_ids, (str, int)):
        item_ids = [item_ids]
    return recommender_pb2.GetItemsRequest(item_ids=[str(i) for i in item_ids], model=model)


# ---- responses --------------------------------------------------------------------------------------------------

def health_status_name(response) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def batch_results(response) -> list:
    """One element per request: a Recommendation, or the RpcError of that element (not raised)."""
    return [Recommendation.from_proto(r.response) if r.code == 0 else RpcError(r.code, r.message)
            for r in response.results]


def stream_event(response):
    """A RecommendStream message as the iterator yields it: the delta text, or the final Recommendation."""
    kind = response.WhichOneof("event")
    if kind == "reasoning_delta":
        return response.reasoning_delta
    if kind == "result":
        return Recommendation.from_proto(response.result)
    raise RpcError(StatusCode.INTERNAL, "RecommendStream message with no event")


CONVERTERS: dict[str, Callable] = {
    RECOMMEND.path: Recommendation.from_proto,
    RECOMMEND_BATCH.path: batch_results,
    SCORE_ITEMS.path: ScoredItems.from_proto,
    SIMILAR_ITEMS.path: ScoredItems.from_proto,
    GET_ITEMS.path: lambda response: [Item.from_proto(item) for item in response.items],
    MODEL_INFO.path: ModelInfo.from_response,
    HEALTH_CHECK.path: health_status_name,
    HEALTH_WATCH.path: health_status_name,
    RECOMMEND_STREAM.path: stream_event,
    LOAD_MODEL.path: lambda response: LoadedModel(response.name, response.version),
    UNLOAD_MODEL.path: lambda response: None,
}


def parse_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port"."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
