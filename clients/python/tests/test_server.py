"""The Python client against a real `r2ec serve --model popularity` over ml-100k: every method, the history forms,
top_k, seen-item exclusion, include_seen, exclude/candidates, titles, model info, streams, batches and admin.
Expected values come from the dataset files themselves (data/ml-100k), not from earlier server output."""
from __future__ import annotations

import collections

import pytest

from conftest import REPO
from r2ec_client import Recommendation, RpcError, StatusCode

CATALOGUE_SIZE = 1682


def ml100k_interactions() -> list[tuple[str, str]]:
    """(user_id, item_id) rows of ml-100k.inter (RecBole atomic format: a typed header line, then TSV rows)."""
    rows = []
    with open(REPO / "data" / "ml-100k" / "ml-100k.inter") as file:
        columns = [name.split(":")[0] for name in next(file).rstrip("\n").split("\t")]
        user, item = columns.index("user_id"), columns.index("item_id")
        for line in file:
            fields = line.rstrip("\n").split("\t")
            rows.append((fields[user], fields[item]))
    return rows


@pytest.fixture(scope="module")
def popular_items() -> list[str]:
    """Item ids by interaction count, most first (what a popularity model ranks by)."""
    counts = collections.Counter(item for _, item in ml100k_interactions())
    return [item for item, _ in counts.most_common()]


def test_health(client):
    assert client.health() == "SERVING"
    assert client.health("r2ec.v1.Recommender") == "SERVING"


def test_health_of_unknown_service_is_not_found(client):
    with pytest.raises(RpcError) as failure:
        client.health("no.such.Service")
    assert failure.value.code() == StatusCode.NOT_FOUND


def test_watch_health_starts_with_the_current_state(client):
    with client.watch_health(timeout=10) as states:
        assert next(states) == "SERVING"
    assert client.health() == "SERVING"  # the cancelled stream left the connection usable


def test_ping(client):
    assert client.ping(timeout=5) < 5


def test_recommend_ranks_popular_unseen_items(client, popular_items):
    history = [popular_items[0], popular_items[2]]
    result = client.recommend(history=[int(i) for i in history])
    assert isinstance(result, Recommendation)
    assert len(result.items) == 10
    assert [item.rank for item in result.items] == list(range(1, 11))
    scores = [item.score for item in result.items]
    assert scores == sorted(scores, reverse=True)
    assert not set(history) & set(result.item_ids)
    assert all(item.title for item in result.items)
    assert result.model
    # a popularity model over the whole dataset: the most popular items but the seen ones, in order
    expected = [item for item in popular_items if item not in history][:10]
    assert len(set(result.item_ids) & set(expected)) >= 8  # ties in counts may swap a few at the edge


def test_history_forms_agree(client, popular_items):
    ids = popular_items[5:8]
    as_ints = client.recommend(history=[int(i) for i in ids])
    as_strs = client.recommend(history=[str(i) for i in ids])
    as_tuples = client.recommend(history=[(i, 880000000 + n, 4.0) for n, i in enumerate(ids)])
    assert as_ints.item_ids == as_strs.item_ids == as_tuples.item_ids


def test_top_k(client):
    assert len(client.recommend(history=[50], top_k=3).items) == 3
    assert len(client.recommend(history=[50], top_k=25).items) == 25


def test_top_k_zero_means_the_default_ten(client):
    assert len(client.recommend(history=[50], top_k=0).items) == 10


def test_top_k_whole_catalogue_with_seen_included(client):
    result = client.recommend(history=[50], top_k=CATALOGUE_SIZE, include_seen=True)
    assert len(result.items) == CATALOGUE_SIZE
    assert len(set(result.item_ids)) == CATALOGUE_SIZE


def test_seen_items_are_excluded_by_default_and_include_seen_allows_them(client, popular_items):
    top = popular_items[:5]
    excluded = client.recommend(history=top, top_k=10)
    assert not set(top) & set(excluded.item_ids)
    included = client.recommend(history=top, top_k=10, include_seen=True)
    assert set(top) <= set(included.item_ids)


def test_exclude(client, popular_items):
    unwanted = popular_items[1:4]
    result = client.recommend(history=[popular_items[0]], exclude=[int(i) for i in unwanted])
    assert not set(unwanted) & set(result.item_ids)
    assert len(result.items) == 10


def test_candidates(client, popular_items):
    seen = popular_items[0]
    candidates = [seen, popular_items[300], popular_items[10], popular_items[100], popular_items[200]]
    result = client.recommend(history=[seen], candidates=candidates, top_k=3)
    # only candidates, never the seen one, ranked by popularity
    assert result.item_ids == [popular_items[10], popular_items[100], popular_items[200]]


def test_known_user(client):
    rows = ml100k_interactions()
    seen = {item for user, item in rows if user == "1"}
    result = client.recommend(user_id=1)
    assert len(result.items) == 10
    assert not seen & set(result.item_ids)


def test_unknown_user_is_not_found(client):
    with pytest.raises(RpcError) as failure:
        client.recommend(user_id="no-such-user")
    assert failure.value.code() == StatusCode.NOT_FOUND


def test_get_items_titles(client):
    items = client.get_items(["50", 1])
    assert [item.item_id for item in items] == ["50", "1"]
    assert items[0].title == "Star Wars" and items[0].year == 1977
    assert items[1].title == "Toy Story"
    assert "Sci-Fi" in items[0].genres


def test_model_info(client):
    info = client.model_info()
    assert info.kind == "popularity"
    assert info.num_items == CATALOGUE_SIZE
    assert not info.supports_reasoning
    assert info.default_model == info.name
    assert info.name in [model.name for model in info.loaded]


def test_model_info_of_unknown_model_is_not_found(client):
    with pytest.raises(RpcError) as failure:
        client.model_info("no-such-model")
    assert failure.value.code() == StatusCode.NOT_FOUND


def test_score_items_in_request_order(client, popular_items):
    asked = [popular_items[50], popular_items[1], popular_items[20]]
    result = client.score_items(asked, history=[popular_items[0]])
    assert result.item_ids == asked
    assert [item.rank for item in result.items] == [3, 1, 2]
    assert result.items[1].score >= result.items[2].score >= result.items[0].score


def test_similar_items(client):
    try:
        result = client.similar_items(50, top_k=5)
    except RpcError as error:  # a popularity model has no notion of item similarity; it may say so
        assert error.code() in (StatusCode.FAILED_PRECONDITION, StatusCode.UNIMPLEMENTED), error
        return
    assert len(result.items) == 5 and "50" not in result.item_ids


def test_recommend_stream_without_reasoning_is_just_the_result(client):
    stream = client.recommend_stream(history=[50, 172], top_k=5)
    events = list(stream)
    assert len(events) == 1 and isinstance(events[0], Recommendation)
    assert events[0].item_ids == client.recommend(history=[50, 172], top_k=5).item_ids
    assert stream.result is events[0]


def test_reasoning_needs_an_lm_head(client):
    with pytest.raises(RpcError) as failure:
        client.recommend(history=[50], reasoning=True)
    assert failure.value.code() == StatusCode.FAILED_PRECONDITION


def test_recommend_batch_has_a_status_per_element(client):
    results = client.recommend_batch([{"history": [50], "top_k": 3}, {"history": []}, {"history": [172]}])
    assert isinstance(results[0], Recommendation) and len(results[0].items) == 3
    assert isinstance(results[1], RpcError) and results[1].code() == StatusCode.INVALID_ARGUMENT
    assert isinstance(results[2], Recommendation) and "172" not in results[2].item_ids


def test_admin_load_and_unload(client):
    loaded = client.load_model("pop-copy", "popularity")
    assert loaded.name == "pop-copy" and loaded.version >= 1
    try:
        assert client.model_info("pop-copy").kind == "popularity"
        assert client.recommend(history=[50], model="pop-copy").model == "pop-copy"
    finally:
        client.unload_model("pop-copy")
    with pytest.raises(RpcError) as failure:
        client.model_info("pop-copy")
    assert failure.value.code() == StatusCode.NOT_FOUND


def test_priority_and_per_call_metadata(client):
    assert len(client.recommend(history=[50], priority=1, metadata=[("x-trace", "t-1")]).items) == 10
    with pytest.raises(RpcError) as failure:
        client.recommend(history=[50], priority=99)  # the server's --priority-levels (2) bound it
    assert (failure.value.code(), failure.value.field) == (StatusCode.INVALID_ARGUMENT, "priority")


def test_probability_is_none_where_the_model_has_no_calibrator(client):
    result = client.recommend(history=[50], top_k=5, return_probabilities=True)
    assert [item.probability for item in result] == [None] * 5
    assert result.to_pandas()["probability"].isna().all()


def test_results_to_pandas(client, popular_items):
    frame = client.recommend(history=[50], top_k=5).to_pandas()
    assert list(frame.columns) == ["rank", "item_id", "title", "score", "probability"]
    assert frame["rank"].tolist() == [1, 2, 3, 4, 5] and frame.attrs["model"] == client.model_info().name
    items = client.get_items(["50", "1"]).to_pandas()
    assert items.set_index("item_id").loc["50", "title"] == "Star Wars"
    assert client.model_info().to_pandas()["default"].sum() == 1


def test_client_side_refusals_match_the_servers_field_names(client):
    """The same bad top_k, judged by the client (negative: refused before sending) and by the server (over the
    catalogue): one code, one field name."""
    with pytest.raises(RpcError) as local:
        client.recommend(history=[50], top_k=-1)
    with pytest.raises(RpcError) as remote:
        client.recommend(history=[50], top_k=CATALOGUE_SIZE + 1)
    assert (local.value.code(), local.value.field) == (remote.value.code(), remote.value.field)


def test_values_the_wire_can_carry_but_the_protocol_refuses_are_named(client):
    """Raw requests (this client refuses most of these before sending): an enum number the server does not know,
    times before 1970; each refused INVALID_ARGUMENT naming the field, in a batch with the element's index."""
    from r2ec_client._proto.r2ec.v1 import recommender_pb2 as pb

    def refusal(method: str, request) -> tuple[int, str]:
        payloads, status = client.call_raw(f"/r2ec.v1.Recommender/{method}", request.SerializeToString(), timeout=10)
        assert payloads == []
        return status.code, status.field

    history = [pb.HistoryEvent(item_id="50")]
    invalid = StatusCode.INVALID_ARGUMENT.value[0]
    assert refusal("Recommend", pb.RecommendRequest(history=history, mode=7)) == (invalid, "mode")
    assert refusal("Recommend", pb.RecommendRequest(history=[pb.HistoryEvent(item_id="50", timestamp=-5)])) == (
        invalid, "history[0].timestamp")
    assert refusal("Recommend", pb.RecommendRequest(history=history, now=-1)) == (invalid, "now")
    assert refusal("ScoreItems", pb.ScoreItemsRequest(history=history, item_ids=["1"], now=-1)) == (invalid, "now")
    batch = pb.RecommendBatchRequest(requests=[pb.RecommendRequest(history=history),
                                               pb.RecommendRequest(history=history, mode=2)])
    assert refusal("RecommendBatch", batch) == (invalid, "requests[1].mode")
