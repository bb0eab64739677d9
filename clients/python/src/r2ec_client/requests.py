"""Request messages from the keyword arguments of the client's methods, checked before anything is sent: a wrong
type, a number outside its protobuf field's range, or a value breaking a format the contract fixes (the bounds
Protos/r2ec/v1/events.proto documents for user ids, kinds, titles, ...) raises `RpcError(INVALID_ARGUMENT)` naming
the field as the server would ("history[2].item_id", "events[0].kind"). Limits that are server settings (batch
sizes, history length, top_k against the catalogue) stay the server's to enforce.

Rows may come as dicts, tuples in the proto's field order, the client's own result objects, protobuf messages, or a
pandas DataFrame whose columns are the proto's field names (pandas is never imported here: a DataFrame is
recognised by its module)."""
from __future__ import annotations

import datetime as _dt
import inspect
import json
import math
import numbers
import re
import sys
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ._proto import events_pb2, health_pb2, recommender_pb2
from .errors import RpcError, invalid_argument

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)

# Bounds fixed by the contract (events.proto), not by server settings.
MAX_ID_BYTES = 128
MAX_KIND_BYTES = 32
MAX_KEY_BYTES = 128
MAX_TITLE_BYTES = 512
MAX_GENRE_BYTES = 64
MAX_GENRES = 32
MAX_DESCRIPTION_BYTES = 8192
MAX_METADATA_JSON_BYTES = 16384
MAX_RATING = 1e6
MAX_HISTORY_LIMIT = 10_000

_KIND = re.compile(r"[a-z0-9_.-]{1,32}")
_METADATA_KEY = re.compile(r"[a-z0-9_.-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

EVENT_COLUMNS = ("user_id", "item_id", "timestamp", "kind", "rating", "idempotency_key")
ITEM_COLUMNS = ("item_id", "title", "year", "genres", "description", "metadata")


# ---- scalar checks ----------------------------------------------------------------------------------------------

def _integer(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise invalid_argument(field, f"expected an integer, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise invalid_argument(field, f"{value} is outside {low}..{high}")
    return int(value)


def uint32(field: str, value: Any) -> int:
    return _integer(field, value, 0, UINT32_MAX)


def uint64(field: str, value: Any) -> int:
    return _integer(field, value, 0, UINT64_MAX)


def int32(field: str, value: Any) -> int:
    return _integer(field, value, *INT32_RANGE)


def finite_float(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise invalid_argument(field, f"expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise invalid_argument(field, f"{value} is not finite")
    return float(value)


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool) and type(value).__name__ not in ("bool_", "bool"):  # numpy's bool too
        raise invalid_argument(field, f"expected a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def text(field: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_argument(field, f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA/NaT: a cell with no value."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and pd.NA (whose comparison raises or is NA) are not equal to self
    except (TypeError, ValueError):
        return True


def identifier(field: str, value: Any) -> str:
    """An item or user id: a string, or an integer (MovieLens ids) written in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        raise invalid_argument(field, f"{value!r} is a float; ids are strings or integers (a DataFrame column "
                                      f"with missing values turns integers into floats)")
    raise invalid_argument(field, f"expected an id (string or integer), got {type(value).__name__} {value!r}")


def bounded_id(field: str, value: Any) -> str:
    """A user or item id as the store takes it: 1..128 bytes of UTF-8, no control characters."""
    result = identifier(field, value)
    _byte_length(field, result, 1, MAX_ID_BYTES)
    if _CONTROL.search(result):
        raise invalid_argument(field, "contains a control character")
    return result


def _byte_length(field: str, value: str, low: int, high: int) -> None:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size < low:
        raise invalid_argument(field, "is empty")
    if size > high:
        raise invalid_argument(field, f"is {size} bytes, over the limit of {high}")


def unix_seconds(field: str, value: Any) -> int:
    """Unix seconds from an integer, a float (floored), a datetime (naive ones read as UTC), a pandas Timestamp or a
    numpy datetime64; missing (None, NaN, NaT) means 0, "unknown" or "now" as the field says."""
    if _missing(value):
        return 0
    if isinstance(value, _dt.datetime):  # pandas.Timestamp is a datetime subclass
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return _integer(field, math.floor(value.timestamp()), *INT64_RANGE)
    if type(value).__name__ == "datetime64":  # numpy, without importing it
        return _integer(field, int(value.astype("datetime64[s]").astype("int64")), *INT64_RANGE)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return _integer(field, math.floor(finite_float(field, value)), *INT64_RANGE)
    return _integer(field, value, *INT64_RANGE)


def ids(field: str, values: Any) -> list[str]:
    """A list of item ids; one id alone is a list of one."""
    if isinstance(values, (str, numbers.Integral)) and not isinstance(values, bool):
        values = [values]
    if values is None:
        return []
    if not isinstance(values, Iterable):
        raise invalid_argument(field, f"expected a list of ids, got {type(values).__name__}")
    return [identifier(f"{field}[{index}]", value) for index, value in enumerate(values)]


def metadata(pairs: Any) -> list[tuple[str, str]]:
    """Per-call metadata: (key, value) pairs (or a mapping); keys lower-case ASCII, as gRPC's."""
    if pairs is None:
        return []
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    checked = []
    for index, pair in enumerate(items):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise invalid_argument(f"metadata[{index}]", f"expected a (key, value) pair, got {pair!r}")
        key, value = pair
        if not isinstance(key, str) or not _METADATA_KEY.fullmatch(key):
            raise invalid_argument(f"metadata[{index}].key", f"{key!r} is not a lower-case ASCII key "
                                                             "([a-z0-9_.-]+)")
        checked.append((key, text(f"metadata[{index}].value", value)))
    return checked


def timeout_seconds(value: Any) -> float | None:
    if value is None:
        return None
    return finite_float("timeout", value)


# ---- tables -----------------------------------------------------------------------------------------------------

def is_dataframe(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)


def dataframe_rows(frame, field: str, columns: Sequence[str], required: Sequence[str],
                   aliases: Mapping[str, str] = {}) -> Iterator[dict]:
    """Rows of a DataFrame as dicts keyed by proto field name; an unknown or missing column is refused up front."""
    names = [aliases.get(str(column), str(column)) for column in frame.columns]
    for column, name in zip(frame.columns, names):
        if name not in columns:
            raise invalid_argument(field, f"unknown column {column!r} (known: {', '.join(columns)})")
    for name in required:
        if name not in names:
            raise invalid_argument(field, f"missing column {name!r}")
    for values in zip(*(frame[column].tolist() for column in frame.columns)):
        yield dict(zip(names, values))


def _rows(values: Any, field: str, columns: Sequence[str], required: Sequence[str],
          aliases: Mapping[str, str] = {}, message_type: type | None = None) -> Iterator[tuple[str, Any]]:
    """(path, row) for each row of a list or a DataFrame (see _row)."""
    if is_dataframe(values):
        rows: Iterable = dataframe_rows(values, field, columns, required, aliases)
    elif isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise invalid_argument(field, f"expected a list of rows or a DataFrame, got {type(values).__name__}")
    else:
        rows = values
    for index, row in enumerate(rows):
        path = f"{field}[{index}]"
        yield path, _row(row, path, columns, required, aliases, message_type)


def _row(row: Any, path: str, columns: Sequence[str], required: Sequence[str], aliases: Mapping[str, str] = {},
         message_type: type | None = None) -> Any:
    """A dict, a tuple in column order or an object with those attributes, as a dict keyed by column (required ones
    present); a protobuf message of `message_type` as it is."""
    if message_type is not None and isinstance(row, message_type):
        return row
    if isinstance(row, Mapping):
        unknown = [key for key in row if aliases.get(key, key) not in columns]
        if unknown:
            raise invalid_argument(path, f"unknown key {unknown[0]!r} (known: {', '.join(columns)})")
        row = {aliases.get(key, key): value for key, value in row.items()}
    elif isinstance(row, (tuple, list)):
        if not 1 <= len(row) <= len(columns):
            raise invalid_argument(path, f"expected a tuple ({', '.join(columns)}), {len(row)} values given")
        row = dict(zip(columns, row))
    elif all(hasattr(row, name) for name in required):
        row = {name: getattr(row, name) for name in columns if hasattr(row, name)}
    else:
        raise invalid_argument(path, f"expected a dict, a tuple ({', '.join(columns)}) or a DataFrame row, "
                                     f"got {type(row).__name__}")
    for name in required:
        if _missing(row.get(name)):
            raise invalid_argument(f"{path}.{name}", "is missing")
    return row


# ---- Recommender ------------------------------------------------------------------------------------------------

def history_events(history: Any, field: str = "history") -> list[recommender_pb2.HistoryEvent]:
    """Item ids (int or str), (item_id[, timestamp[, rating]]) tuples, dicts with those keys ("time" for
    "timestamp" too), Event objects, HistoryEvent messages, or a DataFrame with those columns. Emptiness is the
    server's to judge (INVALID_ARGUMENT, field "history")."""
    if history is None:
        return []
    if is_dataframe(history):
        return [_history_event(path, row) for path, row in
                _rows(history, field, HISTORY_COLUMNS, ("item_id",), {"time": "timestamp"})]
    if isinstance(history, (str, Mapping)) or not isinstance(history, Iterable):
        raise invalid_argument(field, f"expected a list of history events, got {type(history).__name__}")
    events = []
    for index, entry in enumerate(history):
        if isinstance(entry, str):  # the common cases first: a plain id
            events.append(recommender_pb2.HistoryEvent(item_id=entry))
        elif type(entry) is int:
            events.append(recommender_pb2.HistoryEvent(item_id=str(entry)))
        elif isinstance(entry, recommender_pb2.HistoryEvent):
            events.append(entry)
        else:
            path = f"{field}[{index}]"
            row = [entry] if entry is None or isinstance(entry, numbers.Number) else entry
            events.append(_history_event(path, _row(row, path, HISTORY_COLUMNS, ("item_id",), {"time": "timestamp"})))
    return events


HISTORY_COLUMNS = ("item_id", "timestamp", "rating")


def _history_event(path: str, row: Mapping[str, Any]) -> recommender_pb2.HistoryEvent:
    return recommender_pb2.HistoryEvent(item_id=identifier(f"{path}.item_id", row["item_id"]),
                                        timestamp=unix_seconds(f"{path}.timestamp", row.get("timestamp")),
                                        rating=_rating(f"{path}.rating", row.get("rating")))


def _rating(field: str, value: Any) -> float:
    if _missing(value):
        return 0.0
    rating = finite_float(field, value)
    if abs(rating) > MAX_RATING:
        raise invalid_argument(field, f"{rating} is outside [-1e6, 1e6]")
    return rating


def _user_id(value: Any) -> str:
    return "" if value is None else identifier("user_id", value)


def recommend_request(history: Any = None, user_id: Any = None, top_k: int = 10, reasoning: bool = False,
                      max_reasoning_tokens: int = 0, temperature: float = 0, top_k_sampling: int = 0,
                      top_p: float = 0, seed: int = 0, exclude: Any = (), candidates: Any = (),
                      include_seen: bool = False, return_reasoning: bool = False, return_probabilities: bool = False,
                      model: str = "", now: Any = 0, priority: int = 0) -> recommender_pb2.RecommendRequest:
    sampling = recommender_pb2.Sampling(temperature=finite_float("sampling.temperature", temperature),
                                        top_k=uint32("sampling.top_k", top_k_sampling),
                                        top_p=finite_float("sampling.top_p", top_p),
                                        seed=uint64("sampling.seed", seed))
    return recommender_pb2.RecommendRequest(
        user_id=_user_id(user_id),
        history=history_events(history),
        top_k=uint32("top_k", top_k),
        mode=recommender_pb2.MODE_REASONING if flag("mode", reasoning) else recommender_pb2.MODE_DIRECT,
        max_reasoning_tokens=uint32("max_reasoning_tokens", max_reasoning_tokens),
        sampling=sampling if sampling.ByteSize() else None,  # unset when every setting is its default
        exclude_item_ids=ids("exclude_item_ids", exclude),
        candidate_item_ids=ids("candidate_item_ids", candidates),
        include_seen=flag("include_seen", include_seen),
        return_reasoning=flag("return_reasoning", return_reasoning),
        return_probabilities=flag("return_probabilities", return_probabilities),
        model=text("model", model),
        now=unix_seconds("now", now),
        priority=uint32("priority", priority),
    )


RECOMMEND_ARGUMENTS = frozenset(inspect.signature(recommend_request).parameters)


def batch_request(requests: Any) -> recommender_pb2.RecommendBatchRequest:
    """Each element holds recommend()'s keyword arguments (without timeout or metadata)."""
    if isinstance(requests, (str, Mapping)) or not isinstance(requests, Iterable):
        raise invalid_argument("requests", f"expected a list of dicts, got {type(requests).__name__}")
    built = []
    for index, arguments in enumerate(requests):
        if not isinstance(arguments, Mapping):
            raise invalid_argument(f"requests[{index}]", f"expected a dict of recommend() arguments, "
                                                         f"got {type(arguments).__name__}")
        unknown = sorted(set(arguments) - RECOMMEND_ARGUMENTS)
        if unknown:
            raise invalid_argument(f"requests[{index}]", f"unknown argument {unknown[0]!r}")
        try:
            built.append(recommend_request(**arguments))
        except RpcError as error:  # re-rooted under the element
            raise invalid_argument(f"requests[{index}].{error.field}", error.details()[len(error.field) + 2:]) \
                from None
    return recommender_pb2.RecommendBatchRequest(requests=built)


def score_items_request(item_ids: Any, history: Any = None, user_id: Any = None, return_probabilities: bool = False,
                        model: str = "", now: Any = 0) -> recommender_pb2.ScoreItemsRequest:
    return recommender_pb2.ScoreItemsRequest(user_id=_user_id(user_id), history=history_events(history),
                                             item_ids=ids("item_ids", item_ids),
                                             return_probabilities=flag("return_probabilities", return_probabilities),
                                             model=text("model", model), now=unix_seconds("now", now))


def similar_items_request(item_id: Any, top_k: int = 10, model: str = "") -> recommender_pb2.SimilarItemsRequest:
    return recommender_pb2.SimilarItemsRequest(item_id=identifier("item_id", item_id), top_k=uint32("top_k", top_k),
                                               model=text("model", model))


def get_items_request(item_ids: Any, model: str = "") -> recommender_pb2.GetItemsRequest:
    return recommender_pb2.GetItemsRequest(item_ids=ids("item_ids", item_ids), model=text("model", model))


def search_items_request(query: Any = "", genres: Any = (), min_year: Any = 0, max_year: Any = 0,
                         metadata_equals: Any = None, limit: Any = 20, offset: Any = 0,
                         model: str = "") -> recommender_pb2.SearchItemsRequest:
    metadata = metadata_equals
    if isinstance(genres, str):
        genres = [genres]
    genre_list = [text(f"genres[{i}]", g) for i, g in enumerate(genres or ())]
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise invalid_argument("metadata_equals", f"expected a dict of key -> value, got {type(metadata).__name__}")
    filters = []
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise invalid_argument("metadata_equals", f"keys must be non-empty strings, got {key!r}")
        if isinstance(value, str):
            shown = value
        elif value is None or isinstance(value, (bool, numbers.Real)):
            shown = json.dumps(value)
        else:
            raise invalid_argument(f"metadata_equals.{key}", f"expected a string, number, bool or None, got {type(value).__name__}")
        filters.append(recommender_pb2.MetadataFilter(key=key, value=shown))
    return recommender_pb2.SearchItemsRequest(
        query=text("query", query), genres=genre_list, min_year=int32("min_year", min_year),
        max_year=int32("max_year", max_year), metadata=filters, limit=uint32("limit", limit),
        offset=uint32("offset", offset), model=text("model", model))


def model_info_request(model: str = "") -> recommender_pb2.ModelInfoRequest:
    return recommender_pb2.ModelInfoRequest(model=text("model", model))


def health_request(service: str = "") -> health_pb2.HealthCheckRequest:
    return health_pb2.HealthCheckRequest(service=text("service", service))


# ---- Events -----------------------------------------------------------------------------------------------------

def event(path: str, row: Mapping[str, Any]) -> events_pb2.Event:
    kind = "" if _missing(row.get("kind")) else text(f"{path}.kind", row.get("kind"))
    if kind and not _KIND.fullmatch(kind):
        raise invalid_argument(f"{path}.kind", f"{kind!r} is not 1..32 characters of [a-z0-9_.-]")
    key = "" if _missing(row.get("idempotency_key")) else text(f"{path}.idempotency_key", row["idempotency_key"])
    _byte_length(f"{path}.idempotency_key", key, 0, MAX_KEY_BYTES)
    return events_pb2.Event(user_id=bounded_id(f"{path}.user_id", row["user_id"]),
                            item_id=bounded_id(f"{path}.item_id", row["item_id"]),
                            timestamp=unix_seconds(f"{path}.timestamp", row.get("timestamp")),
                            kind=kind, rating=_rating(f"{path}.rating", row.get("rating")), idempotency_key=key)


def record_events_messages(events: Any) -> list[events_pb2.Event]:
    """Events from rows with the columns EVENT_COLUMNS (user_id and item_id required); at least one."""
    checked = [message if isinstance(message, events_pb2.Event) else event(path, message)
               for path, message in _rows(events, "events", EVENT_COLUMNS, ("user_id", "item_id"), {},
                                          events_pb2.Event)]
    if not checked:
        raise invalid_argument("events", "is empty")
    return checked


def item_record(path: str, row: Mapping[str, Any]) -> events_pb2.ItemRecord:
    title = text(f"{path}.title", row.get("title"))
    _byte_length(f"{path}.title", title, 1, MAX_TITLE_BYTES)
    genres = row.get("genres")
    if genres is None or (isinstance(genres, float) and math.isnan(genres)):
        genres = []
    elif isinstance(genres, str):
        genres = [genre for genre in genres.split("|") if genre]
    elif not isinstance(genres, Iterable):
        raise invalid_argument(f"{path}.genres", f"expected a list of strings or 'A|B', got {genres!r}")
    genres = [text(f"{path}.genres[{index}]", genre) for index, genre in enumerate(genres)]
    if len(genres) > MAX_GENRES:
        raise invalid_argument(f"{path}.genres", f"{len(genres)} genres, over the limit of {MAX_GENRES}")
    for index, genre in enumerate(genres):
        _byte_length(f"{path}.genres[{index}]", genre, 1, MAX_GENRE_BYTES)
    description = "" if _missing(row.get("description")) else text(f"{path}.description", row["description"])
    _byte_length(f"{path}.description", description, 0, MAX_DESCRIPTION_BYTES)
    year = 0 if _missing(row.get("year")) else row["year"]
    if isinstance(year, float) and year.is_integer():  # a DataFrame column of years with gaps is float
        year = int(year)
    return events_pb2.ItemRecord(item_id=bounded_id(f"{path}.item_id", row["item_id"]), title=title,
                                 year=int32(f"{path}.year", year), genres=genres, description=description,
                                 metadata_json=metadata_json(f"{path}.metadata_json", row.get("metadata")))


def metadata_json(field: str, value: Any) -> str:
    """A JSON object: a dict (serialised here) or its JSON text; missing means none."""
    if not isinstance(value, (Mapping, str)) and _missing(value):
        return ""
    if isinstance(value, Mapping):
        try:
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as error:
            raise invalid_argument(field, f"not serialisable as JSON: {error}") from None
    elif isinstance(value, str):
        encoded = value
        try:
            parsed = json.loads(value) if value else {}
        except ValueError as error:
            raise invalid_argument(field, f"not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise invalid_argument(field, "must be a JSON object")
    else:
        raise invalid_argument(field, f"expected a dict or a JSON object's text, got {type(value).__name__}")
    _byte_length(field, encoded, 0, MAX_METADATA_JSON_BYTES)
    return encoded


def upsert_items_messages(items: Any) -> list[events_pb2.ItemRecord]:
    """Item records from rows with the columns ITEM_COLUMNS ("metadata_json" is accepted for "metadata"); item_id
    and title required; at least one."""
    checked = [row if isinstance(row, events_pb2.ItemRecord) else item_record(path, row)
               for path, row in _rows(items, "items", ITEM_COLUMNS, ("item_id", "title"),
                                      {"metadata_json": "metadata"}, events_pb2.ItemRecord)]
    if not checked:
        raise invalid_argument("items", "is empty")
    return checked


def history_request(user_id: Any, limit: int = 0) -> events_pb2.GetUserHistoryRequest:
    limit = uint32("limit", limit)
    if limit > MAX_HISTORY_LIMIT:
        raise invalid_argument("limit", f"{limit} is over the limit of {MAX_HISTORY_LIMIT}")
    return events_pb2.GetUserHistoryRequest(user_id=bounded_id("user_id", user_id), limit=limit)


def delete_user_request(user_id: Any) -> events_pb2.DeleteUserRequest:
    return events_pb2.DeleteUserRequest(user_id=bounded_id("user_id", user_id))
