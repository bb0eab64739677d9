"""Arguments the client judges on its own: each bad one raises RpcError(INVALID_ARGUMENT) naming the field as the
server would, before anything is sent (a scripted peer checks no CALL ever reaches it); and the row forms (dicts,
tuples, Event objects, DataFrames with the proto's column names, datetimes) build the messages the contract
describes. No server binary needed."""
from __future__ import annotations

import asyncio
import datetime as dt
import math

import pytest

from scripted import WAIT, ScriptedServer
from r2ec_client import AsyncClient, Client, Event, RpcError, StatusCode
from r2ec_client import requests as R
from r2ec_client._api import chunk_failed

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


def refused(call, *args, **kwargs) -> RpcError:
    with pytest.raises(RpcError) as failure:
        call(*args, **kwargs)
    assert failure.value.code() is StatusCode.INVALID_ARGUMENT, failure.value
    assert failure.value.details().startswith(failure.value.field + ": "), "worded as the server words its own"
    return failure.value


BAD_CALLS = [
    ("recommend", dict(history=[50], top_k=-1), "top_k"),
    ("recommend", dict(history=[50], top_k=2**32), "top_k"),
    ("recommend", dict(history=[50], top_k=2.5), "top_k"),
    ("recommend", dict(history=[50], priority=-1), "priority"),
    ("recommend", dict(history=[50, 3.0]), "history[1].item_id"),
    ("recommend", dict(history=[50, None]), "history[1].item_id"),
    ("recommend", dict(history=[(50, "yesterday")]), "history[0].timestamp"),
    ("recommend", dict(history=[(50, 0, float("inf"))]), "history[0].rating"),
    ("recommend", dict(history=[{"item": 50}]), "history[0]"),
    ("recommend", dict(history=[50], exclude=[True]), "exclude_item_ids[0]"),
    ("recommend", dict(history=[50], temperature=float("inf")), "sampling.temperature"),
    ("recommend", dict(history=[50], seed=-3), "sampling.seed"),
    ("recommend", dict(history=[50], reasoning="yes"), "mode"),
    ("recommend", dict(history=[50], model=7), "model"),
    ("recommend", dict(history=[50], timeout=float("nan")), "timeout"),
    ("recommend", dict(history=[50], metadata=[("X-Upper", "v")]), "metadata[0].key"),
    ("recommend", dict(history=[50], metadata=[("k", 5)]), "metadata[0].value"),
    ("recommend", dict(history=[50], metadata=["k=v"]), "metadata[0]"),
    ("recommend_batch", dict(requests=[{"history": [50]}, {"history": [50], "top_k": -2}]), "requests[1].top_k"),
    ("recommend_batch", dict(requests=[{"histories": [50]}]), "requests[0]"),
    ("score_items", dict(item_ids=[1, 2.0], history=[50]), "item_ids[1]"),
    ("similar_items", dict(item_id=None), "item_id"),
    ("get_items", dict(item_ids=[[1]]), "item_ids[0]"),
    ("record_events", dict(events=[]), "events"),
    ("record_events", dict(events=[("u1", 50), ("", 51)]), "events[1].user_id"),
    ("record_events", dict(events=[("u" * 129, 50)]), "events[0].user_id"),
    ("record_events", dict(events=[("u\n1", 50)]), "events[0].user_id"),
    ("record_events", dict(events=[("u1", 50, 0, "Click")]), "events[0].kind"),
    ("record_events", dict(events=[("u1", 50, 0, "k" * 33)]), "events[0].kind"),
    ("record_events", dict(events=[("u1", 50, 0, "", 2e6)]), "events[0].rating"),
    ("record_events", dict(events=[("u1", 50, 0, "", 0, "k" * 129)]), "events[0].idempotency_key"),
    ("record_events", dict(events=[{"user_id": "u1", "item": 50}]), "events[0]"),
    ("record_events", dict(events=[{"user_id": "u1"}]), "events[0].item_id"),
    ("record_events", dict(events=[("u1", 50)], batch_size=0), "batch_size"),
    ("upsert_items", dict(items=[{"item_id": "n1"}]), "items[0].title"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "t" * 513}]), "items[0].title"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "T", "genres": ["g"] * 33}]), "items[0].genres"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "T", "genres": ["ok", ""]}]), "items[0].genres[1]"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "T", "metadata": "[1, 2]"}]), "items[0].metadata_json"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "T", "metadata": "{oops"}]), "items[0].metadata_json"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "T", "metadata": {"x": float("nan")}}]),
     "items[0].metadata_json"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "T", "year": 2**31}]), "items[0].year"),
    ("upsert_items", dict(items=[{"item_id": "n1", "title": "T", "description": "d" * 8193}]),
     "items[0].description"),
    ("get_history", dict(user_id="u1", limit=10_001), "limit"),
    ("get_history", dict(user_id=""), "user_id"),
    ("delete_user", dict(user_id=None), "user_id"),
]


def silent_peer(seen: list):
    def script(peer, index):
        seen.append(peer.frame())  # None: the client closed without sending a single frame
    return script


@pytest.mark.parametrize("method, arguments, field", BAD_CALLS,
                         ids=[f"{m}-{f}-{i}" for i, (m, _, f) in enumerate(BAD_CALLS)])
def test_bad_argument_is_refused_before_anything_is_sent(method, arguments, field):
    seen: list = []
    server = ScriptedServer(silent_peer(seen))
    with Client(server.address, timeout=WAIT) as client:
        error = refused(getattr(client, method), **arguments)
    server.check()
    assert error.field == field
    assert seen == [None]


def test_async_client_refuses_the_same_way():
    seen: list = []
    server = ScriptedServer(silent_peer(seen))

    async def session():
        async with AsyncClient(server.address, timeout=WAIT) as client:
            with pytest.raises(RpcError) as failure:
                await client.record_events([("u1", 50, 0, "Click")])
            return failure.value

    error = asyncio.run(asyncio.wait_for(session(), WAIT))
    server.check()
    assert (error.code(), error.field, seen) == (StatusCode.INVALID_ARGUMENT, "events[0].kind", [None])


# ---- what the row forms build ------------------------------------------------------------------------------------

def test_event_forms_agree():
    when = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    seconds = int(when.timestamp())
    expected = [("u1", "50", seconds, "view", 4.0, "k1"), ("u1", "51", 0, "", 0.0, "")]
    forms = {
        "tuples": [("u1", 50, seconds, "view", 4, "k1"), ("u1", "51")],
        "dicts": [{"user_id": "u1", "item_id": 50, "timestamp": when, "kind": "view", "rating": 4.0,
                   "idempotency_key": "k1"}, {"user_id": "u1", "item_id": 51}],
        "events": [Event("u1", "50", seconds, "view", 4.0, "k1"), Event("u1", "51")],
        "dataframe": pd.DataFrame({"user_id": ["u1", "u1"], "item_id": [50, 51],
                                   "timestamp": pd.to_datetime([when.replace(tzinfo=None), None]),
                                   "kind": ["view", None], "rating": [4.0, np.nan],
                                   "idempotency_key": ["k1", None]}),
    }
    for name, events in forms.items():
        built = [(e.user_id, e.item_id, e.timestamp, e.kind, e.rating, e.idempotency_key)
                 for e in R.record_events_messages(events)]
        assert built == expected, name


def test_dataframe_columns_are_checked_by_name():
    error = refused(R.record_events_messages, pd.DataFrame({"user": ["u1"], "item_id": [50]}))
    assert error.field == "events" and "unknown column 'user'" in error.details()
    error = refused(R.record_events_messages, pd.DataFrame({"user_id": ["u1"]}))
    assert "missing column 'item_id'" in error.details()
    # integer ids with a gap become floats in pandas: refused, not sent as "50.0"
    error = refused(R.record_events_messages, pd.DataFrame({"user_id": ["u1", "u2"], "item_id": [50, None]}))
    assert error.field == "events[0].item_id" and "float" in error.details()


def test_unix_seconds_from_every_time_form():
    stamp = 1_700_000_000
    aware = dt.datetime.fromtimestamp(stamp, dt.timezone.utc)
    for value in (stamp, float(stamp) + 0.9, aware, aware.replace(tzinfo=None), pd.Timestamp(aware),
                  np.datetime64(stamp, "s"), np.int64(stamp)):
        assert R.unix_seconds("t", value) == stamp, value
    for missing in (None, float("nan"), pd.NaT, pd.NA):
        assert R.unix_seconds("t", missing) == 0


def test_item_record_forms():
    frame = pd.DataFrame({"item_id": ["n1", "n2"], "title": ["New One", "Two"], "year": [2024.0, np.nan],
                          "genres": ["Sci-Fi|Drama", None], "description": ["about", None],
                          "metadata_json": ['{"source": "test"}', None]})
    first, second = R.upsert_items_messages(frame)
    assert (first.item_id, first.title, first.year, list(first.genres), first.description, first.metadata_json) == \
           ("n1", "New One", 2024, ["Sci-Fi", "Drama"], "about", '{"source": "test"}')
    assert (second.year, list(second.genres), second.metadata_json) == (0, [], "")
    (record,) = R.upsert_items_messages([{"item_id": 7, "title": "T", "genres": ("A", "B"),
                                          "metadata": {"tags": ["x"], "n": 1}}])
    assert record.item_id == "7" and list(record.genres) == ["A", "B"]
    assert record.metadata_json == '{"tags":["x"],"n":1}'


def test_recommend_request_fields():
    request = R.recommend_request(history=pd.DataFrame({"item_id": [50, 172], "rating": [5.0, 4.0]}), user_id=9,
                                  top_k=3, priority=2, exclude=50, temperature=0.7, seed=11,
                                  now=dt.datetime(2000, 1, 1))
    assert [(e.item_id, e.rating) for e in request.history] == [("50", 5.0), ("172", 4.0)]
    assert (request.user_id, request.top_k, request.priority, list(request.exclude_item_ids)) == ("9", 3, 2, ["50"])
    assert math.isclose(request.sampling.temperature, 0.7, rel_tol=1e-6) and request.sampling.seed == 11
    assert request.now == 946684800
    assert not R.recommend_request(history=[1]).HasField("sampling")  # defaults leave it unset


def test_metadata_is_sent_and_a_call_token_replaces_the_clients():
    seen = []

    def script(peer, index):
        for _ in range(2):
            sid, header, _ = peer.call()
            seen.append([(m.key, m.value) for m in header.metadata])
            peer.answer(sid, b"\x08\x01")
        assert peer.frame() is None

    server = ScriptedServer(script)
    with Client(server.address, token="client-token", timeout=WAIT) as client:
        client.health(metadata={"x-request-id": "r-1", "x-tenant": "a"})
        client.health(metadata=[("authorization", "Bearer call-token")])
    server.check()
    assert seen == [[("authorization", "Bearer client-token"), ("x-request-id", "r-1"), ("x-tenant", "a")],
                    [("authorization", "Bearer call-token")]]


def test_chunk_errors_are_reindexed_into_the_whole_input():
    error = chunk_failed(RpcError(StatusCode.NOT_FOUND, "events[3].item_id: unknown item id 'x'",
                                  "events[3].item_id"), 2000)
    assert error.field == "events[2003].item_id"
    assert error.details().startswith("events[2003].item_id: unknown item id 'x'")
    assert "2000 rows before" in error.details()
