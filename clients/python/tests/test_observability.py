"""Observability of a real server (--metrics-port 0 --log-format json --log-level debug):
- every metric name on /metrics meets Prometheus' naming rules (checked here from the rules, and by promtool's
  linter when it is installed), the text parses with prometheus_client's parser when that is installed;
- calls and batches are labelled with the model and version that answered, queue depths are gauges per path;
- process metrics agree with what /proc says of the server's pid;
- request ids: the client's x-request-id is echoed in the TRAILER (the bytes of docs/protocol.md's example), a failed
  call gets a made-up one, and the JSON log line of the failure carries the same id."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import REPO, ServerProcess, serve_command, server_unavailable_reason, wait_until
from rawwire import RawConnection
from r2ec_client import Client, RpcError, StatusCode
from r2ec_client import frames as F

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None,
                                reason=server_unavailable_reason() or "")

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Prometheus' base units; abbreviations and scaled units are not allowed in names.
NOT_BASE_UNITS = {"ms", "msec", "millis", "milliseconds", "us", "usec", "microseconds", "ns", "nanoseconds",
                  "minutes", "hours", "days", "kb", "kib", "mb", "mib", "gb", "gib", "kilobytes", "megabytes",
                  "gigabytes", "percent", "pct"}


@pytest.fixture(scope="module")
def observed():
    server = ServerProcess(serve_command("--metrics-port", "0", "--log-format", "json", "--log-level", "debug"))
    line = [l for l in server.lines if "metrics on http://" in l][0]
    server.metrics_url = line.split("metrics on ")[1].split(",")[0].split(")")[0]
    yield server
    assert server.stop() == 0


def scrape(server) -> str:
    with urllib.request.urlopen(server.metrics_url, timeout=10) as answer:
        assert answer.status == 200
        return answer.read().decode()


def families(text: str) -> dict[str, str]:
    """name -> type, from the # TYPE lines; every family must also have a # HELP line."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = set(re.findall(r"^# HELP (\S+) .+$", text, re.M))
    assert set(types) == helps, f"HELP without TYPE or the reverse: {set(types) ^ helps}"
    return types


def naming_problems(name: str, kind: str) -> list[str]:
    problems = []
    if not NAME.match(name):
        problems.append("not a valid metric name")
    if not (name.startswith("r2ec_") or name.startswith("process_")):
        problems.append("neither r2ec_ nor process_")
    words = name.split("_")
    repeated = sorted({w for w in words if words.count(w) > 1})
    if repeated:
        problems.append(f"repeats {repeated}")
    if set(words) & NOT_BASE_UNITS:
        problems.append(f"non-base unit {sorted(set(words) & NOT_BASE_UNITS)}")
    if kind == "counter" and not name.endswith("_total"):
        problems.append("a counter without _total")
    if kind != "counter" and name.endswith("_total"):
        problems.append(f"a {kind} ending in _total")
    if kind == "histogram" and re.search(r"_(bucket|sum|count)$", name):
        problems.append("a histogram named with a sample suffix")
    if name != name.lower():
        problems.append("not snake_case")
    return problems


def test_metric_names_meet_prometheus_rules(observed):
    with Client(observed.address, timeout=30) as client:
        client.recommend(history=[50, 172], top_k=5)
        with pytest.raises(RpcError):
            client.recommend(history=[50], model="no-such-model")
    text = scrape(observed)
    types = families(text)
    assert len(types) >= 12, types
    problems = {name: naming_problems(name, kind) for name, kind in types.items()}
    assert not {n: p for n, p in problems.items() if p}, problems
    # The old name repeated its unit (issue 18): it must be gone.
    assert "r2ec_decode_tokens_per_second_tokens" not in text
    for sample in re.findall(r"^([a-zA-Z_:][^{\s]*)(\{[^}]*\})? ", text, re.M):
        family = re.sub(r"_(bucket|sum|count)$", "", sample[0])
        assert sample[0] in types or family in types, f"sample {sample[0]} of no declared family"
        for label in re.findall(r'([^{=,]+)="', sample[1]):
            assert LABEL.match(label) and not label.startswith("__"), label
    if shutil.which("promtool"):
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                              timeout=60)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return
    parsed = {f.name for f in text_string_to_metric_families(text)}
    assert {n.removesuffix("_total") for n in types} == parsed


def test_model_and_version_labels_and_queue_depths(observed):
    with Client(observed.address, timeout=30) as client:
        version = client.model_info().version
        for _ in range(3):
            client.recommend(history=[50, 172], top_k=5)
    text = scrape(observed)
    labels = f'model="popularity",version="{version}"'
    ok = re.search(r'^r2ec_requests_total\{method="/r2ec.v1.Recommender/Recommend",code="OK",' + labels + r'\} (\d+)',
                   text, re.M)
    assert ok and int(ok.group(1)) >= 3, text[:3000]
    assert re.search(r'^r2ec_request_duration_seconds_count\{method="/r2ec.v1.Recommender/Recommend",' + labels,
                     text, re.M)
    assert re.search(r'^r2ec_batch_size_requests_count\{path="direct",' + labels + r'\} \d+', text, re.M)
    assert re.search(r'^r2ec_requests_total\{method="/r2ec.v1.Health/Check",code="OK",model="",version=""\}', text,
                     re.M) or "Health" not in text
    for path in ("direct", "reasoning", "workers"):
        assert re.search(rf'^r2ec_queue_depth_requests\{{path="{path}"\}} 0(\.0)?$', text, re.M), path


def proc_numbers(pid: int) -> tuple[float, int, float]:
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)
    return rss, fds, cpu


def test_process_metrics_agree_with_proc(observed):
    text = scrape(observed)
    value = {name: float(v) for name, v in re.findall(r"^(process_\w+) (\S+)$", text, re.M)}
    rss, fds, cpu = proc_numbers(observed.process.pid)
    assert abs(value["process_resident_memory_bytes"] - rss) <= 0.25 * rss, (value, rss)
    # The scrape's own connection and the listing of /proc/self/fd come and go between the two readings.
    assert abs(value["process_open_fds"] - fds) <= 4, (value, fds)
    assert abs(value["process_cpu_seconds_total"] - cpu) <= 1.0, (value, cpu)
    assert value["process_max_fds"] >= value["process_open_fds"]
    # procps' elapsed time of the process, seconds: its start is now minus that.
    elapsed = int(subprocess.run(["ps", "-o", "etimes=", "-p", str(observed.process.pid)], capture_output=True,
                                 text=True, timeout=30).stdout.strip())
    assert abs(value["process_start_time_seconds"] - (time.time() - elapsed)) < 3, (value, elapsed)


def loop_lag(text: str) -> tuple[float, dict[float, float]]:
    """r2ec_event_loop_lag_seconds: its count and its cumulative buckets (le -> count)."""
    count = float(re.search(r"^r2ec_event_loop_lag_seconds_count (\S+)$", text, re.M).group(1))
    buckets = {float(le): float(v) for le, v in
               re.findall(r'^r2ec_event_loop_lag_seconds_bucket\{le="([^"+]+)"\} (\S+)$', text, re.M)}
    return count, buckets


def test_event_loop_lag_is_measured_and_a_stall_is_logged(observed):
    """The loop's 10 ms timer is observed about 100 times a second; stopping the whole process for 300 ms (SIGSTOP,
    SIGCONT: nothing in the server can tell it from a loop thread that was busy or not scheduled) shows as one late
    timer of at least 250 ms in the histogram and as an `event loop stalled` log line naming its milliseconds."""
    count_before, buckets_before = loop_lag(scrape(observed))
    time.sleep(1.0)
    count_after, _ = loop_lag(scrape(observed))
    assert 50 <= count_after - count_before <= 110, (count_before, count_after)
    late_before = count_before - buckets_before[0.25]
    os.kill(observed.process.pid, signal.SIGSTOP)
    time.sleep(0.3)
    os.kill(observed.process.pid, signal.SIGCONT)
    def stall_logged():
        for line in observed.lines:
            if '"event loop stalled"' in line:
                return json.loads(line)
        return None
    assert wait_until(lambda: stall_logged() is not None, 10), observed.output
    assert float(stall_logged()["milliseconds"]) >= 250, stall_logged()
    count, buckets = loop_lag(scrape(observed))
    assert count - buckets[0.25] >= late_before + 1, (buckets_before, buckets)


def doc_trailer_with_request_id() -> bytes:
    text = (REPO / "docs" / "protocol.md").read_text()
    block = text.split('`Status{metadata: [{key: "x-request-id", value: "req-42"}]}`, 24 bytes):\n```\n')[1]
    return bytes.fromhex(block.split("```")[0].replace("\n", " "))


def test_request_id_echoed_in_trailer_bytes_and_logged(observed):
    # Byte for byte: the TRAILER frame equals the doc's example.
    with RawConnection(observed.host, observed.port) as raw:
        raw.send_call(1, "/r2ec.v1.Health/Check", b"", 1000, [("x-request-id", "req-42")])
        frames = [raw.read_frame(), raw.read_frame()]
    assert frames[1].type == F.FrameType.TRAILER
    assert frames[1].encode() == doc_trailer_with_request_id()

    with Client(observed.address, timeout=30) as client:
        answer = client.recommend(history=[50], metadata={"x-request-id": "ok-7"})
        assert answer.request_id == "ok-7"
        assert client.recommend(history=[50]).request_id is None
        with pytest.raises(RpcError) as given:
            client.recommend(history=[50], model="absent", metadata={"x-request-id": "bad-1"})
        assert given.value.request_id == "bad-1"
        with pytest.raises(RpcError) as made:
            client.recommend(history=[50], model="absent")
    made_id = made.value.request_id
    assert re.fullmatch(r"[0-9a-f]{16}", made_id or ""), made.value.trailing_metadata()

    def logged(request_id: str):
        for line in list(observed.lines):
            if line.startswith("{") and f'"{request_id}"' in line:
                return json.loads(line)
        return None
    for request_id in ("bad-1", made_id):
        assert wait_until(lambda: logged(request_id) is not None, timeout=5), observed.output
        entry = logged(request_id)
        assert entry["level"] == "warning" and entry["message"] == "call failed", entry
        assert entry["request_id"] == request_id and entry["code"] == "NOT_FOUND", entry
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), entry
    # --log-level debug: the successful call's access line carries the client's id and the model.
    assert wait_until(lambda: logged("ok-7") is not None, timeout=5), observed.output
    access = logged("ok-7")
    assert access["level"] == "debug" and access["code"] == "OK" and access["model"] == "popularity", access
    # Every stderr line of the server is JSON in this mode (stdout keeps the listening line).
    for line in observed.lines:
        if line.startswith("{"):
            json.loads(line)
