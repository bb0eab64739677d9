"""`r2ec serve --config FILE` and R2EC_* environment overrides against a real server process: a YAML file's settings
take effect (max-top-k refuses a larger top_k, the metrics port answers), the environment wins over the file and the
command line over both; an unknown key, a bad value and a missing file stop the server before it listens, naming the
key and the file's line; --check-config validates and exits; `r2ec --version` prints the version."""
from __future__ import annotations

import subprocess
import urllib.request

import pytest

from conftest import REPO, ServerProcess, server_binary, server_unavailable_reason
from r2ec_client import Client, RpcError, StatusCode

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None,
                                reason=server_unavailable_reason() or "")

DATASET = REPO / "data" / "ml-100k"


def write_config(tmp_path, body: str):
    path = tmp_path / "r2ec.yaml"
    path.write_text(body)
    return path


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(server_binary()), *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def top_k_limit(address: str) -> int:
    """The largest top_k the server accepts, found by asking (the limit is the only thing that refuses it)."""
    with Client(address, timeout=30) as client:
        largest = 0
        for k in (3, 4, 5, 6, 7):
            try:
                client.recommend(history=[50], top_k=k)
                largest = k
            except RpcError as error:
                assert error.code() == StatusCode.INVALID_ARGUMENT and "top_k" in error.details(), error
                break
        return largest


def test_file_settings_apply_and_environment_and_command_line_override(tmp_path, monkeypatch):
    config = write_config(tmp_path, f"""
# r2ec serve settings
host: 127.0.0.1
port: 0
dataset: {DATASET}
model: [popularity]
max-top-k: 5
metrics-port: 0
""")
    server = ServerProcess([str(server_binary()), "serve", "--config", str(config)])
    try:
        assert top_k_limit(server.address) == 5
        metrics = [line for line in server.lines if "metrics on http://" in line]
        assert metrics, server.output
        url = metrics[0].split("metrics on ")[1].split("/metrics")[0] + "/healthz"
        assert urllib.request.urlopen(url, timeout=10).read() == b"SERVING\n"
    finally:
        assert server.stop() == 0

    monkeypatch.setenv("R2EC_MAX_TOP_K", "4")
    server = ServerProcess([str(server_binary()), "serve", "--config", str(config)])
    try:
        assert top_k_limit(server.address) == 4
    finally:
        assert server.stop() == 0

    server = ServerProcess([str(server_binary()), "serve", "--config", str(config), "--max-top-k", "6"])
    try:
        assert top_k_limit(server.address) == 6
    finally:
        assert server.stop() == 0


def test_unknown_key_bad_value_and_missing_file_stop_before_listening(tmp_path):
    config = write_config(tmp_path, f"port: 0\ndataset: {DATASET}\nmax-conections: 10\n")
    failed = run(["serve", "--config", str(config)])
    assert failed.returncode == 64, failed
    assert f"{config}:3: unknown key 'max-conections' (did you mean 'max-connections'?)" in failed.stderr
    assert "listening" not in failed.stdout

    config.write_text(f"dataset: {DATASET}\nport: seven\n")
    failed = run(["serve", "--config", str(config)])
    assert failed.returncode == 64, failed
    assert "'seven'" in failed.stderr and "--port was set by " + f"{config}:2" in failed.stderr, failed.stderr

    failed = run(["serve", "--config", str(tmp_path / "absent.yaml")])
    assert failed.returncode == 64 and f"{tmp_path / 'absent.yaml'}: cannot read" in failed.stderr, failed


def test_check_config(tmp_path, monkeypatch):
    config = write_config(tmp_path, f"port: 0\ndataset: {DATASET}\nmodel: [popularity, wals]\n")
    monkeypatch.setenv("R2EC_MAX_QUEUE_SIZE", "100")
    checked = run(["serve", "--config", str(config), "--check-config"])
    assert checked.returncode == 0, checked
    assert "settings OK" in checked.stdout
    assert f"model: popularity, wals  ({config}:3)" in checked.stdout
    assert "max-queue-size: 100  (environment variable R2EC_MAX_QUEUE_SIZE)" in checked.stdout

    config.write_text(f"dataset: {DATASET}\nmodel: [popularity, {tmp_path / 'no-such-checkpoint'}]\n")
    checked = run(["serve", "--config", str(config), "--check-config"])
    assert checked.returncode != 0 and "no-such-checkpoint" in checked.stderr, checked

    monkeypatch.setenv("R2EC_PORT", "70000")
    checked = run(["serve", "--check-config"])
    assert checked.returncode != 0 and "70000" in checked.stderr, checked


def test_version():
    shown = run(["--version"])
    assert shown.returncode == 0 and shown.stdout.strip()[0].isdigit(), shown
