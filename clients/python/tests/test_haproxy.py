"""Two replicas sharing one PostgreSQL store behind HAProxy (issue 15 part 4): in TCP mode for the custom protocol
(deploy/haproxy.cfg), load through HAProxy with one replica drained by SIGTERM in the middle fails no call, and an
event recorded through one replica changes the next recommendation the other serves; in HTTP/2 mode for the gRPC
port (deploy/haproxy-grpc.cfg), grpcio's calls on one channel are spread call by call over both replicas, and a
replica drained under load fails no call either. Real peers only: Debian's haproxy and postgresql, grpcio, two
`r2ec serve --store postgres://...` processes."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import REPO, ServerProcess, server_binary, server_unavailable_reason, wait_until
from localpg import LocalPostgres, binaries, free_port
from r2ec_client import Client
from test_replicas import HISTORIES, Load, one_call

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")

CONFIG = REPO / "deploy" / "haproxy.cfg"
GRPC_CONFIG = REPO / "deploy" / "haproxy-grpc.cfg"
GRPC_PORT = re.compile(r"gRPC on (\S+):(\d+)")
METRICS = re.compile(r"metrics on (http://\S+/metrics)")


@pytest.fixture(scope="module")
def store_url():
    if binaries() is None:
        pytest.fail("no PostgreSQL server binaries: install Debian's postgresql (make test does)")
    postgres = LocalPostgres()
    try:
        url = postgres.new_database()
        done = subprocess.run([str(server_binary()), "store", "import", "--dataset", str(REPO / "data" / "ml-100k"),
                               "--store", url], capture_output=True, text=True, timeout=600, cwd=REPO)
        assert done.returncode == 0, done.stderr
        yield url
    finally:
        postgres.close()


# Above HAProxy's 500 ms check interval: a SIGTERM-ed replica answers /healthz 503 while still accepting calls
# until HAProxy has taken it out of rotation, and only then drains (deploy/haproxy.cfg).
DRAIN_GRACE = "1.5"


class Replica:
    """A replica with its user cache on (the default budget: the other replica's writes reach it by NOTIFY), its
    /metrics and /healthz endpoint (HAProxy's health checks) and, when asked, its gRPC port."""

    def __init__(self, url: str, grpc: bool = False) -> None:
        self.server = ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0",
                                     "--model", "popularity", "--store", url, "--drain-timeout", "10",
                                     "--drain-grace", DRAIN_GRACE, "--max-connection-age", "1",
                                     "--metrics-port", "0", *(["--grpc-port", "0"] if grpc else [])])
        metrics_line = next((METRICS.search(line) for line in self.server.lines if METRICS.search(line)), None)
        assert metrics_line, self.server.output
        self.metrics_url = metrics_line.group(1)
        self.health_port = int(self.metrics_url.rsplit(":", 1)[1].split("/")[0])
        if grpc:
            grpc_line = next((GRPC_PORT.search(line) for line in self.server.lines if GRPC_PORT.search(line)), None)
            assert grpc_line, self.server.output
            self.grpc_address = f"{grpc_line.group(1)}:{grpc_line.group(2)}"

    def answered(self, method: str) -> float:
        """OK answers to METHOD so far, from the replica's own /metrics."""
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("r2ec_requests_total{") and f'method="{method}"' in line
                   and 'code="OK"' in line)


def health_environment(replicas: list[Replica]) -> dict[str, str]:
    return {"R2EC_REPLICA1_HEALTH": str(replicas[0].health_port), "R2EC_REPLICA2_HEALTH": str(replicas[1].health_port)}


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def start_haproxy(environment: dict[str, str], configs: list, port: int) -> subprocess.Popen:
    if shutil.which("haproxy") is None:
        pytest.fail("no haproxy: install Debian's haproxy (make deps-system does)")
    files = [argument for config in configs for argument in ("-f", str(config))]
    proxy = subprocess.Popen(["haproxy", "-db", *files], env=dict(os.environ, **environment),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not (wait_until(lambda: listening(port) or proxy.poll() is not None, 20) and proxy.poll() is None):
        stop_haproxy(proxy)
        pytest.fail(f"haproxy did not listen on {port}: {proxy.stdout.read()}")
    return proxy


def stop_haproxy(proxy: subprocess.Popen) -> None:
    proxy.send_signal(signal.SIGTERM)
    try:
        proxy.wait(10)
    except subprocess.TimeoutExpired:
        proxy.kill()
        proxy.wait(10)


@pytest.fixture
def balanced(store_url):
    replicas = [Replica(store_url) for _ in range(2)]
    port, stats = free_port(), free_port()
    try:
        proxy = start_haproxy({"R2EC_LISTEN": f"127.0.0.1:{port}", "R2EC_REPLICA1": replicas[0].server.address,
                               "R2EC_REPLICA2": replicas[1].server.address, "R2EC_HAPROXY_STATS": f"127.0.0.1:{stats}",
                               **health_environment(replicas)}, [CONFIG], port)
    except BaseException:
        for one in replicas:
            one.server.stop()
        raise
    try:
        yield f"127.0.0.1:{port}", [one.server for one in replicas]
    finally:
        stop_haproxy(proxy)
        for one in replicas:
            if one.server.alive():
                one.server.stop()


def test_sigterm_of_one_replica_behind_haproxy_fails_no_call(balanced):
    address, (first, second) = balanced
    with Client(address, timeout=30) as client:
        # Not Health (kind 1): a replica in its grace period rightly answers it NOT_SERVING.
        load = Load(lambda number: one_call(client, number + 1 if number % 4 == 1 else number))
        time.sleep(1.5)
        first.process.send_signal(signal.SIGTERM)
        time.sleep(float(DRAIN_GRACE) + 2.5)
        load.stop()
    load.assert_no_failures()
    assert first.stop() == 0, first.output
    answered = [int(line.split("drained: ")[1].split()[0]) for line in first.lines if "drained: " in line]
    assert answered and answered[-1] > 20, f"the drained replica answered {answered}: was the load spread?\n{first.output}"
    assert load.calls > answered[-1] + 50, "the other replica took the load after the SIGTERM"


def test_an_event_recorded_through_one_replica_changes_the_others_next_recommendation(balanced):
    """Both replicas cache user histories; the one that cached the user before another replica's write drops it
    when PostgreSQL's NOTIFY arrives (milliseconds), and a DeleteUser through one replica reaches the other too."""
    _, (first, second) = balanced
    user = f"cross-{os.getpid()}-{time.monotonic_ns()}"
    with Client(first.address, timeout=30) as one, Client(second.address, timeout=30) as other:
        cold = other.recommend(user_id=user, top_k=5)  # cached by `other` now: a user with no events
        assert other.recommend(user_id=user, top_k=5).item_ids == cold.item_ids
        one.record_events([(user, item) for item in cold.item_ids[:2]])
        recorded = time.monotonic()
        assert wait_until(lambda: other.recommend(user_id=user, top_k=5).item_ids != cold.item_ids, 5), \
            "the other replica still serves its cached history 5 s after the write"
        seen_after = time.monotonic() - recorded
        warm = other.recommend(user_id=user, top_k=5)
        assert [event.item_id for event in other.get_history(user).events] == cold.item_ids[:2]
        one.delete_user(user)
        assert wait_until(lambda: other.recommend(user_id=user, top_k=5).item_ids == cold.item_ids, 5), \
            "the other replica still serves the deleted user's cached history 5 s after DeleteUser"
    assert not set(cold.item_ids[:2]) & set(warm.item_ids), (cold.item_ids, warm.item_ids)
    assert warm.item_ids[:3] == cold.item_ids[2:5]
    assert seen_after < 5


@pytest.fixture
def balanced_grpc(store_url, tmp_path):
    from test_grpc import generate_stubs, grpc_supported
    reason = grpc_supported()
    if reason is not None:
        pytest.skip(reason)
    stubs = generate_stubs(tmp_path / "stubs")
    replicas = [Replica(store_url, grpc=True) for _ in range(2)]
    port = free_port()
    try:
        proxy = start_haproxy({"R2EC_GRPC_LISTEN": f"127.0.0.1:{port}",
                               "R2EC_GRPC_REPLICA1": replicas[0].grpc_address,
                               "R2EC_GRPC_REPLICA2": replicas[1].grpc_address,
                               **health_environment(replicas)}, [GRPC_CONFIG], port)
    except BaseException:
        for one in replicas:
            one.server.stop()
        raise
    try:
        yield f"127.0.0.1:{port}", replicas, stubs
    finally:
        stop_haproxy(proxy)
        for one in replicas:
            if one.server.alive():
                one.server.stop()


def grpc_call(stubs, channel, number: int) -> None:
    """One call of test_replicas.one_call's mix, over gRPC."""
    from r2ec_client._proto import health_pb2, recommender_pb2 as R
    history = [R.HistoryEvent(item_id=str(item)) for item in HISTORIES[number % len(HISTORIES)]]
    if number % 2 == 0:
        answer = stubs["recommender"].RecommenderStub(channel).Recommend(
            R.RecommendRequest(history=history, top_k=5), timeout=30)
        assert len(answer.items) == 5
    else:
        answer = stubs["health"].HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_grpc_calls_of_one_channel_are_balanced_call_by_call(balanced_grpc):
    import grpc
    address, replicas, stubs = balanced_grpc
    with grpc.insecure_channel(address) as channel:  # one HTTP/2 connection to HAProxy
        for number in range(40):
            grpc_call(stubs, channel, 2 * number)
    served = [one.answered("/r2ec.v1.Recommender/Recommend") for one in replicas]
    # Round robin per call: TCP mode would have pinned the channel's one connection to one replica.
    assert sum(served) == 40 and min(served) >= 15, served


def test_sigterm_of_one_replica_behind_haproxy_fails_no_grpc_call(balanced_grpc):
    """HTTP/2 mode: the drain grace period lets HAProxy's /healthz check take the replica out before its GOAWAY, so
    no stream is refused (without it, CI saw 5 of 2,960 calls fail UNAVAILABLE: REFUSED_STREAM relayed)."""
    import grpc
    address, (first, second), stubs = balanced_grpc
    with grpc.insecure_channel(address) as channel:
        # Recommend only: a replica in its grace period rightly answers Health/Check NOT_SERVING.
        load = Load(lambda number: grpc_call(stubs, channel, 2 * number))
        time.sleep(1.5)
        before = first.answered("/r2ec.v1.Recommender/Recommend")
        first.server.process.send_signal(signal.SIGTERM)
        time.sleep(float(DRAIN_GRACE) + 2.5)
        after_drain = second.answered("/r2ec.v1.Recommender/Recommend")
        time.sleep(1.0)
        load.stop()
        load.assert_no_failures()
        assert first.server.stop() == 0, first.server.output
        assert before > 10, f"the drained replica answered {before} Recommend calls before SIGTERM: load not spread?"
        # The survivor kept answering after the drain.
        assert second.answered("/r2ec.v1.Recommender/Recommend") > after_drain + 10


def free_port_run(length: int) -> int:
    """A port P with P..P+LENGTH-1 all free on loopback (deploy/start-loopback.sh takes consecutive ports)."""
    for _ in range(50):
        base = free_port()
        if base + length > 65535:
            continue
        if all(not listening(base + offset) for offset in range(length)):
            return base
    pytest.fail(f"no {length} consecutive free ports")


def test_start_loopback_script_serves_both_doors(store_url, tmp_path):
    """docs/deployment.md's command, as written: the script's replicas and HAProxy answer on both doors, and
    SIGTERM stops all of them."""
    import grpc
    from test_grpc import generate_stubs, grpc_supported
    reason = grpc_supported()
    if reason is not None:
        pytest.skip(reason)
    stubs = generate_stubs(tmp_path / "stubs")
    for attempt in range(3):
        # The ports are free when chosen, but another process (a client's ephemeral port) may take one before the
        # script binds it: then the script stops with "Address already in use", and another run of ports is tried.
        port = free_port_run(9)
        script = subprocess.Popen([str(REPO / "deploy" / "start-loopback.sh"), store_url, str(port), "--grpc"],
                                  env=dict(os.environ, R2EC_BIN=str(server_binary())), cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        assert wait_until(lambda: (listening(port) and listening(port + 4)) or script.poll() is not None, 60), \
            "the script's HAProxy did not listen"
        if script.poll() is None:
            break
        output = script.stdout.read()
        assert "Address already in use" in output and attempt < 2, output
    try:
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
            assert len(client.recommend(history=[1, 2, 3], top_k=4).items) == 4
        with grpc.insecure_channel(f"127.0.0.1:{port + 4}") as channel:
            grpc_call(stubs, channel, 0)
            grpc_call(stubs, channel, 1)
    finally:
        script.send_signal(signal.SIGTERM)
        try:
            output, _ = script.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            output, _ = script.communicate(timeout=10)
    assert not any(listening(port + offset) for offset in (0, 1, 2, 4, 5, 6, 7, 8)), output
