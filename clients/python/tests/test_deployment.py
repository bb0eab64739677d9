"""deploy/: the systemd unit passes `systemd-analyze verify` with no warning and `systemd-analyze security` rates it
below 2.5 (with the binary's path pointed at the built one; a misspelt directive is caught, so the check can fail);
logrotate rotates with deploy/r2ec.logrotate; the example settings file has only known keys. And the drain grace of
a real server: after SIGTERM /healthz answers 503 and Health NOT_SERVING while calls still succeed, then it drains
and exits 0."""
from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO, ServerProcess, serve_command, server_binary, server_unavailable_reason, wait_until
from r2ec_client import Client

DEPLOY = REPO / "deploy"


def verify(unit) -> subprocess.CompletedProcess:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed (apt-get install systemd)")
def test_unit_verifies_and_is_hardened(tmp_path):
    # verify checks that ExecStart's program exists: point /usr/local/bin/r2ec at any executable here.
    binary = server_binary() if server_binary().exists() else shutil.which("true")
    unit = tmp_path / "r2ec.service"
    text = (DEPLOY / "r2ec.service").read_text()
    assert "/usr/local/bin/r2ec" in text
    unit.write_text(text.replace("/usr/local/bin/r2ec", str(binary)))
    result = verify(unit)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=25", str(unit)],
                              capture_output=True, text=True, timeout=120)
    assert security.returncode == 0, security.stdout[-2000:] + security.stderr
    for directive in ("User=r2ec", "ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/var/lib/r2ec"):
        assert directive in text

    broken = tmp_path / "broken.service"
    broken.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomme=yes"))
    assert "Unknown key 'ProtectHomme'" in verify(broken).stderr


def test_sysusers_declares_the_service_user():
    line = [l for l in (DEPLOY / "sysusers.d" / "r2ec.conf").read_text().splitlines() if l and not l.startswith("#")]
    assert len(line) == 1 and line[0].split()[:2] == ["u", "r2ec"]
    if shutil.which("systemd-sysusers"):
        # --dry-run parses the file and says what it would create; an unparsable line is an error.
        result = subprocess.run(["systemd-sysusers", "--dry-run", str(DEPLOY / "sysusers.d" / "r2ec.conf")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_rotates_by_copy_and_truncate(tmp_path):
    logs = tmp_path / "log"
    logs.mkdir()
    config = tmp_path / "r2ec.logrotate"
    config.write_text((DEPLOY / "r2ec.logrotate").read_text().replace("/var/log/r2ec", str(logs)))
    log = logs / "r2ec.log"
    log.write_text("r2ec: listening on 127.0.0.1:7878\n")
    with open(log, "a") as writer:  # the service's descriptor, kept open across the rotation
        result = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(config)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result
        writer.write("after rotation\n")
    assert (logs / "r2ec.log.1").read_text() == "r2ec: listening on 127.0.0.1:7878\n"
    assert log.read_text() == "after rotation\n"


@pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")
def test_example_settings_file_has_only_known_keys(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("admin secret\n")
    # The example's paths are the installed ones; the command line points them here and the check reads the rest.
    checked = subprocess.run([str(server_binary()), "serve", "--config", str(DEPLOY / "r2ec.yaml"), "--model",
                              "popularity", "--auth-token-file", str(tokens), "--check-config"],
                             capture_output=True, text=True, timeout=120, cwd=REPO)
    assert checked.returncode == 0, checked
    assert "drain-grace: 10" in checked.stdout


def healthz(port: int) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")
def test_healthz_answers_503_during_the_drain_grace():
    grace = 4.0
    server = ServerProcess(serve_command("--metrics-port", "0", "--drain-grace", str(grace)))
    try:
        metrics_port = int([l for l in server.lines if "metrics on http://" in l][0].split(":")[-1].split("/")[0])
        assert healthz(metrics_port) == (200, b"SERVING\n")
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert wait_until(lambda: healthz(metrics_port)[0] == 503, timeout=2), server.output
        assert healthz(metrics_port) == (503, b"NOT_SERVING\n")
        # Within the grace period the RPC port still takes new connections and answers calls.
        with Client(server.address, timeout=10) as client:
            assert client.health() == "NOT_SERVING"
            assert len(client.recommend(history=[50]).items) == 10
        assert time.monotonic() - signalled < grace, "the checks above outlasted the grace period"
        assert server.process.wait(grace + 30) == 0
        assert time.monotonic() - signalled >= grace - 0.1
        assert any("draining in 4.0 s" in line for line in server.lines), server.output
    finally:
        if server.alive():
            server.process.kill()


@pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")
def test_model_rollout_steps_of_the_deployment_page(tmp_path):
    """docs/deployment.md's rollout, with baselines standing in for checkpoint directories."""
    tokens = tmp_path / "tokens"
    tokens.write_text("admin admin-token\n")
    server = ServerProcess(serve_command("--auth-token-file", str(tokens)))
    try:
        with Client(server.address, token="admin-token", timeout=60) as admin:
            before = admin.model_info()
            assert before.name == "popularity"
            admin.load_model("candidate", "wals")                      # 1. load beside
            assert admin.model_info().name == "popularity"            #    the default is unchanged
            info = admin.model_info("candidate")                       # 2. verify
            assert info.kind == "wals" and info.num_items == before.num_items
            answer = admin.recommend(history=[50, 172], model="candidate")
            assert answer.model == "candidate" and len(answer.items) == 10
            admin.load_model("candidate", "wals", make_default=True)  # 3. swap
            assert admin.recommend(history=[50, 172]).model == "candidate"
            admin.load_model("popularity", "popularity", make_default=True)  # 4. roll back
            assert admin.recommend(history=[50, 172]).model == "popularity"
            admin.unload_model("candidate")
            assert [m.name for m in admin.model_info().loaded] == ["popularity"]
    finally:
        assert server.stop() == 0
