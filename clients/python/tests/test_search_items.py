"""SearchItems through the Python client against the session's real server (popularity over ml-100k, no store):
matches checked against the dataset's item file read here, order against the ratings counted here from the
interactions file, paging, and refusals by the client (before sending) and by the server (sent raw), each naming its
field."""
from __future__ import annotations

from collections import Counter

import pytest

from ml100k import DATASET, items
from r2ec_client import FoundItems, RpcError, StatusCode
from r2ec_client._proto.r2ec.v1 import recommender_pb2
from rawwire import RawConnection


def test_title_and_genre_filters_match_the_dataset(client):
    expected = {i for i, r in items().items() if "war" in r["title"].lower() and "Drama" in r["genres"]}
    found = client.search_items("WAR", ["drama"], limit=1000)
    assert isinstance(found, FoundItems)
    assert found.total_matches == len(expected) > 3
    assert {i.item_id for i in found.items} == expected


def test_most_rated_first_then_ascending_id(client):
    found = client.search_items(min_year=1994, max_year=1994, limit=1000)
    expected = [i for i, r in items().items() if r["year"] == 1994]
    assert found.total_matches == len(expected)
    counts = [i.num_ratings for i in found.items]
    assert counts == sorted(counts, reverse=True)
    # Within equal counts, ascending catalogue order (numeric ids sort as the catalogue sorts them).
    ids = [i.item_id for i in found.items]
    for a, b in zip(found.items, found.items[1:]):
        if a.num_ratings == b.num_ratings:
            assert ids.index(a.item_id) < ids.index(b.item_id)
    # The counts are the ratings of the training data: never more than the whole interactions file holds.
    with open(DATASET / "ml-100k.inter", encoding="utf-8") as f:
        next(f)
        ratings = Counter(line.split("\t")[1] for line in f)
    assert all(i.num_ratings <= ratings[i.item_id] for i in found.items)
    assert ratings[found.items[0].item_id] >= ratings[found.items[-1].item_id]


def test_paging_walks_every_match_once(client):
    whole = client.search_items("the", limit=1000)
    pages, offset = [], 0
    while offset < whole.total_matches:
        page = client.search_items("the", limit=37, offset=offset)
        assert page.total_matches == whole.total_matches
        pages += [i.item_id for i in page.items]
        offset += 37
    assert pages == [i.item_id for i in whole.items]


def test_metadata_filters_match_nothing_without_a_store(client):
    assert client.search_items(metadata_equals={"studio": "Pixar"}).total_matches == 0


def test_client_side_refusals_name_the_argument(client):
    with pytest.raises(RpcError) as e:
        client.search_items(limit=-1)
    assert e.value.code() is StatusCode.INVALID_ARGUMENT and e.value.field == "limit"
    with pytest.raises(RpcError) as e:
        client.search_items(metadata_equals={"a": [1]})
    assert "metadata_equals.a" in str(e.value)


@pytest.mark.parametrize("request_fields, field", [
    ({"limit": 1001}, "limit"),
    ({"genres": [""]}, "genres[0]"),
    ({"genres": ["x"] * 17}, "genres"),
    ({"metadata": [recommender_pb2.MetadataFilter(key="", value="1")]}, "metadata[0].key"),
    ({"min_year": 2000, "max_year": 1990}, "min_year"),
    ({"query": "q" * 257}, "query"),
    ({"offset": 100000}, "offset"),
    ({"model": "no-such-model"}, "model"),
])
def test_server_refusals_name_the_field(server, request_fields, field):
    with RawConnection(server.host, server.port) as connection:
        connection.send_call(1, "/r2ec.v1.Recommender/SearchItems",
                             recommender_pb2.SearchItemsRequest(**request_fields).SerializeToString())
        status = connection.expect_status(1, "NOT_FOUND" if field == "model" else "INVALID_ARGUMENT")
    assert status.field == field, status
