"""The Events methods end to end against a real server over a real store (`serve --store URL`, filled by
`r2ec store import` from ml-100k), for SQLite and for PostgreSQL (a private server started like the Swift store
tests start theirs, tests/localpg.py): record, read back, idempotency keys, DataFrames in and out, freshness of
Recommend(user_id), upserted items in GetItems, deletion, every bad input of issue 12 as the server answers it (sent
raw, past the client's own checks), the store down (UNAVAILABLE, retryable; cached users still served), durability
across SIGKILL (every acknowledged event is in the store, read back by sqlite3 and psql), and the shell client's
record/history."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO, ServerProcess, server_binary, server_unavailable_reason
from localpg import LocalPostgres, binaries
from r2ec_client import Client, RpcError, StatusCode
from r2ec_client._proto.r2ec.v1 import events_pb2, recommender_pb2
from r2ec_client._retry import NO_RETRY
from rawwire import RawConnection

SHELL = REPO / "clients" / "shell" / "r2ec.sh"
DATASET = REPO / "data" / "ml-100k"
EVENTS = "/r2ec.v1.Events/"

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")


# -- stores and servers ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def postgres():
    if binaries() is None:
        pytest.fail("no PostgreSQL server binaries: install Debian's postgresql (make test does)")
    server = LocalPostgres()
    yield server
    server.close()


class Store:
    """A store URL filled from ml-100k, with an independent reader (sqlite3 or psql) of its rows."""

    def __init__(self, kind: str, url: str, query) -> None:
        self.kind, self.url, self.query = kind, url, query


def import_ml100k(url: str) -> None:
    done = subprocess.run([str(server_binary()), "store", "import", "--dataset", str(DATASET), "--store", url],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr


def new_store(kind: str, tmp_path_factory, postgres_server) -> Store:
    if kind == "sqlite":
        path = tmp_path_factory.mktemp("store") / "r2ec.sqlite"
        url = f"sqlite:{path}"
        import_ml100k(url)
        return Store(kind, url, lambda sql: subprocess.run(["sqlite3", "-batch", str(path), sql], capture_output=True,
                                                           text=True, check=True, timeout=60).stdout.strip())
    url = postgres_server.new_database()
    import_ml100k(url)
    database = url.rsplit("/", 1)[1]
    return Store(kind, url, lambda sql: postgres_server.psql(sql, database))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store(request, tmp_path_factory):
    return new_store(request.param, tmp_path_factory,
                     request.getfixturevalue("postgres") if request.param == "postgres" else None)


def serve_store(url: str, *extra: str) -> ServerProcess:
    return ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", "--model",
                          "popularity", "--store", url, *extra])


@pytest.fixture(scope="module")
def store_server(store):
    server = serve_store(store.url)
    yield server
    assert server.stop() == 0, server.output


@pytest.fixture
def store_client(store_server):
    with Client(store_server.address, timeout=30) as client:
        yield client


@pytest.fixture
def raw(store_server):
    connection = RawConnection(store_server.host, store_server.port)
    yield connection
    connection.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


# -- the methods ----------------------------------------------------------------------------------------------------

def test_recorded_events_are_read_back_and_keys_make_repeats_no_ops(store_client, store):
    user = unique("py")
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
    # What the store really holds, read by its own shell.
    rows = store.query("SELECT i.item_id, e.kind, e.time FROM events e JOIN users u ON u.id = e.user_ref "
                       f"JOIN items i ON i.id = e.item_ref WHERE u.user_id = '{user}' ORDER BY e.seq")
    stored = [line.split("|") for line in rows.splitlines()]
    assert [r[:2] for r in stored] == [["50", "view"], ["172", "interaction"], ["181", "interaction"]]
    assert stored[0][2] == "1700000000" and abs(int(stored[2][2]) - time.time()) < 120  # 0 = the server's clock


def test_recommend_by_user_id_reflects_events_at_once(store_client):
    user = unique("fresh")
    cold = store_client.recommend(user_id=user, top_k=5)  # no events: a cold-start answer, not NOT_FOUND
    assert len(cold.items) == 5
    assert cold.model == "popularity" and cold.model_version >= 1
    store_client.record_events([(user, item) for item in cold.item_ids[:2]])
    warm = store_client.recommend(user_id=user, top_k=5)
    assert not set(cold.item_ids[:2]) & set(warm.item_ids)  # seen now, so left out
    assert warm.item_ids[:3] == cold.item_ids[2:5]
    # ScoreItems with the user id reads the same stored history.
    scored = store_client.score_items(cold.item_ids[:3], user_id=user)
    assert {s.item_id for s in scored.items} <= set(cold.item_ids[:3]) and scored.model_version >= 1


def test_an_imported_user_is_served_from_the_store(store_client):
    # ml-100k's user 1 rated 272 items; none of them comes back.
    history = store_client.get_history("1", limit=10_000)
    assert history.total == 272 and len(history.item_ids) == 272
    answer = store_client.recommend(user_id="1", top_k=20)
    assert len(answer.items) == 20 and not set(answer.item_ids) & set(history.item_ids)


def test_dataframe_in_and_delete(store_client, store):
    pd = pytest.importorskip("pandas")
    user = unique("df")
    frame = pd.DataFrame({"user_id": [user] * 3, "item_id": [1, 2, 3],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", None]), "rating": [5, None, 3]})
    assert store_client.record_events(frame).recorded == 3
    store_client.recommend(user_id=user, top_k=3)  # cached now
    assert store_client.delete_user(user).deleted_events == 3
    assert store_client.get_history(user).total == 0
    assert store.query(f"SELECT count(*) FROM users WHERE user_id = '{user}'") == "0"
    # Gone from the cache too: a cold start again, items 1-3 may come back.
    assert len(store_client.recommend(user_id=user, top_k=5).items) == 5


def test_upserted_item_is_in_the_catalogue(store_client, store):
    item = unique("new")
    answer = store_client.upsert_items([{"item_id": item, "title": "A Brand New Film", "year": 2024,
                                         "genres": ["Sci-Fi"], "metadata": {"source": "pytest"}}])
    assert answer.created == 1 and answer.catalog_version > 0
    assert list(answer.encoded_by) == []  # popularity cannot score an item nobody has seen: honest
    (entry,) = store_client.get_items([item])
    assert (entry.title, entry.metadata, entry.created > 0) == ("A Brand New Film", {"source": "pytest"}, True)
    assert store.query(f"SELECT title FROM items WHERE item_id = '{item}'") == "A Brand New Film"
    # Events may name it now.
    assert store_client.record_events([(unique("fan"), item)]).recorded == 1
    updated = store_client.upsert_items([{"item_id": item, "title": "A Renamed Film"}])
    assert (updated.created, updated.updated, updated.catalog_version) == (0, 1, answer.catalog_version + 1)
    # An imported item's metadata is "{}", never empty.
    (old,) = store_client.get_items(["50"])
    assert old.metadata == {}


def test_model_info_counts_recommendable_items(store_client):
    info = store_client.model_info()
    assert info.num_items >= 1682 and info.num_recommendable_items == 1682  # popularity: only items with events


def test_an_unknown_item_refuses_the_whole_batch(store_client):
    user = unique("bad")
    with pytest.raises(RpcError) as failure:
        store_client.record_events([(user, 50), (user, "no-such-item")])
    assert failure.value.code() == StatusCode.NOT_FOUND
    assert failure.value.field == "events[1].item_id"
    assert store_client.get_history(user).total == 0  # nothing of the batch was stored


# -- bad input, as the server answers it (sent raw, past the client's own checks) -----------------------------------

def ev(user="u-raw", item="50", **fields) -> events_pb2.Event:
    return events_pb2.Event(user_id=user, item_id=item, **fields)


BAD_EVENTS = [
    ("empty batch", [], "INVALID_ARGUMENT", "events"),
    ("oversized batch", [ev(idempotency_key=f"k{i}") for i in range(1001)], "INVALID_ARGUMENT", "events"),
    ("unknown item", [ev(), ev(item="nope")], "NOT_FOUND", "events[1].item_id"),
    ("far future", [ev(timestamp=int(time.time()) + 10 * 86_400)], "INVALID_ARGUMENT", "events[0].timestamp"),
    ("before 1970", [ev(timestamp=-5)], "INVALID_ARGUMENT", "events[0].timestamp"),
    ("user id too long", [ev(user="u" * 129)], "INVALID_ARGUMENT", "events[0].user_id"),
    ("empty user id", [ev(user="")], "INVALID_ARGUMENT", "events[0].user_id"),
    ("control character", [ev(user="a\nb")], "INVALID_ARGUMENT", "events[0].user_id"),
    ("bad kind", [ev(kind="Click!")], "INVALID_ARGUMENT", "events[0].kind"),
    ("rating not finite", [ev(rating=float("nan"))], "INVALID_ARGUMENT", "events[0].rating"),
    ("key too long", [ev(idempotency_key="k" * 129)], "INVALID_ARGUMENT", "events[0].idempotency_key"),
]


@pytest.mark.parametrize("name,events,code,field", BAD_EVENTS, ids=[c[0] for c in BAD_EVENTS])
def test_bad_events_are_refused_naming_the_field(raw, store_client, name, events, code, field):
    raw.send_call(1, EVENTS + "RecordEvents", events_pb2.RecordEventsRequest(events=events).SerializeToString())
    status = raw.expect_status(1, code)
    assert status.field == field, status
    assert field in status.message
    assert store_client.get_history("u-raw").total == 0  # nothing of a refused batch is stored


BAD_ITEMS = [
    ("empty batch", [], "items"),
    ("oversized batch", [events_pb2.ItemRecord(item_id=f"x{i}", title="t") for i in range(1001)], "items"),
    ("no title", [events_pb2.ItemRecord(item_id="x1", title="t"), events_pb2.ItemRecord(item_id="x2")],
     "items[1].title"),
    ("repeated id", [events_pb2.ItemRecord(item_id="x1", title="t")] * 2, "items[1].item_id"),
    ("metadata not an object", [events_pb2.ItemRecord(item_id="x1", title="t", metadata_json="[1]")],
     "items[0].metadata_json"),
    ("metadata too deep", [events_pb2.ItemRecord(item_id="x1", title="t", metadata_json="{\"a\":" + "[" * 100)],
     "items[0].metadata_json"),
    ("id too long", [events_pb2.ItemRecord(item_id="x" * 129, title="t")], "items[0].item_id"),
]


@pytest.mark.parametrize("name,items,field", BAD_ITEMS, ids=[c[0] for c in BAD_ITEMS])
def test_bad_items_are_refused_naming_the_field(raw, store_client, name, items, field):
    raw.send_call(1, EVENTS + "UpsertItems", events_pb2.UpsertItemsRequest(items=items).SerializeToString())
    status = raw.expect_status(1, "INVALID_ARGUMENT")
    assert status.field == field, status
    with pytest.raises(RpcError) as missing:
        store_client.get_items(["x1"])
    assert missing.value.code() == StatusCode.NOT_FOUND


def test_bad_history_and_delete_requests(raw):
    raw.send_call(1, EVENTS + "GetUserHistory", events_pb2.GetUserHistoryRequest(user_id="1", limit=10_001)
                  .SerializeToString())
    assert raw.expect_status(1, "INVALID_ARGUMENT").field == "limit"
    raw.send_call(3, EVENTS + "GetUserHistory", events_pb2.GetUserHistoryRequest().SerializeToString())
    assert raw.expect_status(3, "INVALID_ARGUMENT").field == "user_id"
    raw.send_call(5, EVENTS + "DeleteUser", events_pb2.DeleteUserRequest(user_id="x" * 200).SerializeToString())
    assert raw.expect_status(5, "INVALID_ARGUMENT").field == "user_id"
    raw.send_call(7, EVENTS + "RecordEvents", b"\x0a\xff\xff\xff\xff\x0f")  # events with an impossible length
    assert raw.expect_status(7, "INVALID_ARGUMENT").message.startswith("RecordEventsRequest: malformed protobuf")


def test_without_a_store_the_events_service_is_unimplemented(server):
    connection = RawConnection(server.host, server.port)
    try:
        connection.send_call(1, EVENTS + "RecordEvents", events_pb2.RecordEventsRequest(events=[ev()])
                             .SerializeToString())
        assert "--store" in connection.expect_status(1, "UNIMPLEMENTED").message
    finally:
        connection.close()


def test_the_shell_client_records_and_reads_back(store_server):
    user = unique("sh")
    recorded = subprocess.run(["bash", str(SHELL), store_server.address, "record", user, "50", "172"],
                              capture_output=True, text=True, timeout=60)
    assert (recorded.returncode, recorded.stdout) == (0, "recorded 2 duplicates 0\n"), recorded.stderr
    history = subprocess.run(["bash", str(SHELL), store_server.address, "history", user], capture_output=True,
                             text=True, timeout=60)
    assert history.returncode == 0, history.stderr
    assert [line.split()[1:3] for line in history.stdout.splitlines()] == [["50", "interaction"],
                                                                          ["172", "interaction"]]


# -- stores that fail -----------------------------------------------------------------------------------------------

def test_a_second_server_on_one_sqlite_file_is_refused(tmp_path_factory):
    store = new_store("sqlite", tmp_path_factory, None)
    first = serve_store(store.url)
    try:
        second = subprocess.run([str(server_binary()), "serve", "--port", "0", "--model", "popularity", "--store",
                                 store.url], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert second.returncode != 0
        assert "--store" in second.stderr and "another" in second.stderr.lower(), second.stderr
    finally:
        assert first.stop() == 0, first.output


def test_an_empty_store_is_refused_with_the_import_command(tmp_path):
    done = subprocess.run([str(server_binary()), "serve", "--port", "0", "--model", "popularity", "--store",
                           f"sqlite:{tmp_path / 'empty.sqlite'}"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "r2ec store import" in done.stderr, done.stderr


def test_a_full_sqlite_store_refuses_writes_and_keeps_serving(tmp_path_factory):
    store = new_store("sqlite", tmp_path_factory, None)
    path = store.url.split(":", 1)[1]
    size = os.path.getsize(path)
    server = serve_store(f"{store.url}?max_bytes={size + 64 * 1024}")
    try:
        with Client(server.address, timeout=30, retry=NO_RETRY) as client:
            user = unique("full")
            client.record_events([(user, 50)])
            with pytest.raises(RpcError) as full:
                for i in range(200):  # ~100 bytes a row: over 64 KiB within 200 batches of 20
                    client.record_events([(user, str(1 + (i * 20 + j) % 1682), 0, "", 0, f"{user}-{i}-{j}")
                                          for j in range(20)])
            assert full.value.code() == StatusCode.RESOURCE_EXHAUSTED, full.value
            assert len(client.recommend(user_id=user, top_k=5).items) == 5  # reads keep working
            assert client.health() == "SERVING"
    finally:
        assert server.stop() == 0, server.output


def test_postgres_down_is_unavailable_and_cached_users_are_still_served(tmp_path_factory):
    postgres = LocalPostgres()  # its own: stopping it must not disturb the other tests' servers
    store = new_store("postgres", tmp_path_factory, postgres)
    server = serve_store(store.url)
    try:
        with Client(server.address, timeout=30, retry=NO_RETRY) as client:
            cached = unique("cached")
            client.record_events([(cached, 50), (cached, 172)])
            before = client.recommend(user_id=cached, top_k=5).item_ids
            postgres.stop("fast")
            try:
                with pytest.raises(RpcError) as down:
                    client.record_events([(cached, 181)])
                assert down.value.code() == StatusCode.UNAVAILABLE and "retry" in down.value.details()
                with pytest.raises(RpcError) as uncached:
                    client.recommend(user_id=unique("uncached"), top_k=5)
                assert uncached.value.code() == StatusCode.UNAVAILABLE
                assert client.recommend(user_id=cached, top_k=5).item_ids == before  # from the cache
            finally:
                postgres.start()
            # Back: the store reconnects, writes and reads go through again.
            deadline = time.monotonic() + 30
            while True:
                try:
                    answer = client.record_events([(cached, 181, 0, "", 0, f"{cached}-after")])
                    assert answer.recorded + answer.duplicates == 1  # a retry of a commit that did happen: a duplicate
                    break
                except RpcError as error:
                    assert error.code() == StatusCode.UNAVAILABLE and time.monotonic() < deadline, error
                    time.sleep(0.2)
            assert client.get_history(cached).item_ids == ["50", "172", "181"]
    finally:
        assert server.stop() == 0, server.output
        postgres.close()


# -- durability across SIGKILL --------------------------------------------------------------------------------------

def keep_recording(address: str, writer: int, acknowledged: list, attempted: list, stop: threading.Event) -> None:
    """Sends batches of 10 keyed events until the server goes away; notes every batch the server acknowledged."""
    batch = 0
    try:
        with Client(address, timeout=10, retry=NO_RETRY) as client:
            while not stop.is_set():
                keys = [f"dur-{writer}-{batch}-{j}" for j in range(10)]
                attempted.append(keys)
                user = f"dur-{writer}-{batch % 7}"
                answer = client.record_events([(user, str(1 + (batch * 10 + j) % 1682), 0, "", 0, key)
                                               for j, key in enumerate(keys)])
                assert answer.recorded == 10
                acknowledged.append(keys)
                batch += 1
    except (RpcError, OSError):
        pass  # the server was killed


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_every_acknowledged_event_survives_sigkill(kind, tmp_path_factory, request):
    store = new_store(kind, tmp_path_factory, request.getfixturevalue("postgres") if kind == "postgres" else None)
    server = serve_store(store.url)
    acknowledged: list = []
    attempted: list = []
    stop = threading.Event()
    writers = [threading.Thread(target=keep_recording, args=(server.address, w, acknowledged, attempted, stop))
               for w in range(3)]
    for w in writers:
        w.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 100 and time.monotonic() < deadline:  # at least 1,000 events acknowledged
        time.sleep(0.05)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    stop.set()
    for w in writers:
        w.join(30)
    assert len(acknowledged) >= 100, f"only {len(acknowledged)} batches acknowledged before the kill"

    stored = set(store.query("SELECT idempotency_key FROM events WHERE idempotency_key LIKE 'dur-%'").split())
    missing = [k for keys in acknowledged for k in keys if k not in stored]
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    # Every batch is all or nothing, acknowledged or not (the one in flight at the kill may have committed).
    for keys in attempted:
        assert len(stored & set(keys)) in (0, 10), keys
    print(f"\n{kind}: {len(acknowledged)} batches of 10 acknowledged before SIGKILL, {len(stored) // 10} stored "
          f"({len(attempted) - len(acknowledged)} in flight at the kill), none lost")

    # Restarted on the same store: the events are served, and recording goes on.
    again = serve_store(store.url)
    try:
        with Client(again.address, timeout=30) as client:
            history = client.get_history("dur-0-0", limit=10_000)
            assert history.total == len([k for k in stored if k.startswith("dur-0-") and
                                         int(k.split("-")[2]) % 7 == 0])
            assert client.record_events([("dur-0-0", 50, 0, "", 0, "dur-after")]).recorded == 1
    finally:
        assert again.stop() == 0, again.output


# -- training from the store, then a hot swap -----------------------------------------------------------------------

# A tiny network and a few steps: what is tested is the path (store -> atomic files -> checkpoint -> LoadModel), not
# the model's quality.
TINY = ["--set", "vocab_size=300", "--set", "tokenizer_user_prompts=50", "--set", "model.hidden_size=32",
        "--set", "model.intermediate_size=64", "--set", "model.num_hidden_layers=1",
        "--set", "model.num_attention_heads=2", "--set", "model.num_key_value_heads=1", "--set", "stages.0.steps=3",
        "--set", "stages.0.batch=8", "--set", "stages.0.warmup=1", "--set", "stages.0.eval_every=0", "--set", "stages.0.fresh_items=16",
        "--set", "calibrate=false"]


def test_train_from_the_store_then_hot_swap_with_zero_failed_calls(tmp_path):
    # A small synthetic store (40 items, 600 events): a debug build trains and evaluates on it in seconds.
    synth = tmp_path / "synth"
    made = subprocess.run([str(server_binary()), "data", "synth", "--users", "60", "--items", "40", "--events", "600",
                           "--out", str(synth)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    url = f"sqlite:{tmp_path / 'synth.sqlite'}"
    imported = subprocess.run([str(server_binary()), "store", "import", "--dataset", str(synth), "--store", url],
                              capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr
    server = serve_store(url)
    try:
        user = unique("trainee")
        with Client(server.address, timeout=60) as client:
            assert client.record_events([(user, item) for item in (1, 2, 3)]).recorded == 3
        # Trained from what the store holds while the server keeps running on it (no writer lock needed).
        out = tmp_path / "from-store"
        trained = subprocess.run([str(server_binary()), "train", "--config", "configs/default.json", "--store",
                                  url, "--out", str(out), *TINY], capture_output=True, text=True, timeout=600,
                                 cwd=REPO)
        assert trained.returncode == 0, trained.stderr[-4000:]
        assert "40 items, 603 events" in trained.stderr, trained.stderr[-4000:]
        assert (out / "model.safetensors").exists() and not (tmp_path / "from-store.store").exists()

        with Client(server.address, timeout=120) as admin:
            first = admin.load_model("dual", str(out))
            failures: list = []
            versions: set = set()
            stop = threading.Event()

            def hammer() -> None:
                with Client(server.address, timeout=60, retry=NO_RETRY) as c:
                    while not stop.is_set():
                        try:
                            versions.add(c.recommend(user_id=user, top_k=5, model="dual").model_version)
                        except RpcError as error:  # noqa: PERF203 - every failure is the finding
                            failures.append(error)

            threads = [threading.Thread(target=hammer) for _ in range(3)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            second = admin.load_model("dual", str(out))  # the same name again: a hot swap under load
            time.sleep(0.5)
            stop.set()
            for t in threads:
                t.join(60)
            assert failures == [], failures[:3]
            assert second.version > first.version
            assert second.version in versions and versions <= {first.version, second.version}
            answer = admin.recommend(user_id=user, top_k=5, model="dual")
            assert answer.model_version == second.version and not {"1", "2", "3"} & set(answer.item_ids)
            info = admin.model_info("dual")
            assert (info.kind, info.version) == ("dual-head", second.version), info
    finally:
        assert server.stop() == 0, server.output
