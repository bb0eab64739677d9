"""Two real server processes behind one client (issue 15's replicas, client side): calls spread over both; one is
drained with SIGTERM in the middle of the load; not one call fails (calls the draining server had not accepted are
sent to the other, its GOAWAY makes the client stop using it), and the drained server exits 0 having answered its
share."""
from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import ServerProcess, serve_command, server_unavailable_reason, wait_until
from r2ec_client import AsyncClient, Client

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")

HISTORIES = [[50], [172, 181], [1, 2, 3], [100, 127], [258, 286, 288], [300]]
DRAINED = re.compile(r"drained: (\d+) call\(s\) answered")


@pytest.fixture
def replicas():
    servers = [ServerProcess(serve_command("--drain-timeout", "10")) for _ in range(2)]
    yield servers
    for server in servers:
        if server.alive():
            server.stop()


def answered_by(server: ServerProcess) -> int:
    assert wait_until(lambda: any(DRAINED.search(line) for line in server.lines), 10), server.output
    return max(int(DRAINED.search(line).group(1)) for line in server.lines if DRAINED.search(line))


def one_call(client, number: int):
    kind = number % 4
    history = HISTORIES[number % len(HISTORIES)]
    if kind == 0:
        assert len(client.recommend(history=history, top_k=5).items) == 5
    elif kind == 1:
        assert client.health() == "SERVING"
    elif kind == 2:
        assert [item.item_id for item in client.get_items(history)] == [str(i) for i in history]
    else:
        assert len(client.score_items([50, 100, 1], history=history).items) == 3


class Load:
    """THREADS threads calling CALL(number) in a closed loop (thread t: numbers t, t + THREADS, ...) until stop();
    every failure is kept."""

    def __init__(self, call, threads: int = 8) -> None:
        self._stop = threading.Event()
        self.failures: list = []
        self._done = [0] * threads

        def work(worker: int) -> None:
            number = worker
            while not self._stop.is_set():
                try:
                    call(number)
                except BaseException as error:  # noqa: BLE001 - reported by assert_no_failures
                    self.failures.append(error)
                self._done[worker] += 1
                number += threads

        self._threads = [threading.Thread(target=work, args=(worker,)) for worker in range(threads)]
        for thread in self._threads:
            thread.start()

    @property
    def calls(self) -> int:
        return sum(self._done)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def assert_no_failures(self) -> None:
        assert not self.failures, f"{len(self.failures)} of {self.calls} calls failed, e.g. {self.failures[:3]}"


def test_sigterm_of_one_replica_under_load_fails_no_call(replicas):
    first, second = replicas
    with Client([first.address, second.address], timeout=30) as client:
        load = Load(lambda number: one_call(client, number))
        time.sleep(1.5)
        first.process.send_signal(signal.SIGTERM)
        at_signal = load.calls
        time.sleep(2.0)
        load.stop()
    load.assert_no_failures()
    assert first.stop() == 0
    drained_share = answered_by(first)
    assert drained_share > 50, f"the drained replica answered only {drained_share} calls: was the load spread?"
    assert load.calls - at_signal > 50, "too few calls after the SIGTERM to prove anything"
    assert load.calls > drained_share


def test_async_client_under_the_same_drain(replicas):
    first, second = replicas

    async def session() -> tuple[int, list]:
        failures: list = []
        done = 0
        async with AsyncClient([first.address, second.address], timeout=30) as client:
            async def work(worker: int, until: float) -> None:
                nonlocal done
                number = worker
                while time.monotonic() < until:
                    try:
                        kind = number % 2
                        if kind:
                            assert await client.health() == "SERVING"
                        else:
                            result = await client.recommend(history=HISTORIES[number % len(HISTORIES)], top_k=5)
                            assert len(result.items) == 5
                    except BaseException as error:  # noqa: BLE001 - reported below
                        failures.append(error)
                    done += 1
                    number += 16

            until = time.monotonic() + 3.0
            workers = [asyncio.ensure_future(work(worker, until)) for worker in range(16)]
            await asyncio.sleep(1.0)
            first.process.send_signal(signal.SIGTERM)
            await asyncio.gather(*workers)
        return done, failures

    done, failures = asyncio.run(asyncio.wait_for(session(), 120))
    assert not failures, f"{len(failures)} failed calls, e.g. {failures[:3]}"
    assert first.stop() == 0
    assert answered_by(first) > 20 and done > answered_by(first)


def limit_hits(port: int, limit: str) -> int:
    """r2ec_limit_hits_total{limit=LIMIT} from the server's /metrics (0 when never hit)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    match = re.search(rf'^r2ec_limit_hits_total\{{limit="{limit}"\}} (\d+)', data.decode(), re.M)
    return int(match.group(1)) if match else 0


def test_max_connection_age_sends_goaway_and_the_client_reconnects_without_a_failed_call():
    server = ServerProcess(serve_command("--max-connection-age", "0.4", "--metrics-port", "0"))
    try:
        port = next(int(m.group(1)) for line in server.lines
                    if (m := re.search(r"metrics on http://[^:]+:(\d+)/metrics", line)))
        failures: list = []
        calls = 0
        with Client(server.address, timeout=30) as client:
            until = time.monotonic() + 2.5
            while time.monotonic() < until:
                try:
                    one_call(client, calls)
                except BaseException as error:  # noqa: BLE001 - reported below
                    failures.append(error)
                calls += 1
        assert not failures, f"{len(failures)} of {calls} calls failed, e.g. {failures[:3]}"
        # One connection at a time, each told to go after 0.36-0.44 s: at least 4 in 2.5 s of calls.
        rotated = limit_hits(port, "max_connection_age")
        assert rotated >= 4, f"{rotated} connections reached their age in 2.5 s of calls ({calls} calls)"
        assert calls > 100
    finally:
        assert server.stop() == 0, server.output


def test_max_connection_age_is_checked():
    probe = subprocess.run(serve_command("--max-connection-age", "-1"), capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "--max-connection-age" in probe.stderr, probe.stderr
