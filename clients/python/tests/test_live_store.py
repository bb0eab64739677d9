"""The Events methods end to end against a real server with a SQLite store (`serve --store sqlite:PATH`, filled by
`r2ec store import` from ml-100k): record, read back, idempotency keys, DataFrames in and out, freshness of
Recommend(user_id), upserted items in GetItems, deletion, field names of refused events, and the shell client's
record/history. Skipped until the server binary has the store."""
from __future__ import annotations

import subprocess
import time

import pytest

from conftest import REPO, ServerProcess, server_binary, server_unavailable_reason
from r2ec_client import Client, RpcError, StatusCode

SHELL = REPO / "clients" / "shell" / "r2ec.sh"


def store_unavailable_reason() -> str | None:
    reason = server_unavailable_reason()
    if reason:
        return reason
    help_text = subprocess.run([str(server_binary()), "serve", "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    return None if "--store" in help_text else f"{server_binary()} serve has no --store yet"


pytestmark = pytest.mark.skipif(store_unavailable_reason() is not None, reason=store_unavailable_reason() or "")


@pytest.fixture(scope="module")
def store_server(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "r2ec.sqlite"
    url = f"sqlite:{path}"
    imported = subprocess.run([str(server_binary()), "store", "import", "--dataset", str(REPO / "data" / "ml-100k"),
                               "--store", url], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert imported.returncode == 0, imported.stderr
    server = ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", "--dataset",
                            str(REPO / "data" / "ml-100k"), "--model", "popularity", "--store", url])
    yield server
    assert server.stop() == 0, server.output


@pytest.fixture
def store_client(store_server):
    with Client(store_server.address, timeout=30) as client:
        yield client


def test_recorded_events_are_read_back_and_keys_make_repeats_no_ops(store_client):
    user = f"py-{time.time_ns()}"
    first = store_client.record_events([(user, 50, 1_700_000_000, "view", 0, f"{user}-a"),
                                        (user, 172, 1_700_000_060, "", 4.5, f"{user}-b")])
    assert (first.recorded, first.duplicates) == (2, 0)
    again = store_client.record_events([(user, 50, 1_700_000_000, "view", 0, f"{user}-a"), (user, 181)])
    assert (again.recorded, again.duplicates, again.duplicate_indices) == (1, 1, [0])
    history = store_client.get_history(user)
    assert history.total == 3 and history.item_ids[:2] == ["50", "172"]
    assert (history[0].kind, history[1].rating) == ("view", 4.5)
    frame = history.to_pandas()
    assert frame["user_id"].eq(user).all()


def test_recommend_by_user_id_reflects_events_at_once(store_client):
    user = f"fresh-{time.time_ns()}"
    cold = store_client.recommend(user_id=user, top_k=5)  # no events: a cold-start answer, not NOT_FOUND
    assert len(cold.items) == 5
    store_client.record_events([(user, item) for item in cold.item_ids[:2]])
    warm = store_client.recommend(user_id=user, top_k=5)
    assert not set(cold.item_ids[:2]) & set(warm.item_ids)  # seen now, so left out


def test_dataframe_in_and_delete(store_client):
    pd = pytest.importorskip("pandas")
    user = f"df-{time.time_ns()}"
    frame = pd.DataFrame({"user_id": [user] * 3, "item_id": [1, 2, 3],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", None]), "rating": [5, None, 3]})
    assert store_client.record_events(frame).recorded == 3
    assert store_client.delete_user(user).deleted_events == 3
    assert store_client.get_history(user).total == 0


def test_upserted_item_is_in_the_catalogue(store_client):
    item = f"new-{time.time_ns()}"
    answer = store_client.upsert_items([{"item_id": item, "title": "A Brand New Film", "year": 2024,
                                         "genres": ["Sci-Fi"], "metadata": {"source": "pytest"}}])
    assert answer.created == 1 and answer.catalog_version > 0
    (entry,) = store_client.get_items([item])
    assert (entry.title, entry.metadata, entry.created > 0) == ("A Brand New Film", {"source": "pytest"}, True)


def test_an_unknown_item_refuses_the_whole_batch(store_client):
    user = f"bad-{time.time_ns()}"
    with pytest.raises(RpcError) as failure:
        store_client.record_events([(user, 50), (user, "no-such-item")])
    assert failure.value.code() in (StatusCode.NOT_FOUND, StatusCode.INVALID_ARGUMENT)
    assert failure.value.field == "events[1].item_id"
    assert store_client.get_history(user).total == 0  # nothing of the batch was stored


def test_shell_record_and_history(store_server):
    user = f"sh-{time.time_ns()}"
    recorded = subprocess.run(["bash", str(SHELL), store_server.address, "record", user, "50", "172"],
                              capture_output=True, text=True, timeout=60)
    assert (recorded.returncode, recorded.stdout) == (0, "recorded 2 duplicates 0\n"), recorded.stderr
    history = subprocess.run(["bash", str(SHELL), store_server.address, "history", user], capture_output=True,
                             text=True, timeout=60)
    assert history.returncode == 0, history.stderr
    assert [line.split()[1:3] for line in history.stdout.splitlines()] == [["50", "interaction"],
                                                                          ["172", "interaction"]]
