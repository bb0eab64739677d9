"""Test fixtures: a REAL `r2ec serve` process for the whole session (binary from $R2EC_BIN, default
<repo>/.build/debug/r2ec; popularity model over data/ml-100k; port 0, read back from its "listening on HOST:PORT"
line), stopped with SIGTERM at the end, where it must exit 0. Tests needing it are skipped when the binary, its
`serve` command or the dataset is missing."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # rawwire helper
# This checkout's client first (a shared .venv may hold another worktree's editable install).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

STARTUP_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 30.0
LISTENING = re.compile(r"listening on (\S+):(\d+)")


class ServerProcess:
    """A running server, its address and everything it printed so far."""

    def __init__(self, command: list[str], preexec_fn=None) -> None:
        self.command = command
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.host = ""
        self.port = 0
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        cwd=REPO, preexec_fn=preexec_fn)
        # Drain its output for the whole run: a full pipe would stall the server.
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()
        if not self._ready.wait(STARTUP_TIMEOUT) or not self.port:
            self.process.kill()
            self.process.wait(10)
            raise RuntimeError(f"{' '.join(command)} did not report 'listening on' within {STARTUP_TIMEOUT} s; "
                               f"output:\n{self.output}")

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = LISTENING.search(line)
            if match and not self._ready.is_set():
                self.host, self.port = match.group(1), int(match.group(2))
                self._ready.set()
        self._ready.set()  # EOF: the process ended (the wait in __init__ sees port == 0)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-200:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"the server did not exit within {SHUTDOWN_TIMEOUT} s of SIGTERM; "
                                 f"output:\n{self.output}")
        self._drain.join(5)
        return code


def server_binary() -> Path:
    return Path(os.environ.get("R2EC_BIN", REPO / ".build" / "debug" / "r2ec"))


def server_unavailable_reason() -> str | None:
    binary = server_binary()
    if not binary.exists():
        return f"no server binary at {binary} (build it, or set R2EC_BIN)"
    dataset = REPO / "data" / "ml-100k"
    if not (dataset / "ml-100k.inter").exists():
        return f"no dataset at {dataset} (run scripts/fetch-data.sh)"
    try:
        probe = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{binary} serve --help failed: {error}"
    if probe.returncode != 0 or "--port" not in probe.stdout + probe.stderr:
        return f"{binary} has no `serve` command yet"
    return None


def serve_command(*extra: str) -> list[str]:
    return [str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0",
            "--dataset", str(REPO / "data" / "ml-100k"), "--model", "popularity", *extra]


@pytest.fixture(scope="session")
def server():
    reason = server_unavailable_reason()
    if reason:
        pytest.skip(reason)
    process = ServerProcess(serve_command())
    yield process
    code = process.stop()
    assert code == 0, f"the server exited with {code} after SIGTERM; output:\n{process.output}"


@pytest.fixture
def client(server):
    from r2ec_client import Client
    with Client(server.address, timeout=30) as c:
        yield c


@pytest.fixture
def assert_serving(server):
    """Call after a bad input: a fresh connection still gets SERVING, and the process is alive."""
    from r2ec_client import Client

    def check() -> None:
        assert server.alive(), f"the server died; output:\n{server.output}"
        with Client(server.address, timeout=10) as fresh:
            assert fresh.health() == "SERVING"
    return check


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
