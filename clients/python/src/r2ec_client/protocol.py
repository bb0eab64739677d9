"""The call layer shared by the sync and asyncio clients, without I/O (docs/protocol.md, "Calls"): the method table
(paths, message types, how a response becomes a result, which calls are safe to send twice), CALL+MESSAGE encoding
(call header, deadline, metadata), and turning a finished call's MESSAGEs and TRAILER into a result or an RpcError."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from google.protobuf.message import DecodeError

from ._proto import admin_pb2, events_pb2, health_pb2, recommender_pb2, wire_pb2
from .errors import RpcError, StatusCode
from .frames import FLAG_END_STREAM, FrameType, encode_frame
from .results import (BatchRecommendations, DeletedUser, FoundItems, History, Items, LoadedModel, ModelInfo, Recommendation,
                      Recorded, ScoredItems, Upserted)


def _always(request) -> bool:
    return True


def _never(request) -> bool:
    return False


def _every_event_keyed(request) -> bool:
    """A RecordEvents call may be sent twice only when the store can recognise every event the second time."""
    return all(event.idempotency_key for event in request.events)


@dataclass(frozen=True)
class Method:
    path: str
    request_type: type
    response_type: type
    # (response message, request message, trailing metadata pairs) -> the result the caller gets
    convert: Callable[[Any, Any, tuple], Any]
    # Whether sending the request again, after a failure that leaves unknown whether the server acted on it, is
    # safe: reads always; writes when repeating them changes nothing (an upsert, a delete, keyed events).
    idempotent: Callable[[Any], bool] = _always
    server_streaming: bool = False


def _health_name(response, request=None, trailing_metadata=()) -> str:
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def _stream_event(response, request=None, trailing_metadata=()):
    """A RecommendStream message as the iterator yields it: the delta text, or the final Recommendation."""
    kind = response.WhichOneof("event")
    if kind == "reasoning_delta":
        return response.reasoning_delta
    if kind == "result":
        return Recommendation.from_proto(response.result)
    raise RpcError(StatusCode.INTERNAL, "RecommendStream message with no event")


def _results(kind):
    return lambda response, request, metadata: kind.from_proto(response, metadata)


RECOMMEND = Method("/r2ec.v1.Recommender/Recommend", recommender_pb2.RecommendRequest,
                   recommender_pb2.RecommendResponse, _results(Recommendation))
RECOMMEND_STREAM = Method("/r2ec.v1.Recommender/RecommendStream", recommender_pb2.RecommendRequest,
                          recommender_pb2.RecommendStreamResponse, _stream_event, server_streaming=True)
RECOMMEND_BATCH = Method("/r2ec.v1.Recommender/RecommendBatch", recommender_pb2.RecommendBatchRequest,
                         recommender_pb2.RecommendBatchResponse, _results(BatchRecommendations))
SCORE_ITEMS = Method("/r2ec.v1.Recommender/ScoreItems", recommender_pb2.ScoreItemsRequest,
                     recommender_pb2.ScoreItemsResponse, _results(ScoredItems))
SIMILAR_ITEMS = Method("/r2ec.v1.Recommender/SimilarItems", recommender_pb2.SimilarItemsRequest,
                       recommender_pb2.SimilarItemsResponse, _results(ScoredItems))
GET_ITEMS = Method("/r2ec.v1.Recommender/GetItems", recommender_pb2.GetItemsRequest, recommender_pb2.GetItemsResponse,
                   _results(Items))
SEARCH_ITEMS = Method("/r2ec.v1.Recommender/SearchItems", recommender_pb2.SearchItemsRequest,
                      recommender_pb2.SearchItemsResponse, _results(FoundItems))
MODEL_INFO = Method("/r2ec.v1.Recommender/ModelInfo", recommender_pb2.ModelInfoRequest,
                    recommender_pb2.ModelInfoResponse,
                    lambda response, request, metadata: ModelInfo.from_response(response, metadata))
HEALTH_CHECK = Method("/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse,
                      _health_name)
HEALTH_WATCH = Method("/r2ec.v1.Health/Watch", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse,
                      _health_name, server_streaming=True)
LOAD_MODEL = Method("/r2ec.v1.Admin/LoadModel", admin_pb2.LoadModelRequest, admin_pb2.LoadModelResponse,
                    _results(LoadedModel), idempotent=_never)
UNLOAD_MODEL = Method("/r2ec.v1.Admin/UnloadModel", admin_pb2.UnloadModelRequest, admin_pb2.UnloadModelResponse,
                      lambda response, request, metadata: None, idempotent=_never)
RECORD_EVENTS = Method("/r2ec.v1.Events/RecordEvents", events_pb2.RecordEventsRequest,
                       events_pb2.RecordEventsResponse, _results(Recorded), idempotent=_every_event_keyed)
UPSERT_ITEMS = Method("/r2ec.v1.Events/UpsertItems", events_pb2.UpsertItemsRequest, events_pb2.UpsertItemsResponse,
                      _results(Upserted))
GET_USER_HISTORY = Method("/r2ec.v1.Events/GetUserHistory", events_pb2.GetUserHistoryRequest,
                          events_pb2.GetUserHistoryResponse,
                          lambda response, request, metadata: History.from_proto(response, request.user_id, metadata))
DELETE_USER = Method("/r2ec.v1.Events/DeleteUser", events_pb2.DeleteUserRequest, events_pb2.DeleteUserResponse,
                     lambda response, request, metadata: DeletedUser.from_proto(response, request.user_id, metadata))

METHODS = {m.path: m for m in (RECOMMEND, RECOMMEND_STREAM, RECOMMEND_BATCH, SCORE_ITEMS, SIMILAR_ITEMS, GET_ITEMS,
                               SEARCH_ITEMS, MODEL_INFO, HEALTH_CHECK, HEALTH_WATCH, LOAD_MODEL, UNLOAD_MODEL, RECORD_EVENTS,
                               UPSERT_ITEMS, GET_USER_HISTORY, DELETE_USER)}


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


def call_metadata(client_metadata: list[tuple[str, str]], call_metadata: list[tuple[str, str]]):
    """The client's metadata (its token) with the call's own appended; a call's "authorization" replaces the
    client's."""
    if any(key == "authorization" for key, _ in call_metadata):
        client_metadata = [(k, v) for k, v in client_metadata if k != "authorization"]
    return [*client_metadata, *call_metadata]


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


def status_error(status: wire_pb2.Status) -> RpcError | None:
    """The RpcError of a non-OK TRAILER, None for OK."""
    return None if status.code == 0 else RpcError.from_status(status)


def trailing_metadata(status: wire_pb2.Status) -> tuple[tuple[str, str], ...]:
    return tuple((entry.key, entry.value) for entry in status.metadata)


def unary_result(method: Method, request, payloads: list[bytes], status: wire_pb2.Status):
    """The result of a finished unary call (exactly one MESSAGE, then an OK TRAILER), else raises its RpcError."""
    error = status_error(status)
    if error is not None:
        raise error
    if len(payloads) != 1:
        raise RpcError(StatusCode.INTERNAL, f"unary call {method.path} got {len(payloads)} messages")
    return method.convert(decode_response(method, payloads[0]), request, trailing_metadata(status))


def stream_message(method: Method, request, payload: bytes):
    """One message of a server stream, converted."""
    return method.convert(decode_response(method, payload), request, ())


# ---- targets ----------------------------------------------------------------------------------------------------

def parse_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port"."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address must be HOST:PORT, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_targets(targets: str | Iterable[str]) -> list[str]:
    """One "host:port", several separated by commas, or a list of them: the list of "host:port" strings."""
    if isinstance(targets, str):
        targets = [part for part in targets.split(",") if part.strip()]
    listed = [target.strip() for target in targets]
    if not listed:
        raise ValueError("no target address given")
    for target in listed:
        parse_address(target)
    return listed
