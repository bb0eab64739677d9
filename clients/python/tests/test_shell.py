"""The shell client clients/shell/r2ec.sh: byte-level behaviour against the scripted peer (the exact request frames
it sends, title unescaping, error trailers, GOAWAY), then health/recommend/items/info against the real server."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO
from scripted import SERVING, ScriptedServer
from r2ec_client import frames as F
from r2ec_client._proto import events_pb2, recommender_pb2, wire_pb2

SCRIPT = REPO / "clients" / "shell" / "r2ec.sh"
RUN_TIMEOUT = 60

pytestmark = pytest.mark.skipif(not (shutil.which("socat") and shutil.which("protoc")),
                                reason="the shell client needs socat and protoc")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT)


def recommend_answer(peer, index, seen):
    sid, header, request = peer.call()
    seen["header"] = header
    seen["request"] = recommender_pb2.RecommendRequest.FromString(request)
    seen["after"] = peer.frame()  # the script half-closes: EOF right after its two frames
    items = [recommender_pb2.ScoredItem(item_id="50", title="Star Wars", score=583, rank=1),
             recommender_pb2.ScoredItem(item_id="1104", title="C'est arrivé près de chez vous", score=2.5, rank=2)]
    peer.answer(sid, recommender_pb2.RecommendResponse(items=items, model="popularity").SerializeToString())


def test_shell_recommend_frames_and_output(tmp_path):
    seen = {}
    server = ScriptedServer(lambda peer, index: recommend_answer(peer, index, seen))
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    result = run("--top-k", "2", "--token-file", str(token), server.address, "recommend", "172", "181")
    server.check()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 50 583 Star Wars", "2 1104 2.5 C'est arrivé près de chez vous"]
    header = seen["header"]
    assert header.method == "/r2ec.v1.Recommender/Recommend" and header.timeout_ms > 0
    assert [(m.key, m.value) for m in header.metadata] == [("authorization", "Bearer s3cret")]
    assert [e.item_id for e in seen["request"].history] == ["172", "181"] and seen["request"].top_k == 2
    assert seen["after"] is None


def test_shell_error_status_goes_to_stderr():
    def script(peer, index):
        sid, _, _ = peer.call()
        status = wire_pb2.Status(code=5, message="unknown item id \"x\"", field="history[0].item_id")
        peer.send(F.FrameType.TRAILER, sid, status.SerializeToString())

    server = ScriptedServer(script)
    result = run(server.address, "recommend", "x")
    server.check()
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip() == 'error: NOT_FOUND: unknown item id "x" (field history[0].item_id)'


def test_shell_goaway_is_an_error():
    def script(peer, index):
        peer.call()
        goaway = wire_pb2.GoAway(last_stream_id=0, code=8, message="too many connections")
        peer.send(F.FrameType.GOAWAY, 0, goaway.SerializeToString())

    server = ScriptedServer(script)
    result = run(server.address, "health")
    server.check()
    assert result.returncode != 0
    assert result.stderr.startswith("error: RESOURCE_EXHAUSTED: ") and "too many connections" in result.stderr


def test_shell_health_against_scripted_peer():
    def script(peer, index):
        sid, header, _ = peer.call()
        assert header.method == "/r2ec.v1.Health/Check"
        peer.answer(sid, SERVING)

    server = ScriptedServer(script)
    result = run(server.address, "health")
    server.check()
    assert (result.returncode, result.stdout, result.stderr) == (0, "SERVING\n", "")


def test_shell_unreachable_server():
    result = run("127.0.0.1:1", "health")
    assert result.returncode != 0 and result.stderr.startswith("error: UNAVAILABLE: ")


def test_shell_usage_errors():
    assert run().returncode == 2
    assert run("127.0.0.1:1", "frobnicate").returncode == 2


# ---- against the real server -----------------------------------------------------------------------------------

def test_shell_health(server):
    result = run(server.address, "health")
    assert (result.returncode, result.stdout.strip()) == (0, "SERVING"), result.stderr


def test_shell_recommend(server, client):
    result = run("--top-k", "5", server.address, "recommend", "50", "172", "181")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = client.recommend(history=[50, 172, 181], top_k=5)
    assert len(lines) == 5
    for line, item in zip(lines, expected.items):
        rank, item_id, score, title = line.split(" ", 3)
        assert (int(rank), item_id, title) == (item.rank, item.item_id, item.title)
        assert float(score) == pytest.approx(item.score, rel=1e-5)


def test_shell_items_and_info(server):
    items = run(server.address, "items", "50", "1")
    assert items.returncode == 0, items.stderr
    assert items.stdout.splitlines() == ["50 1977 Star Wars", "1 1995 Toy Story"]
    info = run(server.address, "info")
    assert info.returncode == 0 and 'kind: "popularity"' in info.stdout and "num_items: 1682" in info.stdout


def test_shell_error_from_the_real_server(server):
    result = run(server.address, "recommend", "no-such-item")
    assert result.returncode != 0
    assert result.stderr.startswith("error: NOT_FOUND: ")


# ---- --model, --json, record, history ----------------------------------------------------------------------------

def test_shell_json_is_proto3_json_of_the_whole_answer():
    """--json against a scripted answer with every awkward value: repeated fields of one element, a probability
    present at 0, 64-bit integers, non-ASCII and escaped text; protobuf's own JSON parser reads it back to the
    message that was sent."""
    from google.protobuf import json_format
    sent = recommender_pb2.RecommendResponse(
        items=[recommender_pb2.ScoredItem(item_id="1104", title='C\'est arrivé "près"\\\tde', score=-2.5,
                                          probability=0.0, rank=1)],
        model="m", model_version=2**40, reasoning="line one\nline two")

    def script(peer, index):
        sid, header, request = peer.call()
        seen["request"] = recommender_pb2.RecommendRequest.FromString(request)
        peer.answer(sid, sent.SerializeToString())

    seen = {}
    server = ScriptedServer(script)
    result = run("--json", "--model", "wals", "--user", "u 7", server.address, "recommend")
    server.check()
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    parsed = json_format.Parse(result.stdout, recommender_pb2.RecommendResponse())
    assert parsed == sent and parsed.items[0].HasField("probability")
    assert '"model_version":"1099511627776"' in result.stdout  # 64-bit as a string, as proto3 JSON has it
    assert (seen["request"].model, seen["request"].user_id, list(seen["request"].history)) == ("wals", "u 7", [])


def test_shell_json_of_every_response_type_parses(server):
    from google.protobuf import json_format
    from r2ec_client._proto import health_pb2
    cases = [(("health",), health_pb2.HealthCheckResponse), (("recommend", "50", "172"), recommender_pb2.RecommendResponse),
             (("items", "50", "1104"), recommender_pb2.GetItemsResponse),
             (("info",), recommender_pb2.ModelInfoResponse)]
    for args, message_type in cases:
        result = run("--json", server.address, *args)
        assert result.returncode == 0, result.stderr
        json_format.Parse(result.stdout, message_type())
    items = json_format.Parse(run("--json", server.address, "items", "1104").stdout, recommender_pb2.GetItemsResponse())
    assert items.items[0].title == "C'est arrivé près de chez vous"


def test_shell_model_option_reaches_the_real_server(server, client):
    wrong = run("--model", "no-such-model", server.address, "recommend", "50")
    assert wrong.returncode != 0 and wrong.stderr.startswith("error: NOT_FOUND: ")
    name = client.model_info().name
    right = run("--model", name, "--top-k", "3", server.address, "recommend", "50")
    assert right.returncode == 0 and len(right.stdout.splitlines()) == 3, right.stderr


def test_shell_record_and_history_frames():
    seen = []

    def script(peer, index):
        sid, header, request = peer.call()
        seen.append((header.method, request))
        if header.method.endswith("RecordEvents"):
            answer = events_pb2.RecordEventsResponse(recorded=2, duplicates=0)
        else:
            answer = events_pb2.GetUserHistoryResponse(total=2, events=[
                events_pb2.Event(user_id="u1", item_id="50", timestamp=1700000000, rating=4.5),
                events_pb2.Event(user_id="u1", item_id="172", timestamp=1700000060, kind="click")])
        peer.answer(sid, answer.SerializeToString())

    server = ScriptedServer(script)
    recorded = run("--kind", "click", server.address, "record", "u1", "50", "172")
    history = run("--limit", "5", server.address, "history", "u1")
    server.check()
    assert (recorded.returncode, recorded.stdout) == (0, "recorded 2 duplicates 0\n"), recorded.stderr
    assert history.returncode == 0, history.stderr
    assert history.stdout.splitlines() == ["1700000000 50 interaction 4.5", "1700000060 172 click 0"]
    record_request = events_pb2.RecordEventsRequest.FromString(seen[0][1])
    assert seen[0][0] == "/r2ec.v1.Events/RecordEvents"
    assert [(e.user_id, e.item_id, e.kind, e.timestamp) for e in record_request.events] == [
        ("u1", "50", "click", 0), ("u1", "172", "click", 0)]
    history_request = events_pb2.GetUserHistoryRequest.FromString(seen[1][1])
    assert (seen[1][0], history_request.user_id, history_request.limit) == ("/r2ec.v1.Events/GetUserHistory", "u1", 5)


def test_shell_record_usage_errors():
    assert run("127.0.0.1:1", "record", "u1").returncode == 2
    assert run("127.0.0.1:1", "history").returncode == 2
    assert run("--limit", "x", "127.0.0.1:1", "history", "u1").returncode == 2


def test_shell_json_knows_each_messages_own_field_types():
    """`created` is int64 in Item (a JSON string) but uint32 in UpsertItemsResponse: the printer follows the
    message types down the nesting, as the schema says, instead of going by field names."""
    from google.protobuf import json_format
    sent = recommender_pb2.GetItemsResponse(items=[recommender_pb2.Item(item_id="7", title="T", created=1700000000,
                                                                        num_ratings=3, genres=["Drama"])])

    def script(peer, index):
        sid, _, _ = peer.call()
        peer.answer(sid, sent.SerializeToString())

    server = ScriptedServer(script)
    result = run("--json", server.address, "items", "7")
    server.check()
    assert result.returncode == 0, result.stderr
    assert '"created":"1700000000"' in result.stdout and '"num_ratings":3' in result.stdout
    assert '"genres":["Drama"]' in result.stdout
    assert json_format.Parse(result.stdout, recommender_pb2.GetItemsResponse()) == sent
