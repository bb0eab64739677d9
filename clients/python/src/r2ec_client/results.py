"""Plain result objects the clients return, converted from the protobuf responses so users never touch _pb2 types:
`ScoredItem`, `Recommendation` (ranked items + reasoning), `ScoredItems`, `Item`, `ModelInfo`, `LoadedModel`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator


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
        return f"{self.rank:>3} {self.item_id:>8} {self.score:10.4f} {self.title}"


@dataclass(frozen=True)
class ScoredItems:
    """Items with scores, in the server's order (ranked for Recommend/SimilarItems, request order for ScoreItems)."""
    items: list[ScoredItem]
    model: str

    def __iter__(self) -> Iterator[ScoredItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> ScoredItem:
        return self.items[index]

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]

    @property
    def titles(self) -> list[str]:
        return [item.title for item in self.items]

    def __str__(self) -> str:
        return "\n".join(str(item) for item in self.items)

    @classmethod
    def from_proto(cls, message) -> "ScoredItems":
        return cls([ScoredItem.from_proto(item) for item in message.items], message.model)


@dataclass(frozen=True)
class Recommendation(ScoredItems):
    """The answer of Recommend: ranked items, and the reasoning chain when one was asked for and produced."""
    reasoning: str = ""
    reasoning_tokens: int = 0

    @classmethod
    def from_proto(cls, message) -> "Recommendation":
        return cls([ScoredItem.from_proto(item) for item in message.items], message.model,
                   message.reasoning, message.reasoning_tokens)


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    year: int
    genres: list[str]
    description: str
    num_ratings: int
    mean_rating: float

    @classmethod
    def from_proto(cls, message) -> "Item":
        return cls(message.item_id, message.title, message.year, list(message.genres), message.description,
                   message.num_ratings, message.mean_rating)


@dataclass(frozen=True)
class ModelInfo:
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
    loaded: list["ModelInfo"] = field(default_factory=list)
    default_model: str = ""

    @property
    def config(self) -> dict:
        """config_json parsed ({} when empty)."""
        return json.loads(self.config_json) if self.config_json else {}

    @classmethod
    def from_proto(cls, message, loaded=(), default_model: str = "") -> "ModelInfo":
        return cls(message.name, message.kind, message.dataset, message.num_items, message.num_users,
                   message.supports_reasoning, message.calibrated, message.num_parameters, message.config_json,
                   message.version, [cls.from_proto(m) for m in loaded], default_model)

    @classmethod
    def from_response(cls, response) -> "ModelInfo":
        return cls.from_proto(response.model, response.loaded, response.default_model)


@dataclass(frozen=True)
class LoadedModel:
    """The answer of Admin/LoadModel."""
    name: str
    version: int
