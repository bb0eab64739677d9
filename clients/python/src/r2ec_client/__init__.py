"""r2ec_client: Python client of the r2ec recommender server (docs/protocol.md).

    from r2ec_client import Client
    with Client("127.0.0.1:7878") as client:
        print(client.health())                                  # "SERVING"
        for item in client.recommend(history=[50, 172, 181], top_k=5).items:
            print(item.rank, item.item_id, item.title, item.score)

`AsyncClient` is the asyncio twin; `RpcError` carries the status by its gRPC name (`.code`); `r2ec_client.frames`
is the raw frame codec; `r2ec_client.plots` draws training and benchmark curves (extra `[plot]`).
"""
from .aio import AsyncClient
from .client import Client, RecommendStream, ServerStream
from .errors import ProtocolError, RpcError, StatusCode
from .results import Item, LoadedModel, ModelInfo, Recommendation, ScoredItem, ScoredItems

__version__ = "0.1.0"

__all__ = ["AsyncClient", "Client", "Item", "LoadedModel", "ModelInfo", "ProtocolError", "Recommendation",
           "RecommendStream", "RpcError", "ScoredItem", "ScoredItems", "ServerStream", "StatusCode"]
