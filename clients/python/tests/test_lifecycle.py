"""Real servers of their own (not the session's): bearer-token auth (UNAUTHENTICATED, PERMISSION_DENIED for Admin
without an admin token, the shell client's --token-file), and the graceful drain on SIGTERM: GOAWAY code 0 with the
last accepted stream id on every connection, the client failing over to UNAVAILABLE, exit code 0."""
from __future__ import annotations

import signal
import subprocess

import pytest

from conftest import REPO, ServerProcess, serve_command, server_unavailable_reason
from rawwire import RawConnection
from r2ec_client import Client, RpcError, StatusCode
from r2ec_client import frames as F
from r2ec_client._proto import wire_pb2

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None,
                                reason=server_unavailable_reason() or "")


@pytest.fixture
def own_server(tmp_path):
    started: list[ServerProcess] = []

    def start(*extra: str) -> ServerProcess:
        process = ServerProcess(serve_command(*extra))
        started.append(process)
        return process
    yield start
    for process in started:
        if process.alive():
            process.stop()


def test_auth_tokens(own_server, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("user-token\nadmin admin-token\n")
    server = own_server("--auth-token-file", str(tokens))
    for token in (None, "wrong-token"):
        with Client(server.address, token=token, timeout=10) as client:
            with pytest.raises(RpcError) as failure:
                client.recommend(history=[50])
            assert failure.value.code() == StatusCode.UNAUTHENTICATED
    with Client(server.address, token="user-token", timeout=10) as client:
        assert len(client.recommend(history=[50]).items) == 10
        with pytest.raises(RpcError) as failure:
            client.load_model("copy", "popularity")
        assert failure.value.code() == StatusCode.PERMISSION_DENIED
    with Client(server.address, token="admin-token", timeout=10) as admin:
        assert admin.model_info().kind == "popularity"
    token_file = tmp_path / "user"
    token_file.write_text("user-token\n")
    shell = REPO / "clients" / "shell" / "r2ec.sh"
    with_token = subprocess.run(["bash", str(shell), "--token-file", str(token_file), server.address, "recommend",
                                 "50"], capture_output=True, text=True, timeout=60)
    assert with_token.returncode == 0 and len(with_token.stdout.splitlines()) == 10, with_token.stderr
    without = subprocess.run(["bash", str(shell), server.address, "recommend", "50"], capture_output=True, text=True,
                             timeout=60)
    assert without.returncode != 0 and without.stderr.startswith("error: UNAUTHENTICATED: ")
    assert server.stop() == 0


def test_graceful_drain_on_sigterm(own_server):
    server = own_server("--drain-timeout", "5")
    client = Client(server.address, timeout=10)
    raw = RawConnection(server.host, server.port)
    try:
        assert client.health() == "SERVING"
        for stream_id in (1, 2, 3):
            raw.send_call(stream_id, "/r2ec.v1.Health/Check")
            raw.expect_status(stream_id, "OK")
        server.process.send_signal(signal.SIGTERM)
        goaway = None
        for _ in range(10):
            frame = raw.read_frame()
            if frame is None:
                break
            if frame.type == F.FrameType.GOAWAY:
                goaway = wire_pb2.GoAway.FromString(frame.payload)
        assert goaway is not None and (goaway.code, goaway.last_stream_id) == (0, 3)
        assert raw.at_eof()
        assert server.stop() == 0
        # the Client saw its own GOAWAY; its next call looks for a new connection and finds no server
        with pytest.raises(RpcError) as failure:
            client.health()
        assert failure.value.code() == StatusCode.UNAVAILABLE
    finally:
        raw.close()
        client.close()
