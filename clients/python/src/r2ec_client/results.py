"""Plain result objects the clients return, converted from the protobuf responses so users never touch _pb2 types.
Each carries the call's `trailing_metadata` (e.g. the server's "x-request-id", also as `.request_id`), and the
tabular ones convert with `to_pandas()` (pandas is imported only then: the `[pandas]` extra).

- `ScoredItem` / `ScoredItems` (ScoreItems, SimilarItems) / `Recommendation` (Recommend, + reasoning);
  `BatchRecommendations` (RecommendBatch: a Recommendation or an RpcError per request);
- `Item` / `Items` (GetItems); `ModelInfo`, `LoadedModel`;
- `Event` / `History` (GetUserHistory), `Recorded` (RecordEvents), `Upserted` (UpsertItems), `DeletedUser`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Iterator, Sequence

from .errors import RpcError, metadata_value

Metadata = tuple[tuple[str, str], ...]


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas: pip install 'r2ec-client[pandas]'") from None
    return pandas


def _metadata_pairs(trailing_metadata) -> Metadata:
    return tuple((entry.key, entry.value) if hasattr(entry, "key") else tuple(entry) for entry in trailing_metadata)


class _Reply:
    """What every call's result shares: the trailing metadata of its TRAILER."""
    trailing_metadata: Metadata

    @property
    def request_id(self) -> str | None:
        """The id the server logged the call under (trailing metadata "x-request-id"), when it sent one."""
        return metadata_value(self.trailing_metadata, "x-request-id")


class _Rows(_Reply):
    """A result that is a sequence of rows (`rows_field` names it): iteration, len, indexing."""
    rows_field = "items"

    def _rows(self) -> list:
        return getattr(self, self.rows_field)

    def __iter__(self) -> Iterator:
        return iter(self._rows())

    def __len__(self) -> int:
        return len(self._rows())

    def __getitem__(self, index):
        return self._rows()[index]


def _frame(records: list[dict], columns: Sequence[str], **attrs):
    pandas = _pandas()
    frame = pandas.DataFrame.from_records(records, columns=list(columns))
    frame.attrs.update(attrs)
    return frame


# ---- Recommender ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoredItem:
    item_id: str
    title: str
    score: float
    # None when not asked for, when the model has no calibrator, or beyond the ranks it was fitted on.
    probability: float | None
    rank: int

    @classmethod
    def from_proto(cls, message) -> "ScoredItem":
        probability = message.probability if message.HasField("probability") else None
        return cls(message.item_id, message.title, message.score, probability, message.rank)

    def __str__(self) -> str:
        text = f"{self.rank:>3} {self.item_id:>8} {self.score:10.4f}"
        if self.probability is not None:
            text += f" p={self.probability:.3f}"
        return f"{text} {self.title}"


SCORED_COLUMNS = ("rank", "item_id", "title", "score", "probability")


@dataclass(frozen=True)
class ScoredItems(_Rows):
    """Items with scores, in the server's order (ranked for Recommend/SimilarItems, request order for ScoreItems),
    and the model (name, version) that answered."""
    items: list[ScoredItem]
    model: str
    model_version: int = 0
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]

    @property
    def titles(self) -> list[str]:
        return [item.title for item in self.items]

    def __str__(self) -> str:
        return "\n".join(str(item) for item in self.items)

    def to_pandas(self):
        """One row per item: rank, item_id, title, score, probability (NaN where there is none); the model's name
        and version in `.attrs`."""
        records = [{name: getattr(item, name) for name in SCORED_COLUMNS} for item in self.items]
        frame = _frame(records, SCORED_COLUMNS, model=self.model, model_version=self.model_version)
        frame["probability"] = frame["probability"].astype("float64")
        return frame

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "ScoredItems":
        return cls([ScoredItem.from_proto(item) for item in message.items], message.model, message.model_version,
                   _metadata_pairs(trailing_metadata))


@dataclass(frozen=True)
class Recommendation(ScoredItems):
    """The answer of Recommend: ranked items, and the reasoning chain when one was asked for and produced."""
    reasoning: str = ""
    reasoning_tokens: int = 0

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "Recommendation":
        return cls([ScoredItem.from_proto(item) for item in message.items], message.model, message.model_version,
                   _metadata_pairs(trailing_metadata), message.reasoning, message.reasoning_tokens)


@dataclass(frozen=True)
class BatchRecommendations(_Rows):
    """The answer of RecommendBatch: per request, its Recommendation or its RpcError (returned, not raised)."""
    rows_field = "results"
    results: list  # of Recommendation | RpcError
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    def to_pandas(self):
        """Long format: one row per (request, item): request, rank, item_id, title, score, probability, model;
        a failed request is one row with its status in `error` and no item."""
        records = []
        for index, result in enumerate(self.results):
            if isinstance(result, RpcError):
                records.append({"request": index, "error": str(result)})
                continue
            for item in result.items:
                records.append({"request": index, "model": result.model, "error": None,
                                **{name: getattr(item, name) for name in SCORED_COLUMNS}})
        frame = _frame(records, ("request", *SCORED_COLUMNS, "model", "error"))
        frame["probability"] = frame["probability"].astype("float64")
        return frame

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "BatchRecommendations":
        return cls([Recommendation.from_proto(r.response) if r.code == 0 else RpcError(r.code, r.message, number=r.code)
                    for r in message.results], _metadata_pairs(trailing_metadata))


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    year: int
    genres: list[str]
    description: str
    num_ratings: int
    mean_rating: float
    metadata_json: str = "{}"
    created: int = 0  # unix seconds it entered the catalogue; 0 for the dataset the server started from

    @property
    def metadata(self) -> dict:
        """metadata_json parsed ({} when empty)."""
        return json.loads(self.metadata_json) if self.metadata_json else {}

    @classmethod
    def from_proto(cls, message) -> "Item":
        return cls(message.item_id, message.title, message.year, list(message.genres), message.description,
                   message.num_ratings, message.mean_rating, message.metadata_json or "{}", message.created)


ITEM_COLUMNS = ("item_id", "title", "year", "genres", "description", "num_ratings", "mean_rating", "metadata",
                "created")


@dataclass(frozen=True)
class Items(_Rows):
    """The answer of GetItems, in the order asked."""
    items: list[Item]
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    def to_pandas(self):
        """One row per item; genres as lists, metadata as dicts, created in unix seconds."""
        return _frame([{name: getattr(item, name) for name in ITEM_COLUMNS} for item in self.items], ITEM_COLUMNS)

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "Items":
        return cls([Item.from_proto(item) for item in message.items], _metadata_pairs(trailing_metadata))


@dataclass(frozen=True)
class FoundItems(Items):
    """The answer of SearchItems: one page of matches, most-rated first, and how many match in all."""
    total_matches: int = 0

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "FoundItems":
        return cls([Item.from_proto(item) for item in message.items], _metadata_pairs(trailing_metadata),
                   message.total_matches)


@dataclass(frozen=True)
class ModelInfo(_Reply):
    """One model's description. The ModelInfo call also fills `loaded` (every loaded model) and `default_model`."""
    name: str
    kind: str
    dataset: str
    num_items: int
    num_users: int
    supports_reasoning: bool
    calibrated: bool
    num_parameters: int
    config_json: str
    version: int
    calibrated_ranks: int = 0  # probabilities exist for ranks 1..calibrated_ranks
    num_recommendable_items: int = 0
    loaded: list["ModelInfo"] = field(default_factory=list)
    default_model: str = ""
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    @property
    def config(self) -> dict:
        """config_json parsed ({} when empty)."""
        return json.loads(self.config_json) if self.config_json else {}

    def to_pandas(self):
        """One row per loaded model (this one alone when `loaded` is empty), without config_json."""
        columns = [f.name for f in fields(ModelInfo)
                   if f.name not in ("config_json", "loaded", "default_model", "trailing_metadata")]
        models = self.loaded or [self]
        frame = _frame([{name: getattr(m, name) for name in columns} for m in models], columns)
        frame["default"] = frame["name"] == (self.default_model or self.name)
        return frame

    @classmethod
    def from_proto(cls, message, loaded=(), default_model: str = "", trailing_metadata=()) -> "ModelInfo":
        return cls(message.name, message.kind, message.dataset, message.num_items, message.num_users,
                   message.supports_reasoning, message.calibrated, message.num_parameters, message.config_json,
                   message.version, message.calibrated_ranks, message.num_recommendable_items,
                   [cls.from_proto(m) for m in loaded], default_model, _metadata_pairs(trailing_metadata))

    @classmethod
    def from_response(cls, response, trailing_metadata=()) -> "ModelInfo":
        return cls.from_proto(response.model, response.loaded, response.default_model, trailing_metadata)


@dataclass(frozen=True)
class LoadedModel(_Reply):
    """The answer of Admin/LoadModel."""
    name: str
    version: int
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "LoadedModel":
        return cls(message.name, message.version, _metadata_pairs(trailing_metadata))


# ---- Events -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """One thing a user did with an item, as GetUserHistory returns it and RecordEvents takes it."""
    user_id: str
    item_id: str
    timestamp: int = 0  # unix seconds; 0 in a request means the server's clock
    kind: str = ""  # "" means "interaction"
    rating: float = 0.0  # 0 means none
    idempotency_key: str = ""

    @classmethod
    def from_proto(cls, message) -> "Event":
        return cls(message.user_id, message.item_id, message.timestamp, message.kind, message.rating,
                   message.idempotency_key)


EVENT_COLUMNS = tuple(f.name for f in fields(Event))


@dataclass(frozen=True)
class History(_Rows):
    """The answer of GetUserHistory: the user's latest events, oldest first, and how many the store holds."""
    rows_field = "events"
    user_id: str
    events: list[Event]
    total: int
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    @property
    def item_ids(self) -> list[str]:
        return [event.item_id for event in self.events]

    def to_pandas(self):
        """One row per event: user_id, item_id, timestamp (unix seconds), kind, rating, idempotency_key; `total`
        in `.attrs`. The frame feeds record_events() as it is."""
        return _frame([{name: getattr(e, name) for name in EVENT_COLUMNS} for e in self.events], EVENT_COLUMNS,
                      user_id=self.user_id, total=self.total)

    @classmethod
    def from_proto(cls, message, user_id: str = "", trailing_metadata=()) -> "History":
        return cls(user_id, [Event.from_proto(e) for e in message.events], message.total,
                   _metadata_pairs(trailing_metadata))


@dataclass(frozen=True)
class Recorded(_Reply):
    """The answer of RecordEvents: events newly stored, and those skipped as already stored (by idempotency key)."""
    recorded: int
    duplicates: int
    duplicate_indices: list[int]
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "Recorded":
        return cls(message.recorded, message.duplicates, list(message.duplicate_indices),
                   _metadata_pairs(trailing_metadata))

    @classmethod
    def combine(cls, parts: list[tuple[int, "Recorded"]]) -> "Recorded":
        """One answer from the answers of consecutive chunks ((offset of the chunk, its answer) pairs)."""
        return cls(sum(p.recorded for _, p in parts), sum(p.duplicates for _, p in parts),
                   [offset + i for offset, p in parts for i in p.duplicate_indices],
                   parts[-1][1].trailing_metadata if parts else ())


@dataclass(frozen=True)
class Upserted(_Reply):
    """The answer of UpsertItems: items created and updated, the catalogue's version after the call, and the loaded
    models that can recommend the new or changed items at once."""
    created: int
    updated: int
    catalog_version: int
    encoded_by: list[str]
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    @classmethod
    def from_proto(cls, message, trailing_metadata=()) -> "Upserted":
        return cls(message.created, message.updated, message.catalog_version, list(message.encoded_by),
                   _metadata_pairs(trailing_metadata))

    @classmethod
    def combine(cls, parts: list[tuple[int, "Upserted"]]) -> "Upserted":
        last = parts[-1][1]
        return cls(sum(p.created for _, p in parts), sum(p.updated for _, p in parts), last.catalog_version,
                   last.encoded_by, last.trailing_metadata)


@dataclass(frozen=True)
class DeletedUser(_Reply):
    """The answer of DeleteUser: events erased (the server also dropped every cached copy)."""
    user_id: str
    deleted_events: int
    trailing_metadata: Metadata = field(default=(), repr=False, compare=False)

    @classmethod
    def from_proto(cls, message, user_id: str = "", trailing_metadata=()) -> "DeletedUser":
        return cls(user_id, message.deleted_events, _metadata_pairs(trailing_metadata))

