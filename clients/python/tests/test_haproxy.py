"""Two replicas sharing one PostgreSQL store behind HAProxy in TCP mode (issue 15 part 4, deploy/haproxy.cfg): load
through HAProxy with one replica drained by SIGTERM in the middle fails no call; an event recorded through one
replica changes the next recommendation the other serves. Real peers only: Debian's haproxy and postgresql, two
`r2ec serve --store postgres://...` processes."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import REPO, ServerProcess, server_binary, server_unavailable_reason, wait_until
from localpg import LocalPostgres, binaries, free_port
from r2ec_client import Client
from test_replicas import one_call

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")

CONFIG = REPO / "deploy" / "haproxy.cfg"


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


def replica(url: str) -> ServerProcess:
    return ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", "--model",
                          "popularity", "--store", url, "--drain-timeout", "10", "--max-connection-age", "1",
                          "--user-cache-bytes", "0"])


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def balanced(store_url):
    if shutil.which("haproxy") is None:
        pytest.fail("no haproxy: install Debian's haproxy (make deps-system does)")
    replicas = [replica(store_url) for _ in range(2)]
    port, stats = free_port(), free_port()
    environment = dict(os.environ, R2EC_LISTEN=f"127.0.0.1:{port}", R2EC_REPLICA1=replicas[0].address,
                       R2EC_REPLICA2=replicas[1].address, R2EC_HAPROXY_STATS=f"127.0.0.1:{stats}")
    proxy = subprocess.Popen(["haproxy", "-db", "-f", str(CONFIG)], env=environment, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: listening(port) or proxy.poll() is not None, 20) and proxy.poll() is None, \
            proxy.stdout.read() if proxy.poll() is not None else "haproxy did not listen"
        yield f"127.0.0.1:{port}", replicas
    finally:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait(10)
        for server in replicas:
            if server.alive():
                server.stop()


def test_sigterm_of_one_replica_behind_haproxy_fails_no_call(balanced):
    address, (first, second) = balanced
    stop = threading.Event()
    failures: list = []
    done = [0] * 8
    with Client(address, timeout=30) as client:
        def work(worker: int) -> None:
            number = worker
            while not stop.is_set():
                try:
                    one_call(client, number)
                except BaseException as error:  # noqa: BLE001 - reported below
                    failures.append(error)
                done[worker] += 1
                number += 8

        threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        first.process.send_signal(signal.SIGTERM)
        time.sleep(2.5)
        stop.set()
        for thread in threads:
            thread.join(60)
    assert not failures, f"{len(failures)} of {sum(done)} calls failed, e.g. {failures[:3]}"
    assert first.stop() == 0, first.output
    answered = [int(line.split("drained: ")[1].split()[0]) for line in first.lines if "drained: " in line]
    assert answered and answered[-1] > 20, f"the drained replica answered {answered}: was the load spread?\n{first.output}"
    assert sum(done) > answered[-1] + 50, "the other replica took the load after the SIGTERM"


def test_an_event_recorded_through_one_replica_changes_the_others_next_recommendation(balanced):
    _, (first, second) = balanced
    user = f"cross-{os.getpid()}-{time.monotonic_ns()}"
    with Client(first.address, timeout=30) as one, Client(second.address, timeout=30) as other:
        cold = other.recommend(user_id=user, top_k=5)
        one.record_events([(user, item) for item in cold.item_ids[:2]])
        warm = other.recommend(user_id=user, top_k=5)
    assert not set(cold.item_ids[:2]) & set(warm.item_ids), (cold.item_ids, warm.item_ids)
    assert warm.item_ids[:3] == cold.item_ids[2:5]
