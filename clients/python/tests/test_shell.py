"""The shell client clients/shell/r2ec.sh: byte-level behaviour against the scripted peer (the exact request frames
it sends, title unescaping, error trailers, GOAWAY), then health/recommend/items/info against the real server."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO
from scripted import SERVING, ScriptedServer
from r2ec_client import frames as F
from r2ec_client._proto import recommender_pb2, wire_pb2

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
