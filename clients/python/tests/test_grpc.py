"""The gRPC front door (issue 14 part 3-4) against REAL grpcio peers: `r2ec serve --port 0 --grpc-port 0` serves the
same services on both ports, and every method is called over gRPC with stubs that grpcio-tools generates from Protos/
at test time, then the same request goes through r2ec_client on the custom port of the same server: the answers
must be identical (the same bytes for the same request; the same code and message for an error).

Covered: unary calls of every service, server-streaming RecommendStream (reasoning deltas from a tiny dual-head
checkpoint written by test_model_loading's helpers) and Health/Watch, grpc.health.v1 through grpcio-health-checking's
own stubs, deadlines (grpc-timeout -> DEADLINE_EXCEEDED, counted by the server), cancellation (RST_STREAM ->
CANCELLED, reasoning slot freed), metadata auth with the same token file, status mapping of bad input, message size
limit, and TLS (--tls-cert/--tls-key) with a certificate made here by openssl."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, ServerProcess, server_binary, server_unavailable_reason, wait_until
from test_model_loading import write_checkpoint, write_dataset

grpc = pytest.importorskip("grpc")
pytest.importorskip("grpc_tools")

from r2ec_client import Client, RpcError, StatusCode  # noqa: E402
from r2ec_client._proto import admin_pb2, events_pb2, health_pb2, recommender_pb2  # noqa: E402

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")

GRPC_PORT = re.compile(r"gRPC on (\S+):(\d+)")
USER, ADMIN = "user-token-1", "admin-token-1"
# Reasoning tokens a request may ask for here: enough that a chain is still running when the test acts on it.
LONG_CHAIN = 2048


def grpc_supported() -> str | None:
    probe = subprocess.run([str(server_binary()), "serve", "--help"], capture_output=True, text=True, timeout=30)
    return None if "--grpc-port" in probe.stdout else "the server binary has no --grpc-port"


def generate_stubs(out: Path) -> dict[str, object]:
    """grpcio-tools' protoc writes the service stubs (*_pb2_grpc.py) from Protos/; they import the messages as
    r2ec.v1.*_pb2, which r2ec_client registers (generated from the same files by scripts/gen-protos.sh)."""
    from grpc_tools import protoc
    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(REPO / "Protos")) for p in (REPO / "Protos").rglob("*.proto"))
    code = protoc.main(["grpc_tools.protoc", f"-I{REPO / 'Protos'}", f"--grpc_python_out={out}", *protos])
    assert code == 0, f"grpc_tools.protoc failed ({code})"
    modules = {}
    for path in sorted((out / "r2ec" / "v1").glob("*_pb2_grpc.py")):
        spec = importlib.util.spec_from_file_location(f"r2ec_grpc_stubs.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[path.stem.removesuffix("_pb2_grpc")] = module
    assert set(modules) >= {"recommender", "health", "admin", "events"}, modules
    return modules


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class World:
    """One server with both ports open, the stubs, and a checkpoint that reasons."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dataset = write_dataset(root / "dataset")
        self.checkpoint = write_checkpoint(root / "dh", writes_answer=False)
        tokens = root / "tokens"
        tokens.write_text(f"{USER}\nadmin {ADMIN}\n")
        self.server = ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0",
                                     "--grpc-port", "0", "--metrics-port", "0", "--dataset", str(self.dataset),
                                     "--model", str(self.checkpoint), "--model", "popularity",
                                     "--auth-token-file", str(tokens), "--max-frame-bytes", "65536",
                                     "--max-reasoning-tokens", str(LONG_CHAIN)])
        match = next((GRPC_PORT.search(line) for line in self.server.lines if GRPC_PORT.search(line)), None)
        assert match, f"no 'gRPC on HOST:PORT' in the server's output:\n{self.server.output}"
        self.grpc_address = f"{match.group(1)}:{match.group(2)}"
        metrics = next(re.search(r"metrics on (http://\S+/metrics)", line) for line in self.server.lines
                       if "metrics on" in line)
        self.metrics_url = metrics.group(1)
        self.stubs = generate_stubs(root / "stubs")
        self.channel = grpc.insecure_channel(self.grpc_address)
        self.client = Client(self.server.address, token=USER, timeout=60)
        self.admin = Client(self.server.address, token=ADMIN, timeout=60)

    def stub(self, service: str):
        return getattr(self.stubs[service.lower()], f"{service}Stub")(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.client.close()
        self.admin.close()

    def metric(self, method: str, code: str) -> float:
        text = urllib.request.urlopen(self.metrics_url, timeout=10).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("r2ec_requests_total{") and f'method="{method}"' in line and f'code="{code}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    reason = grpc_supported()
    if reason:
        pytest.skip(reason)
    w = World(tmp_path_factory.mktemp("grpc"))
    yield w
    w.close()
    assert w.server.stop() == 0, w.server.output


def user(token: str = USER) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


# (path, request message, token): every method of Protos/, each answered over both doors.
def cases(w: World) -> list[tuple[str, object, str]]:
    R = recommender_pb2
    hist = [R.HistoryEvent(item_id="1", timestamp=1000), R.HistoryEvent(item_id="2", timestamp=1010)]
    return [
        ("/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest(), USER),
        ("/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest(service="r2ec.v1.Recommender"), USER),
        ("/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest(service="no.such.Service"), USER),
        ("/r2ec.v1.Recommender/Recommend", R.RecommendRequest(history=hist, top_k=4), USER),
        ("/r2ec.v1.Recommender/Recommend", R.RecommendRequest(user_id="3", top_k=3, model="popularity"), USER),
        ("/r2ec.v1.Recommender/Recommend", R.RecommendRequest(history=hist, top_k=5, return_probabilities=True,
                                                              exclude_item_ids=["5"]), USER),
        ("/r2ec.v1.Recommender/Recommend", R.RecommendRequest(history=hist, top_k=3, mode=R.MODE_REASONING,
                                                              max_reasoning_tokens=12, return_reasoning=True), USER),
        ("/r2ec.v1.Recommender/Recommend", R.RecommendRequest(history=hist, top_k=100000), USER),
        ("/r2ec.v1.Recommender/Recommend", R.RecommendRequest(history=[R.HistoryEvent(item_id="nope")]), USER),
        ("/r2ec.v1.Recommender/Recommend", R.RecommendRequest(history=hist, model="missing"), USER),
        ("/r2ec.v1.Recommender/RecommendBatch", R.RecommendBatchRequest(requests=[
            R.RecommendRequest(history=hist, top_k=2), R.RecommendRequest(user_id="4", top_k=2, model="popularity"),
            R.RecommendRequest(history=hist, top_k=0, model="missing")]), USER),
        ("/r2ec.v1.Recommender/RecommendBatch", R.RecommendBatchRequest(), USER),
        ("/r2ec.v1.Recommender/ScoreItems", R.ScoreItemsRequest(history=hist, item_ids=["3", "4", "7"],
                                                                return_probabilities=True), USER),
        ("/r2ec.v1.Recommender/ScoreItems", R.ScoreItemsRequest(history=hist, item_ids=["3", "zzz"]), USER),
        ("/r2ec.v1.Recommender/SimilarItems", R.SimilarItemsRequest(item_id="2", top_k=3), USER),
        ("/r2ec.v1.Recommender/SimilarItems", R.SimilarItemsRequest(item_id="2", top_k=3, model="popularity"), USER),
        ("/r2ec.v1.Recommender/GetItems", R.GetItemsRequest(item_ids=["1", "8"]), USER),
        ("/r2ec.v1.Recommender/GetItems", R.GetItemsRequest(item_ids=["1", "404"]), USER),
        ("/r2ec.v1.Recommender/SearchItems", R.SearchItemsRequest(limit=3), USER),
        ("/r2ec.v1.Recommender/SearchItems", R.SearchItemsRequest(limit=5000), USER),
        ("/r2ec.v1.Recommender/ModelInfo", R.ModelInfoRequest(), USER),
        ("/r2ec.v1.Recommender/ModelInfo", R.ModelInfoRequest(model="popularity"), USER),
        ("/r2ec.v1.Admin/UnloadModel", admin_pb2.UnloadModelRequest(name="never-loaded"), ADMIN),
        ("/r2ec.v1.Admin/UnloadModel", admin_pb2.UnloadModelRequest(name="never-loaded"), USER),
        ("/r2ec.v1.Admin/LoadModel", admin_pb2.LoadModelRequest(name="", path="popularity"), ADMIN),
        ("/r2ec.v1.Events/GetUserHistory", events_pb2.GetUserHistoryRequest(user_id="1"), USER),
        ("/r2ec.v1.Events/RecordEvents", events_pb2.RecordEventsRequest(), USER),
        ("/r2ec.v1.Events/UpsertItems", events_pb2.UpsertItemsRequest(), USER),
        ("/r2ec.v1.Events/DeleteUser", events_pb2.DeleteUserRequest(user_id=""), USER),
    ]


def over_grpc(w: World, path: str, request, token: str, streaming: bool = False, timeout: float = 60):
    """(code name, details, [response bytes]) of one call through grpcio's channel."""
    call = (w.channel.unary_stream if streaming else w.channel.unary_unary)(
        path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b)
    try:
        answer = call(request, metadata=user(token), timeout=timeout)
        payloads = list(answer) if streaming else [answer]
        return "OK", "", payloads
    except grpc.RpcError as error:
        return error.code().name, error.details(), []


def over_custom(w: World, path: str, request, token: str, timeout: float = 60):
    client = w.admin if token == ADMIN else w.client
    try:
        payloads, status = client.call_raw(path, request.SerializeToString(), timeout=timeout)
        return StatusCode.of(status.code).name, status.message, payloads
    except RpcError as error:
        return error.code().name, error.details(), []


def test_every_method_gives_the_same_answer_over_both_doors(world):
    w = world
    streaming = {"/r2ec.v1.Health/Watch", "/r2ec.v1.Recommender/RecommendStream"}
    paths = {path for path, _, _ in cases(w)}
    every = {f"/r2ec.v1.{service}/{m.name}" for service, module in
             [("Recommender", recommender_pb2), ("Health", health_pb2), ("Admin", admin_pb2), ("Events", events_pb2)]
             for m in module.DESCRIPTOR.services_by_name[service].methods}
    assert every - paths == streaming, f"methods without a unary case: {every - paths - streaming}"
    seen_codes = set()
    for path, request, token in cases(w):
        g = over_grpc(w, path, request, token)
        c = over_custom(w, path, request, token)
        assert g == c, f"{path} {request}: gRPC {g[:2]} vs custom {c[:2]}"
        seen_codes.add(g[0])
    # The cases reach answers and errors of several kinds, not one status everywhere.
    assert {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED"} <= seen_codes, seen_codes


def test_generated_stubs_call_every_service(world):
    w = world
    R = recommender_pb2
    md = user()
    rec = w.stub("Recommender")
    hist = [R.HistoryEvent(item_id="1"), R.HistoryEvent(item_id="2")]
    answer = rec.Recommend(R.RecommendRequest(history=hist, top_k=3), metadata=md, timeout=60)
    typed = w.client.recommend(history=[1, 2], top_k=3)
    assert [i.item_id for i in answer.items] == [str(i.item_id) for i in typed.items]
    assert [i.score for i in answer.items] == pytest.approx([i.score for i in typed.items], rel=0, abs=0)
    assert answer.model == typed.model
    info = rec.ModelInfo(R.ModelInfoRequest(), metadata=md, timeout=60)
    assert info.default_model == "dh" and {m.name for m in info.loaded} == {"dh", "popularity"}
    assert w.stub("Health").Check(health_pb2.HealthCheckRequest(), metadata=md, timeout=10).status == \
        health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as denied:
        w.stub("Admin").UnloadModel(admin_pb2.UnloadModelRequest(name="dh"), metadata=md, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_recommend_stream_deltas_match_the_custom_protocol(world):
    w = world
    R = recommender_pb2
    request = R.RecommendRequest(history=[R.HistoryEvent(item_id="3"), R.HistoryEvent(item_id="4")], top_k=3,
                                 mode=R.MODE_REASONING, max_reasoning_tokens=16, return_reasoning=True)
    stream = list(w.stub("Recommender").RecommendStream(request, metadata=user(), timeout=60))
    assert len(stream) >= 2 and stream[-1].HasField("result")
    assert all(m.HasField("reasoning_delta") for m in stream[:-1])
    assert "".join(m.reasoning_delta for m in stream[:-1]) == stream[-1].result.reasoning
    code, _, raw = over_grpc(w, "/r2ec.v1.Recommender/RecommendStream", request, USER, streaming=True)
    custom = over_custom(w, "/r2ec.v1.Recommender/RecommendStream", request, USER)
    assert code == "OK" and raw == [m.SerializeToString() for m in stream] == custom[2]
    typed = w.client.recommend_stream(history=[3, 4], top_k=3, reasoning=True, max_reasoning_tokens=16)
    result = typed.collect()
    assert typed.reasoning == stream[-1].result.reasoning
    assert [str(i.item_id) for i in result.items] == [i.item_id for i in stream[-1].result.items]


def test_request_id_is_echoed_in_grpc_trailing_metadata(world):
    """As on the custom port (docs/protocol.md, request ids): the client's x-request-id comes back in the trailing
    metadata of an OK call and of a failed one; a failed call without one gets the server's own."""
    call = world.channel.unary_unary("/r2ec.v1.Recommender/Recommend",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=lambda b: b)
    hist = [recommender_pb2.HistoryEvent(item_id="1")]
    _, answer = call.with_call(recommender_pb2.RecommendRequest(history=hist, top_k=2),
                               metadata=user() + [("x-request-id", "grpc-ok-1")], timeout=30)
    assert ("x-request-id", "grpc-ok-1") in answer.trailing_metadata()
    with pytest.raises(grpc.RpcError) as failure:
        call(recommender_pb2.RecommendRequest(history=hist, model="missing"),
             metadata=user() + [("x-request-id", "grpc-bad-2")], timeout=30)
    assert failure.value.code() is grpc.StatusCode.NOT_FOUND
    assert ("x-request-id", "grpc-bad-2") in failure.value.trailing_metadata()
    with pytest.raises(grpc.RpcError) as failure:
        call(recommender_pb2.RecommendRequest(history=hist, model="missing"), metadata=user(), timeout=30)
    assert any(key == "x-request-id" and value for key, value in failure.value.trailing_metadata())


def test_health_watch_and_grpc_health_v1(world):
    from grpc_health.v1 import health_pb2 as gh, health_pb2_grpc as gh_grpc
    w = world
    standard = gh_grpc.HealthStub(w.channel)
    assert standard.Check(gh.HealthCheckRequest(service=""), metadata=user(), timeout=10).status == \
        gh.HealthCheckResponse.SERVING
    assert standard.Check(gh.HealthCheckRequest(service="r2ec.v1.Recommender"), metadata=user(), timeout=10).status \
        == gh.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as unknown:
        standard.Check(gh.HealthCheckRequest(service="nope"), metadata=user(), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    watch = standard.Watch(gh.HealthCheckRequest(service=""), metadata=user(), timeout=30)
    assert next(watch).status == gh.HealthCheckResponse.SERVING
    watch.cancel()
    ours = w.stub("Health").Watch(health_pb2.HealthCheckRequest(), metadata=user(), timeout=30)
    assert next(ours).status == health_pb2.HealthCheckResponse.SERVING
    ours.cancel()
    assert w.client.health() == "SERVING"


def test_auth_over_grpc_matches_the_custom_protocol(world):
    w = world
    request = health_pb2.HealthCheckRequest()
    for metadata, expected in [([], "UNAUTHENTICATED"), (user("wrong"), "UNAUTHENTICATED"),
                               ([("authorization", USER)], "UNAUTHENTICATED")]:
        with pytest.raises(grpc.RpcError) as refused:
            w.stub("Health").Check(request, metadata=metadata, timeout=10)
        assert refused.value.code().name == expected
        custom_token = None if not metadata else metadata[0][1].removeprefix("Bearer ")
        if metadata and not metadata[0][1].startswith("Bearer "):
            continue  # r2ec_client always sends "Bearer <token>"
        with Client(w.server.address, token=custom_token, timeout=10) as anonymous:
            with pytest.raises(RpcError) as custom:
                anonymous.health()
        assert custom.value.code().name == expected
        assert custom.value.details() == refused.value.details()
    # An admin token may call everything; a user token not the Admin service (checked in the cases above too).
    assert w.stub("Health").Check(request, metadata=user(ADMIN), timeout=10).status == 1


def test_deadline_exceeded_is_the_servers_answer(world):
    w = world
    R = recommender_pb2
    before = w.metric("/r2ec.v1.Recommender/Recommend", "DEADLINE_EXCEEDED")
    slow = R.RecommendRequest(history=[R.HistoryEvent(item_id="1")], top_k=3, mode=R.MODE_REASONING,
                              max_reasoning_tokens=512)
    # A grpc-timeout far below what 512 reasoning tokens take in a debug build: the server gives up on its own.
    with pytest.raises(grpc.RpcError) as late:
        w.stub("Recommender").Recommend(slow, metadata=user(), timeout=0.05)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_until(lambda: w.metric("/r2ec.v1.Recommender/Recommend", "DEADLINE_EXCEEDED") > before, 10), \
        "the server did not record the call as DEADLINE_EXCEEDED"
    # A deadline that has passed when the call arrives: DEADLINE_EXCEEDED from both doors, never computed.
    before = w.metric("/r2ec.v1.Recommender/Recommend", "DEADLINE_EXCEEDED")
    with pytest.raises(grpc.RpcError) as expired:
        w.stub("Recommender").Recommend(slow, metadata=user(), timeout=0.0005)
    assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert wait_until(lambda: w.metric("/r2ec.v1.Recommender/Recommend", "DEADLINE_EXCEEDED") > before, 10)
    assert over_custom(w, "/r2ec.v1.Recommender/Recommend", slow, USER, timeout=0.001)[0] == "DEADLINE_EXCEEDED"
    assert w.stub("Health").Check(health_pb2.HealthCheckRequest(), metadata=user(), timeout=5).status == 1


def test_cancel_frees_the_call(world):
    w = world
    R = recommender_pb2
    before = w.metric("/r2ec.v1.Recommender/RecommendStream", "CANCELLED")
    # The world's checkpoint never writes <answer>: the chain runs all LONG_CHAIN tokens (~0.6 s in a debug build),
    # so the cancellation reaches the server while it is still generating.
    request = R.RecommendRequest(history=[R.HistoryEvent(item_id="2")], top_k=3, mode=R.MODE_REASONING,
                                 max_reasoning_tokens=LONG_CHAIN, return_reasoning=True)
    stream = w.stub("Recommender").RecommendStream(request, metadata=user(), timeout=60)
    first = next(stream)
    assert first.HasField("reasoning_delta")
    stream.cancel()
    with pytest.raises(grpc.RpcError) as cancelled:
        list(stream)
    assert cancelled.value.code() == grpc.StatusCode.CANCELLED
    assert wait_until(lambda: w.metric("/r2ec.v1.Recommender/RecommendStream", "CANCELLED") > before, 10), \
        "the server did not see the cancellation"
    # The server keeps serving over both doors.
    assert w.stub("Health").Check(health_pb2.HealthCheckRequest(), metadata=user(), timeout=10).status == 1
    assert w.client.health() == "SERVING"


def test_bad_bytes_and_size_limit(world):
    w = world
    raw = w.channel.unary_unary("/r2ec.v1.Recommender/Recommend", request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
    for payload in [b"\xff\xff\xff", b"\x0a\x05ab"]:
        with pytest.raises(grpc.RpcError) as bad:
            raw(payload, metadata=user(), timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        payloads, status = w.client.call_raw("/r2ec.v1.Recommender/Recommend", payload, timeout=10)
        assert payloads == [] and (bad.value.code().name, bad.value.details()) == \
            (StatusCode.of(status.code).name, status.message)
    with pytest.raises(grpc.RpcError) as big:
        raw(b"\x0a" + b"\x80\x80\x04" + b"x" * 65536, metadata=user(), timeout=10)  # over --max-frame-bytes 65536
    assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "65536" in big.value.details()
    # Far over the limit the transport resets the stream before reading it all; the call fails, the server stays.
    with pytest.raises(grpc.RpcError):
        raw(b"x" * (4 * 65536), metadata=user(), timeout=10)
    unknown = w.channel.unary_unary("/r2ec.v1.Recommender/Nope", request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as missing:
        unknown(b"", metadata=user(), timeout=10)
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert w.server.alive()


def test_tls(tmp_path):
    if grpc_supported():
        pytest.skip(grpc_supported())
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a certificate")
    cert, key = make_certificate(tmp_path)
    dataset = write_dataset(tmp_path / "dataset")
    base = [str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", "--dataset", str(dataset),
            "--model", "popularity"]
    # A missing key file: refused at startup, naming the flag.
    broken = subprocess.run(base + ["--grpc-port", "0", "--tls-cert", str(cert), "--tls-key", str(tmp_path / "no")],
                            capture_output=True, text=True, timeout=60)
    assert broken.returncode != 0 and "--tls-key" in broken.stderr + broken.stdout
    lone = subprocess.run(base + ["--grpc-port", "0", "--tls-cert", str(cert)], capture_output=True, text=True,
                          timeout=60)
    assert lone.returncode != 0 and "--tls-key" in lone.stderr + lone.stdout
    server = ServerProcess(base + ["--grpc-port", "0", "--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        match = next(GRPC_PORT.search(line) for line in server.lines if GRPC_PORT.search(line))
        address = f"localhost:{match.group(2)}"
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(address, credentials) as channel:
            stubs = generate_stubs(tmp_path / "stubs")
            rec = stubs["recommender"].RecommenderStub(channel)
            request = recommender_pb2.RecommendRequest(history=[recommender_pb2.HistoryEvent(item_id="1")], top_k=3)
            answer = rec.Recommend(request, timeout=30)
            with Client(server.address, timeout=30) as client:
                payloads, status = client.call_raw("/r2ec.v1.Recommender/Recommend", request.SerializeToString())
            assert status.code == 0 and payloads == [answer.SerializeToString()]
        # Plaintext HTTP/2 to the TLS port fails; so does TLS with a root that did not sign the certificate.
        with grpc.insecure_channel(address) as plain:
            with pytest.raises(grpc.RpcError) as refused:
                stubs["health"].HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        other, _ = make_certificate(tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path)
        with grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=other.read_bytes())) as wrong:
            with pytest.raises(grpc.RpcError) as untrusted:
                stubs["health"].HealthStub(wrong).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert untrusted.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        assert server.stop() == 0, server.output


def test_go_client_gets_the_same_answer_over_both_doors(world):
    """clients/go/example (docs/clients.md): stubs generated from Protos/ at the go_package import path, one
    Recommend over gRPC and one over the custom protocol's framing, the same bytes back."""
    if not shutil.which("go") or not Path("/usr/share/gocode/src/google.golang.org/grpc").is_dir():
        pytest.skip("Go and Debian's golang-google-grpc-dev are not installed (make deps installs them)")
    run = subprocess.run([str(REPO / "clients" / "go" / "run-example.sh"), world.grpc_address, world.server.address,
                          USER], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("same answer"), run.stdout
    assert run.stdout.count('item_id:') == 6, run.stdout  # top_k 3, twice


def curl_grpc(w: World, path: str, message: bytes, headers: dict[str, str]) -> dict[str, str]:
    """One gRPC call by curl over HTTP/2 without TLS (prior knowledge): headers sent as given, so a grpc-timeout no
    gRPC library would send reaches the server, and no client-side deadline races the server's answer. Returns the
    response's headers and trailers (lower-case names)."""
    if not shutil.which("curl"):
        pytest.skip("no curl")
    body = b"\x00" + len(message).to_bytes(4, "big") + message
    command = ["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-D", "-", "--max-time", "30",
               "-H", "content-type: application/grpc", "-H", "te: trailers", "-H", f"authorization: Bearer {USER}",
               "--data-binary", "@-"]
    for key, value in headers.items():
        command += ["-H", f"{key}: {value}"]
    run = subprocess.run(command + [f"http://{w.grpc_address}{path}"], input=body, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    fields = {}
    for line in run.stdout.decode().splitlines():
        if ":" in line and not line.startswith(":"):
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
    return fields


def test_grpc_timeout_header_is_the_calls_deadline(world):
    w = world
    R = recommender_pb2
    health = health_pb2.HealthCheckRequest().SerializeToString()
    assert curl_grpc(w, "/r2ec.v1.Health/Check", health, {})["grpc-status"] == "0"
    bad = curl_grpc(w, "/r2ec.v1.Health/Check", health, {"grpc-timeout": "5s"})
    assert bad["grpc-status"] == "3" and "grpc-timeout" in bad["grpc-message"], bad
    assert curl_grpc(w, "/r2ec.v1.Health/Check", health, {"grpc-timeout": "100000000m"})["grpc-status"] == "3"
    # 1 ms for 512 reasoning tokens: the server's own DEADLINE_EXCEEDED (curl has no deadline of its own).
    slow = R.RecommendRequest(history=[R.HistoryEvent(item_id="5")], top_k=2, mode=R.MODE_REASONING,
                              max_reasoning_tokens=512).SerializeToString()
    late = curl_grpc(w, "/r2ec.v1.Recommender/Recommend", slow, {"grpc-timeout": "1m"})
    assert late["grpc-status"] == "4", late
    # A generous deadline is met (a short chain: 512 tokens of a debug build on a loaded 2-core machine can outlast
    # curl's own 30 s limit, which is not what this checks).
    quick = R.RecommendRequest(history=[R.HistoryEvent(item_id="5")], top_k=2, mode=R.MODE_REASONING,
                               max_reasoning_tokens=8).SerializeToString()
    assert curl_grpc(w, "/r2ec.v1.Recommender/Recommend", quick, {"grpc-timeout": "60S"})["grpc-status"] == "0"
