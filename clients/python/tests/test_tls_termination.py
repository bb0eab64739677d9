"""TLS in front of the custom protocol (docs/deployment.md, "TLS"): a real stunnel (Debian's stunnel4) terminates TLS
on one port and forwards the plain bytes to `r2ec serve --port`; calls made through it over a TLS socket get the
same answers as calls made to the server directly, a client that does not trust the certificate is refused, and
plaintext to the TLS port gets no answer. The stunnel configuration is the one the docs show."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ServerProcess, serve_command, server_unavailable_reason
from r2ec_client._proto import health_pb2, recommender_pb2
from rawwire import RawConnection

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")

STUNNEL_CONF = """\
foreground = yes
pid =
[r2ec]
accept = 127.0.0.1:{tls_port}
connect = 127.0.0.1:{port}
cert = {cert}
key = {key}
sslVersionMin = TLSv1.2
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def certificate(directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class TLSConnection(RawConnection):
    """rawwire's connection over a TLS socket."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:  # noqa: D107 - no super(): its socket is plain
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(sock, server_hostname="localhost")
        self.timeout = 10


def test_stunnel_terminates_tls_for_the_custom_protocol(tmp_path):
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if not stunnel or not shutil.which("openssl"):
        pytest.skip("stunnel4 or openssl not installed (make deps installs them)")
    cert, key = certificate(tmp_path / "tls")
    server = ServerProcess(serve_command())
    tls_port = free_port()
    conf = tmp_path / "stunnel.conf"
    conf.write_text(STUNNEL_CONF.format(tls_port=tls_port, port=server.port, cert=cert, key=key))
    proxy = subprocess.Popen([stunnel, str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = TLSConnection(tls_port, trusted)
                break
            except OSError:
                assert proxy.poll() is None, proxy.stdout.read()
                assert time.monotonic() < deadline, "stunnel did not accept TLS within 20 s"
                time.sleep(0.1)
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        request = recommender_pb2.RecommendRequest(history=[recommender_pb2.HistoryEvent(item_id="50")], top_k=5)
        conn.send_call(1, "/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest().SerializeToString())
        messages, status = conn.read_call(1)
        assert status.code == 0 and health_pb2.HealthCheckResponse.FromString(messages[0]).status == 1
        conn.send_call(3, "/r2ec.v1.Recommender/Recommend", request.SerializeToString(), timeout_ms=10000)
        through_tls = conn.read_call(3)
        direct = RawConnection("127.0.0.1", server.port)
        direct.send_call(1, "/r2ec.v1.Recommender/Recommend", request.SerializeToString(), timeout_ms=10000)
        assert through_tls == direct.read_call(1)
        assert len(recommender_pb2.RecommendResponse.FromString(through_tls[0][0]).items) == 5
        conn.sock.close()
        direct.sock.close()

        # A client that does not trust the certificate: the handshake fails.
        with pytest.raises(ssl.SSLCertVerificationError):
            TLSConnection(tls_port, ssl.create_default_context())
        # Plaintext frames to the TLS port: stunnel drops the connection, nothing reaches the server as a call.
        plain = RawConnection("127.0.0.1", tls_port, timeout=5)
        plain.send_call(1, "/r2ec.v1.Health/Check", b"")
        try:
            assert plain.read_frame() is None
        except (ConnectionResetError, socket.timeout):
            pass
        assert server.alive()
    finally:
        proxy.terminate()
        proxy.wait(10)
        assert server.stop() == 0, server.output
