"""r2ec_client: Python client of the r2ec recommender server (docs/protocol.md).

    from r2ec_client import Client
    with Client("127.0.0.1:7878") as client:                    # or Client(["h1:7878", "h2:7878"])
        print(client.health())                                  # "SERVING"
        for item in client.recommend(history=[50, 172, 181], top_k=5):
            print(item.rank, item.item_id, item.title, item.score)

`AsyncClient` is the asyncio twin; `RpcError` is shaped like grpcio's (`.code()` a `StatusCode`, `.details()`,
`.trailing_metadata()`, plus `.field`); `RetryPolicy` says when a failed call is sent again; `r2ec_client.frames`
is the raw frame codec; `r2ec_client.plots` draws recommendations, item maps, training and benchmark curves (extra
`[plot]`); results convert with `.to_pandas()` (extra `[pandas]`).
"""
from ._retry import RetryPolicy
from .aio import AsyncClient
from .client import Client, RecommendStream, ServerStream
from .errors import ProtocolError, RpcError, StatusCode
from .results import (BatchRecommendations, DeletedUser, Event, FoundItems, History, Item, Items, LoadedModel, ModelInfo,
                      Recommendation, Recorded, ScoredItem, ScoredItems, Upserted)

__version__ = "0.2.0"

__all__ = ["AsyncClient", "BatchRecommendations", "Client", "DeletedUser", "Event", "FoundItems", "History", "Item", "Items",
           "LoadedModel", "ModelInfo", "ProtocolError", "Recommendation", "RecommendStream", "Recorded",
           "RetryPolicy", "RpcError", "ScoredItem", "ScoredItems", "ServerStream", "StatusCode", "Upserted"]
