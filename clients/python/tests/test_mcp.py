"""`r2ec mcp` driven by the real MCP client (the `mcp` package from PyPI), over stdio and over Streamable HTTP, in
front of a real `r2ec serve --store sqlite:...` filled from ml-100k: every tool listed with a closed schema and
called; answers checked against the dataset files (search, lookup) and against the same RPCs made by the Python
client (recommend, similar items); feedback stored before the answer and reflected in the user's history; refusals
as tool errors naming the argument; unknown tools as protocol errors; the HTTP door's bad requests refused while it
keeps serving."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import threading

import anyio
import pytest

from conftest import ServerProcess, server_binary, server_unavailable_reason
from ml100k import DATASET, items as catalogue
from r2ec_client import Client

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

TOOLS = {"recommend", "search_items", "get_items", "similar_items", "record_feedback"}

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")



# -- servers ----------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store_server(tmp_path_factory):
    url = f"sqlite:{tmp_path_factory.mktemp('mcp') / 'r2ec.sqlite'}"
    done = subprocess.run([str(server_binary()), "store", "import", "--dataset", str(DATASET), "--store", url],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # WALS: a model with item vectors, so similar_items has an answer (popularity has none).
    server = ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", "--model",
                            "wals", "--store", url])
    yield server
    assert server.stop() == 0, server.output


@pytest.fixture(scope="module")
def rpc(store_server):
    with Client(store_server.address) as client:
        yield client


def run(session_body, *args):
    """Runs `session_body(session, *args)` inside an initialised MCP session over stdio with `r2ec mcp`."""
    async def main():
        params = StdioServerParameters(command=str(server_binary()), args=["mcp", *args])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await session_body(session)

    return anyio.run(main)


def call(address: str, name: str, arguments: dict):
    async def body(session):
        return await session.call_tool(name, arguments)
    return run(body, address)


def structured(result) -> dict:
    assert not result.is_error, result.content
    # The same JSON as text, for clients that read only text.
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


def error_text(result) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


# -- tools over stdio ---------------------------------------------------------------------------------------------------

def test_every_tool_is_listed_with_a_closed_schema(store_server):
    async def body(session):
        return (await session.list_tools()).tools
    tools = run(body, store_server.address)
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        schema = tool.input_schema
        assert schema["type"] == "object" and schema["additionalProperties"] is False, tool.name
        assert set(schema.get("required", [])) <= set(schema["properties"]), tool.name
        assert tool.description
    required = {t.name: set(t.input_schema.get("required", [])) for t in tools}
    assert required["get_items"] == {"item_ids"} and required["record_feedback"] == {"user_id", "item_id"}


def test_search_items_matches_the_dataset_most_rated_first(store_server):
    items = catalogue()
    expected = {i for i, row in items.items() if "star" in row["title"].lower() and "Sci-Fi" in row["genres"]}
    assert expected, "the dataset should hold Star ... science fiction"
    found = structured(call(store_server.address, "search_items",
                            {"query": "STAR", "genres": ["sci-fi"], "limit": 1000}))
    assert found["total_matches"] == len(expected)
    assert {i["item_id"] for i in found["items"]} == expected
    counts = [i["num_ratings"] for i in found["items"]]
    assert counts == sorted(counts, reverse=True)
    # Year bounds, inclusive, and paging keeps the total.
    in_1995 = {i for i, row in items.items() if row["year"] == 1995}
    page = structured(call(store_server.address, "search_items",
                           {"min_year": 1995, "max_year": 1995, "limit": 7, "offset": 3}))
    assert page["total_matches"] == len(in_1995) and len(page["items"]) == 7
    assert {i["item_id"] for i in page["items"]} <= in_1995


def test_get_items_returns_the_dataset_facts(store_server):
    items = catalogue()
    got = structured(call(store_server.address, "get_items", {"item_ids": ["50", "1"]}))["items"]
    assert [i["item_id"] for i in got] == ["50", "1"]
    for item in got:
        row = items[item["item_id"]]
        assert item["title"] == row["title"] and item["year"] == row["year"] and item["genres"] == row["genres"]


def test_recommend_and_similar_items_equal_the_rpc_answers(store_server, rpc):
    history = ["50", "172", "181"]
    answer = structured(call(store_server.address, "recommend", {"history": history, "top_k": 5}))
    direct = rpc.recommend(history, top_k=5)
    assert [i["item_id"] for i in answer["items"]] == [i.item_id for i in direct.items]
    assert [i["rank"] for i in answer["items"]] == [1, 2, 3, 4, 5]
    assert not set(history) & {i["item_id"] for i in answer["items"]}
    similar = structured(call(store_server.address, "similar_items", {"item_id": "50", "top_k": 4}))
    assert [i["item_id"] for i in similar["items"]] == [i.item_id for i in rpc.similar_items("50", top_k=4).items]


def test_record_feedback_is_stored_and_idempotent(store_server, rpc):
    user = "mcp-user-1"
    first = structured(call(store_server.address, "record_feedback",
                            {"user_id": user, "item_id": "50", "kind": "click", "idempotency_key": "mcp-k1"}))
    assert first == {"recorded": True, "duplicate": False, "idempotency_key": "mcp-k1"}
    again = structured(call(store_server.address, "record_feedback",
                            {"user_id": user, "item_id": "50", "kind": "click", "idempotency_key": "mcp-k1"}))
    assert again["recorded"] is False and again["duplicate"] is True
    generated = structured(call(store_server.address, "record_feedback", {"user_id": user, "item_id": "172",
                                                                          "rating": 5}))
    assert generated["recorded"] and generated["idempotency_key"].startswith("mcp-")
    history = rpc.get_history(user)
    assert [(e.item_id, e.kind) for e in history.events] == [("50", "click"), ("172", "interaction")]
    # The next recommendation by user id reflects it: the recorded items are seen, so never recommended.
    recommended = structured(call(store_server.address, "recommend", {"user_id": user, "top_k": 20}))
    assert not {"50", "172"} & {i["item_id"] for i in recommended["items"]}


def test_a_model_without_similarities_is_a_failed_precondition(store_server):
    text = error_text(call(store_server.address, "similar_items", {"item_id": "50", "model": "popularity"}))
    assert text.startswith("NOT_FOUND: model") or text.startswith("FAILED_PRECONDITION")


def test_refusals_are_tool_errors_naming_the_argument(store_server):
    address = store_server.address

    async def body(session):
        return [await session.call_tool(name, args) for name, args in [
            ("recommend", {"user_id": "u", "topk": 5}),
            ("recommend", {"history": ["50"], "top_k": 0}),
            ("recommend", {}),
            ("search_items", {"genres": "Comedy"}),
            ("get_items", {}),
            ("similar_items", {"item_id": "no-such-item"}),
            ("record_feedback", {"user_id": "u", "item_id": "no-such-item"}),
            ("search_items", {"min_year": 2000, "max_year": 1990}),
        ]]
    texts = [error_text(r) for r in run(body, address)]
    assert texts[0].startswith("INVALID_ARGUMENT: topk: unknown argument")
    assert texts[1] == "INVALID_ARGUMENT: top_k: 0 is out of range 1...100"
    assert texts[2].startswith("INVALID_ARGUMENT: user_id: give a user_id, a history, or both")
    assert texts[3] == "INVALID_ARGUMENT: genres: expected a list of strings, got a string"
    assert texts[4] == "INVALID_ARGUMENT: item_ids: required"
    assert texts[5].startswith("NOT_FOUND: item_id")
    assert texts[6].startswith("NOT_FOUND: events[0].item_id: unknown item id")
    assert texts[7].startswith("INVALID_ARGUMENT: min_year")


def test_an_unknown_tool_is_a_protocol_error(store_server):
    async def body(session):
        try:
            await session.call_tool("drop_tables", {})
        except Exception as e:  # the client raises the JSON-RPC error it got
            return str(e)
        return None
    message = run(body, store_server.address)
    assert message and "drop_tables" in message


def test_an_unreachable_server_is_an_unavailable_tool_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    text = error_text(call(f"127.0.0.1:{port}", "get_items", {"item_ids": ["1"]}))
    assert text.startswith("UNAVAILABLE:")


# -- Streamable HTTP --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mcp_http(store_server):
    process = subprocess.Popen([str(server_binary()), "mcp", store_server.address, "--http", "127.0.0.1:0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    match = re.search(r"serving (http://\S+)", line)
    assert match, line
    threading.Thread(target=process.stderr.read, daemon=True).start()
    yield match.group(1)
    process.terminate()
    process.wait(10)


def test_tools_over_streamable_http(mcp_http):
    async def main():
        async with streamable_http_client(mcp_http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = {t.name for t in (await session.list_tools()).tools}
                found = await session.call_tool("search_items", {"query": "toy story"})
                return tools, found
    tools, found = anyio.run(main)
    assert tools == TOOLS
    ids = {i["item_id"] for i in structured(found)["items"]}
    assert ids == {i for i, row in catalogue().items() if "toy story" in row["title"].lower()}


def http(url: str, raw: bytes) -> bytes:
    host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_http_door_refuses_bad_requests_and_keeps_serving(mcp_http):
    assert http(mcp_http, b"GET /mcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert http(mcp_http, b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n") \
        .startswith(b"HTTP/1.1 404")
    assert http(mcp_http, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert http(mcp_http, b"POST /mcp HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").startswith(b"HTTP/1.1 413")
    assert http(mcp_http, b"POST /mcp HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 20000 + b"\r\n\r\n") \
        .startswith(b"HTTP/1.1 431")
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"'  # cut short: not JSON
    answer = http(mcp_http, b"POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 4") or b"error" in answer
    test_tools_over_streamable_http(mcp_http)
