"""`r2ec bench serve --requests FILE` against a real server: the replayed calls have the file's mix (counted by the
server's own metrics, by the model that answered), an open-loop Poisson rate is kept, --token authenticates,
and a bad line stops the bench naming the line and key."""
from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest

from conftest import REPO, ServerProcess, serve_command, server_binary, server_unavailable_reason

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None,
                                reason=server_unavailable_reason() or "")

RECOMMEND = "/r2ec.v1.Recommender/Recommend"
LINES = [
    {"history": [50, 172, 181], "top_k": 5, "model": "popularity"},
    {"user_id": 196, "top_k": 3, "model": "wals"},
    {"history": ["50"], "top_k": 7},
    {"user_id": "186", "model": "popularity"},
    {"history": [1, 2, 3, 4], "mode": "direct", "top_k": 10, "model": "wals"},
    {"history": [98]},
]
# By the model that answers: lines without one go to the default model (popularity, loaded first).
SHARE = {"popularity": 4 / 6, "wals": 2 / 6}


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "tokens"
    path.write_text("bench-token\n")
    return path


@pytest.fixture(scope="module")
def target(tokens):
    server = ServerProcess(serve_command("--model", "wals", "--metrics-port", "0", "--auth-token-file", str(tokens)))
    line = [l for l in server.lines if "metrics on http://" in l][0]
    server.metrics_url = line.split("metrics on ")[1].split(",")[0].split(")")[0]
    yield server
    assert server.stop() == 0


def answered_by_model(server) -> dict[str, int]:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    counts: dict[str, int] = {}
    for model, value in re.findall(r'^r2ec_requests_total\{method="' + RECOMMEND + r'",code="OK",model="([^"]*)",'
                                   r'version="[^"]*"\} (\d+)$', text, re.M):
        counts[model] = counts.get(model, 0) + int(value)
    return counts


def bench(target, requests, *extra, token="bench-token"):
    args = [str(server_binary()), "bench", "serve", "--target", target.address, "--requests", str(requests), *extra]
    if token:
        args += ["--token", token]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)


def test_replay_reproduces_the_files_mix(target, tmp_path):
    requests = tmp_path / "requests.jsonl"
    requests.write_text("\n".join(json.dumps(line) for line in LINES) + "\n\n")
    before = answered_by_model(target)
    report = tmp_path / "report.json"
    ran = bench(target, requests, "--concurrency", "4", "--seconds", "2", "--json", str(report))
    assert ran.returncode == 0, ran.stderr
    after = answered_by_model(target)
    delta = {m: after.get(m, 0) - before.get(m, 0) for m in SHARE}
    total = sum(delta.values())
    assert total > 50, (delta, ran.stdout)
    # The lines go out in order over the whole run, so each line's count is within one cycle of total/6; calls in
    # flight when the bench stops may or may not be answered.
    slack = len(LINES) + 4
    for model, share in SHARE.items():
        assert abs(delta[model] - share * total) <= slack, (delta, total)
    result = json.loads(report.read_text())
    assert result["mix"] == {
        "model=popularity mode=direct by=history top_k=5": 1, "model=wals mode=direct by=user_id top_k=3": 1,
        "model=(default) mode=direct by=history top_k=7": 1, "model=popularity mode=direct by=user_id top_k=0": 1,
        "model=wals mode=direct by=history top_k=10": 1, "model=(default) mode=direct by=history top_k=0": 1}
    assert result["levels"][0]["errors"] == 0, result


def test_poisson_rate_is_kept(target, tmp_path):
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps({"history": [50, 172], "model": "popularity"}) + "\n")
    before = sum(answered_by_model(target).values())
    report = tmp_path / "report.json"
    ran = bench(target, requests, "--rate", "200", "--poisson", "--seconds", "2", "--json", str(report))
    assert ran.returncode == 0, ran.stderr
    sent = sum(answered_by_model(target).values()) - before
    # One second of warm-up plus two measured: about 600 calls (a Poisson count's sd is sqrt(600) ~ 25).
    assert 480 <= sent <= 720, sent
    level = json.loads(report.read_text())["levels"][0]
    assert 160 <= level["throughput"] <= 240 and level["errors"] == 0, level


def test_token_and_bad_lines(target, tmp_path):
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(LINES[0]) + "\n")
    report = tmp_path / "report.json"
    ran = bench(target, requests, "--concurrency", "1", "--seconds", "1", "--json", str(report), token=None)
    assert ran.returncode == 0, ran.stderr
    level = json.loads(report.read_text())["levels"][0]
    assert level["errors"] > 0 and level["errors"] == level["calls"], level  # UNAUTHENTICATED, every one

    for text, message in [('{"history": [50]}\n{"histroy": [50]}\n', ":2: unknown key 'histroy'"),
                          ('{"history": [50], "top_k": true}\n', ":1: 'top_k' has the wrong type"),
                          ('{"top_k": 3}\n', ":1: needs 'user_id' or a non-empty 'history'"),
                          ('[1, 2]\n', ":1: not a JSON object"),
                          ('{"user_id": "1", "mode": "fast"}\n', ":1: 'mode' must be")]:
        requests.write_text(text)
        failed = bench(target, requests, "--seconds", "1")
        assert failed.returncode != 0 and f"{requests}{message}" in failed.stderr, (text, failed.stderr)
