"""The Events methods of both clients against a scripted peer that plays a tiny store (events.proto's rules:
idempotency keys, duplicates by index, history oldest first): the messages the client puts on the wire, the result
objects it makes of the answers (with the trailing metadata), batch_size chunks, errors re-indexed into the whole
input, and the async twins. Also to_pandas() of every tabular result. No server binary needed; the end-to-end
tests against the real store are in test_live_store.py."""
from __future__ import annotations

import asyncio
import math

import pytest

from scripted import WAIT, ScriptedServer
from r2ec_client import (AsyncClient, BatchRecommendations, Client, DeletedUser, History, Items, Recommendation,
                         Recorded, RpcError, StatusCode, Upserted)
from r2ec_client._proto import events_pb2, recommender_pb2, wire_pb2
from r2ec_client import frames as F

pd = pytest.importorskip("pandas")

EVENTS = "/r2ec.v1.Events/"


class TinyStore:
    """Answers Events calls on a scripted connection; `calls` records (method, request) as received."""

    def __init__(self, fail_chunk: int | None = None) -> None:
        self.events: dict[str, list] = {}
        self.keys: set[str] = set()
        self.calls: list = []
        self.fail_chunk = fail_chunk

    def serve(self, peer, index) -> None:
        while True:
            call = peer.frame()
            if call is None:
                return
            message = peer.frame()
            header = wire_pb2.CallHeader.FromString(call.payload)
            method = header.method.removeprefix(EVENTS)
            request_id = [("x-request-id", f"req-{len(self.calls)}")]
            handler = getattr(self, method)
            request_type = {"RecordEvents": events_pb2.RecordEventsRequest,
                            "UpsertItems": events_pb2.UpsertItemsRequest,
                            "GetUserHistory": events_pb2.GetUserHistoryRequest,
                            "DeleteUser": events_pb2.DeleteUserRequest}[method]
            request = request_type.FromString(message.payload)
            self.calls.append((method, request))
            try:
                peer.answer(call.stream_id, handler(request).SerializeToString(), metadata=request_id)
            except RpcError as error:
                peer.answer(call.stream_id, None, error.code().value[0], error.details(), error.field, request_id)

    def RecordEvents(self, request):  # noqa: N802 - the method's name
        if self.fail_chunk is not None and sum(m == "RecordEvents" for m, _ in self.calls) - 1 == self.fail_chunk:
            raise RpcError(StatusCode.NOT_FOUND, "events[1].item_id: unknown item id 'x'", "events[1].item_id")
        response = events_pb2.RecordEventsResponse()
        for index, event in enumerate(request.events):
            if event.idempotency_key and event.idempotency_key in self.keys:
                response.duplicates += 1
                response.duplicate_indices.append(index)
                continue
            self.keys.add(event.idempotency_key)
            self.events.setdefault(event.user_id, []).append(event)
            response.recorded += 1
        return response

    def UpsertItems(self, request):  # noqa: N802
        return events_pb2.UpsertItemsResponse(created=len(request.items), catalog_version=7, encoded_by=["default"])

    def GetUserHistory(self, request):  # noqa: N802
        stored = self.events.get(request.user_id, [])
        return events_pb2.GetUserHistoryResponse(events=stored[-(request.limit or 100):], total=len(stored))

    def DeleteUser(self, request):  # noqa: N802
        return events_pb2.DeleteUserResponse(deleted_events=len(self.events.pop(request.user_id, [])))


def test_record_history_delete_round_trip():
    store = TinyStore()
    server = ScriptedServer(store.serve)
    with Client(server.address, timeout=WAIT) as client:
        recorded = client.record_events([("u1", 50, 1000, "view", 0, "k1"), ("u1", 172, 1001, "", 4.5, "k2"),
                                         {"user_id": "u1", "item_id": 181, "idempotency_key": "k1"}])
        assert recorded == Recorded(2, 1, [2])
        assert recorded.request_id == "req-0"
        history = client.get_history("u1", limit=10)
        assert isinstance(history, History) and history.user_id == "u1" and history.total == 2
        assert history.item_ids == ["50", "172"]
        assert (history[0].timestamp, history[0].kind, history[1].rating) == (1000, "view", 4.5)
        frame = history.to_pandas()
        assert list(frame.columns) == ["user_id", "item_id", "timestamp", "kind", "rating", "idempotency_key"]
        assert frame.attrs == {"user_id": "u1", "total": 2}
        # the frame goes back in as it is: both keys are stored, so both are duplicates
        again = client.record_events(frame)
        assert (again.recorded, again.duplicates, again.duplicate_indices) == (0, 2, [0, 1])
        deleted = client.delete_user("u1")
        assert deleted == DeletedUser("u1", 2) and deleted.request_id == "req-3"
        assert client.get_history("u1").total == 0
    server.check()
    method, first = store.calls[0]
    assert method == "RecordEvents"
    assert [(e.user_id, e.item_id, e.timestamp, e.kind, e.rating, e.idempotency_key) for e in first.events] == [
        ("u1", "50", 1000, "view", 0.0, "k1"), ("u1", "172", 1001, "", 4.5, "k2"), ("u1", "181", 0, "", 0.0, "k1")]
    assert store.calls[1][1].limit == 10


def test_upsert_items_from_a_dataframe():
    store = TinyStore()
    server = ScriptedServer(store.serve)
    items = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["Brand New", "Newer"], "genres": ["Sci-Fi", "A|B"],
                          "metadata": [{"source": "test"}, None]})
    with Client(server.address, timeout=WAIT) as client:
        answer = client.upsert_items(items)
    server.check()
    assert answer == Upserted(2, 0, 7, ["default"])
    (_, request), = store.calls
    assert [(i.item_id, i.title, list(i.genres), i.metadata_json) for i in request.items] == [
        ("n1", "Brand New", ["Sci-Fi"], '{"source":"test"}'), ("n2", "Newer", ["A", "B"], "")]


def test_batch_size_sends_consecutive_calls_and_combines_their_answers():
    store = TinyStore()
    server = ScriptedServer(store.serve)
    events = [("u1", item, 0, "", 0, f"key-{item % 3}") for item in range(1, 8)]  # keys repeat every 3
    with Client(server.address, timeout=WAIT) as client:
        answer = client.record_events(events, batch_size=3)
    server.check()
    assert [len(request.events) for _, request in store.calls] == [3, 3, 1]
    assert (answer.recorded, answer.duplicates, answer.duplicate_indices) == (3, 4, [3, 4, 5, 6])


def test_a_refused_chunk_names_the_event_by_its_index_in_the_whole_input():
    store = TinyStore(fail_chunk=1)
    server = ScriptedServer(store.serve)
    with Client(server.address, timeout=WAIT) as client:
        with pytest.raises(RpcError) as failure:
            client.record_events([("u1", item) for item in range(1, 6)], batch_size=2)
    server.check()
    assert len(store.calls) == 2  # the third chunk is never sent
    error = failure.value
    assert (error.code(), error.field) == (StatusCode.NOT_FOUND, "events[3].item_id")
    assert "2 rows before" in error.details() and error.request_id == "req-1"


def test_async_twins():
    store = TinyStore()
    server = ScriptedServer(store.serve)

    async def session():
        async with AsyncClient(server.address, timeout=WAIT) as client:
            recorded = await client.record_events([("u2", 1), ("u2", 2), ("u2", 3)], batch_size=2)
            upserted = await client.upsert_items([("n9", "Nine")])
            history = await client.get_history("u2")
            deleted = await client.delete_user("u2")
            return recorded, upserted, history, deleted

    recorded, upserted, history, deleted = asyncio.run(asyncio.wait_for(session(), WAIT))
    server.check()
    assert (recorded.recorded, upserted.created, history.item_ids, deleted.deleted_events) == \
           (3, 1, ["1", "2", "3"], 3)


def test_trailing_metadata_and_probability_presence_reach_the_result():
    def script(peer, index):
        sid, _, _ = peer.call()
        items = [recommender_pb2.ScoredItem(item_id="1", title="A", score=2.0, probability=0.0, rank=1),
                 recommender_pb2.ScoredItem(item_id="2", title="B", score=1.0, rank=2)]
        response = recommender_pb2.RecommendResponse(items=items, model="m", model_version=3)
        peer.answer(sid, response.SerializeToString(), metadata=[("x-request-id", "abc")])
        sid, _, _ = peer.call()
        peer.answer(sid, None, code=3, message="top_k: too big", field="top_k", metadata=[("x-request-id", "def")])
        assert peer.frame() is None

    server = ScriptedServer(script)
    with Client(server.address, timeout=WAIT) as client:
        result = client.recommend(history=[1], return_probabilities=True)
        with pytest.raises(RpcError) as failure:
            client.recommend(history=[1], top_k=99)
    server.check()
    assert [item.probability for item in result] == [0.0, None]  # present-but-zero is not absent
    assert (result.model, result.model_version, result.request_id) == ("m", 3, "abc")
    assert failure.value.trailing_metadata() == (("x-request-id", "def"),) and failure.value.request_id == "def"
    assert "[request id def]" in str(failure.value)
    frame = result.to_pandas()
    assert list(frame.columns) == ["rank", "item_id", "title", "score", "probability"]
    assert frame["probability"].iloc[0] == 0.0 and math.isnan(frame["probability"].iloc[1])
    assert frame.attrs == {"model": "m", "model_version": 3}


def test_batch_and_items_to_pandas():
    batch = BatchRecommendations.from_proto(recommender_pb2.RecommendBatchResponse(results=[
        recommender_pb2.RecommendBatchResult(code=0, response=recommender_pb2.RecommendResponse(
            items=[recommender_pb2.ScoredItem(item_id="1", title="A", score=2.0, rank=1)], model="m")),
        recommender_pb2.RecommendBatchResult(code=5, message="unknown item")]))
    assert isinstance(batch[0], Recommendation) and batch[1].code() is StatusCode.NOT_FOUND
    frame = batch.to_pandas()
    assert frame["request"].tolist() == [0, 1] and frame["item_id"].iloc[0] == "1"
    assert frame["error"].iloc[1] == "NOT_FOUND: unknown item"
    items = Items.from_proto(recommender_pb2.GetItemsResponse(items=[recommender_pb2.Item(
        item_id="50", title="Star Wars", year=1977, genres=["Sci-Fi"], metadata_json='{"k": 1}', created=5)]))
    frame = items.to_pandas()
    assert frame.to_dict("records") == [{"item_id": "50", "title": "Star Wars", "year": 1977, "genres": ["Sci-Fi"],
                                         "description": "", "num_ratings": 0, "mean_rating": 0.0,
                                         "metadata": {"k": 1}, "created": 5}]


def test_lost_answer_of_a_write_frame_is_unavailable():
    """A RecordEvents whose connection dies before the TRAILER: the outcome is unknown to the client."""
    def script(peer, index):
        peer.call()
        peer.sock.sendall(F.encode_header(F.FrameType.MESSAGE, 1, 10) + b"abc")

    server = ScriptedServer(script)
    with Client(server.address, timeout=WAIT) as client:
        with pytest.raises(RpcError) as failure:
            client.record_events([("u1", 1)])
    server.check()
    assert failure.value.code() is StatusCode.UNAVAILABLE and not failure.value.not_processed
