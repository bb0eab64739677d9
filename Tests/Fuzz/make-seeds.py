#!/usr/bin/env python3
"""Writes the committed seed corpus under Tests/Fuzz/corpus/<Target>/ for the RPC and dataset targets: frames and
payloads encoded by the Python client's own codec and protobuf classes (the bytes its tests send), including
malformed ones, and small dataset files of every layout. FuzzCheckpoint and FuzzTokenizer seeds are written by the
Model code itself (`R2EC_FUZZ_WRITE_SEEDS=DIR .build/debug/FuzzCheckpoint`, see FuzzCheckpoint/Seeds.swift).
Run: python3 Tests/Fuzz/make-seeds.py (needs the protobuf package, as the client does)."""
import hashlib
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "clients/python/src"))
from r2ec_client import frames as fr  # noqa: E402
from r2ec_client._proto.r2ec.v1 import admin_pb2, events_pb2 as ev, health_pb2, recommender_pb2 as rec, wire_pb2  # noqa: E402

CORPUS = HERE / "corpus"


def put(target: str, name: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def call(sid: int, method: str, request: bytes, timeout_ms: int = 1000, metadata=()) -> bytes:
    header = wire_pb2.CallHeader(method=method, timeout_ms=timeout_ms,
                                 metadata=[wire_pb2.MetadataEntry(key=k, value=v) for k, v in metadata])
    return (fr.encode_frame(fr.FrameType.CALL, sid, header.SerializeToString())
            + fr.encode_frame(fr.FrameType.MESSAGE, sid, request, fr.FLAG_END_STREAM))


def history(*ids, t0=0):
    return [rec.HistoryEvent(item_id=i, timestamp=(t0 + k if t0 else 0), rating=4.0) for k, i in enumerate(ids)]


R = "/r2ec.v1.Recommender/"
requests = {
    "health": ("/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest().SerializeToString()),
    "health-service": ("/r2ec.v1.Health/Check", health_pb2.HealthCheckRequest(service="r2ec.v1.Recommender").SerializeToString()),
    "watch": ("/r2ec.v1.Health/Watch", b""),
    "recommend": (R + "Recommend", rec.RecommendRequest(history=history("i1", "i2", "i5"), top_k=3).SerializeToString()),
    "recommend-timed": (R + "Recommend", rec.RecommendRequest(history=history("i3", "i1", t0=1000), top_k=5,
                        exclude_item_ids=["i7"], return_probabilities=True, now=2000).SerializeToString()),
    "recommend-user": (R + "Recommend", rec.RecommendRequest(user_id="u2", include_seen=True,
                       candidate_item_ids=["i1", "i4", "i9"]).SerializeToString()),
    "recommend-unknown": (R + "Recommend", rec.RecommendRequest(history=history("nope", "i2")).SerializeToString()),
    "recommend-reasoning": (R + "RecommendStream", rec.RecommendRequest(history=history("i1"), mode=rec.MODE_REASONING,
                            max_reasoning_tokens=16, sampling=rec.Sampling(temperature=0.7, top_k=5, top_p=0.9, seed=3),
                            return_reasoning=True).SerializeToString()),
    "batch": (R + "RecommendBatch", rec.RecommendBatchRequest(requests=[
        rec.RecommendRequest(history=history("i1")), rec.RecommendRequest(user_id="u9"),
        rec.RecommendRequest(history=history("i2", "i3"), top_k=2)]).SerializeToString()),
    "score": (R + "ScoreItems", rec.ScoreItemsRequest(history=history("i1", "i2"), item_ids=["i3", "i4", "x"],
              return_probabilities=True).SerializeToString()),
    "similar": (R + "SimilarItems", rec.SimilarItemsRequest(item_id="i4", top_k=3).SerializeToString()),
    "getitems": (R + "GetItems", rec.GetItemsRequest(item_ids=["i1", "i12", "zz"]).SerializeToString()),
    "modelinfo": (R + "ModelInfo", rec.ModelInfoRequest().SerializeToString()),
    "load": ("/r2ec.v1.Admin/LoadModel", admin_pb2.LoadModelRequest(name="m", path="/nonexistent", make_default=True).SerializeToString()),
    "unload": ("/r2ec.v1.Admin/UnloadModel", admin_pb2.UnloadModelRequest(name="m").SerializeToString()),
    # The Events service (FuzzConnection's world has a store: items i1...i12, users u1...u4).
    "record-events": ("/r2ec.v1.Events/RecordEvents", ev.RecordEventsRequest(events=[
        ev.Event(user_id="u1", item_id="i3", timestamp=1500, kind="click", rating=4.5, idempotency_key="k1"),
        ev.Event(user_id="u9", item_id="i1"), ev.Event(user_id="u1", item_id="i3", idempotency_key="k1")]).SerializeToString()),
    "record-unknown-item": ("/r2ec.v1.Events/RecordEvents", ev.RecordEventsRequest(events=[
        ev.Event(user_id="u2", item_id="nope", kind="Bad Kind")]).SerializeToString()),
    "upsert-items": ("/r2ec.v1.Events/UpsertItems", ev.UpsertItemsRequest(items=[
        ev.ItemRecord(item_id="i13", title="New Movie (2001)", year=2001, genres=["Drama"], description="d",
                      metadata_json='{"a": [1, {"b": null}]}'),
        ev.ItemRecord(item_id="i2", title="Movie 2, renamed")]).SerializeToString()),
    "user-history": ("/r2ec.v1.Events/GetUserHistory", ev.GetUserHistoryRequest(user_id="u1", limit=5).SerializeToString()),
    "delete-user": ("/r2ec.v1.Events/DeleteUser", ev.DeleteUserRequest(user_id="u3").SerializeToString()),
}

# FuzzProto: selector byte (index into its decoder table) + payload.
PROTO_ORDER = ["CallHeader", "HealthCheckRequest", "RecommendRequest", "RecommendBatchRequest", "ScoreItemsRequest",
               "SimilarItemsRequest", "GetItemsRequest", "ModelInfoRequest", "LoadModelRequest", "UnloadModelRequest",
               "Status", "RecommendResponse", "GetItemsResponse", "RecordEventsRequest", "UpsertItemsRequest",
               "GetUserHistoryRequest", "DeleteUserRequest", "SearchItemsRequest", "SearchItemsResponse",
               "SimilarItemsResponse", "RecordEventsResponse"]
by_kind = {"health": 1, "health-service": 1, "recommend": 2, "recommend-timed": 2, "recommend-user": 2,
           "recommend-reasoning": 2, "batch": 3, "score": 4, "similar": 5, "getitems": 6, "modelinfo": 7,
           "load": 8, "unload": 9, "record-events": 13, "record-unknown-item": 13, "upsert-items": 14,
           "user-history": 15, "delete-user": 16}
for name, idx in by_kind.items():
    put("FuzzProto", name, bytes([idx]) + requests[name][1])
put("FuzzProto", "callheader", bytes([0]) + wire_pb2.CallHeader(method=R + "Recommend", timeout_ms=250,
    metadata=[wire_pb2.MetadataEntry(key="authorization", value="Bearer t0k3n")]).SerializeToString())
put("FuzzProto", "status", bytes([10]) + wire_pb2.Status(code=3, message="top_k: too large", field="top_k").SerializeToString())
put("FuzzProto", "response", bytes([11]) + rec.RecommendResponse(items=[rec.ScoredItem(item_id="i1", title="T", score=0.5, rank=1)],
    reasoning="because", model="popularity", reasoning_tokens=7).SerializeToString())
put("FuzzProto", "items-response", bytes([12]) + rec.GetItemsResponse(items=[rec.Item(item_id="i1", title="Toy Story",
    year=1995, genres=["Animation"], num_ratings=3, mean_rating=4.5)]).SerializeToString())
put("FuzzProto", "search", bytes([17]) + rec.SearchItemsRequest(query="toy", genres=["Comedy"], min_year=1990,
    metadata=[rec.MetadataFilter(key="studio", value="Pixar")], limit=5, offset=1).SerializeToString())
put("FuzzProto", "search-response", bytes([18]) + rec.SearchItemsResponse(items=[rec.Item(item_id="i1", title="Toy Story",
    metadata_json='{"studio": "Pixar"}')], total_matches=9).SerializeToString())
put("FuzzProto", "similar-response", bytes([19]) + rec.SimilarItemsResponse(items=[rec.ScoredItem(item_id="i2", title="T",
    score=0.9, probability=0.1, rank=1)], model="wals").SerializeToString())
put("FuzzProto", "record-response", bytes([20]) + ev.RecordEventsResponse(recorded=2, duplicates=1,
    duplicate_indices=[1]).SerializeToString())
# Malformed payloads: truncated, bad UTF-8, wrong wire type, overrun length, nested garbage.
good = requests["recommend"][1]
put("FuzzProto", "truncated", bytes([2]) + good[:-3])
put("FuzzProto", "bad-utf8", bytes([2]) + b"\x0a\x05\x0a\x03\xff\xfe\xfd")
put("FuzzProto", "wire-type", bytes([2]) + b"\x18\x05\x1d\x00\x00\x00\x00")
put("FuzzProto", "overrun", bytes([6]) + b"\x0a\x7f\x41")

# FuzzFrames: limit selector, chunking seed, then a stream of frames.
stream = b"".join(call(2 * i + 1, *requests[n]) for i, n in enumerate(["health", "recommend", "getitems"]))
put("FuzzFrames", "calls", bytes([4, 7]) + stream)
put("FuzzFrames", "ping-cancel", bytes([4, 1]) + fr.encode_frame(fr.FrameType.PING, 0, b"12345678")
    + fr.encode_frame(fr.FrameType.CANCEL, 9, b""))
put("FuzzFrames", "too-large", bytes([2, 3]) + fr.encode_header(fr.FrameType.MESSAGE, 1, 100_000))
put("FuzzFrames", "bad-magic", bytes([4, 0]) + b"HTTP/1.1 200 OK\r\n\r\n")
put("FuzzFrames", "bad-version", bytes([4, 5]) + fr.encode_header(fr.FrameType.PING, 0, 8, version=2) + b"x" * 8)
put("FuzzFrames", "bad-type", bytes([4, 5]) + fr.encode_header(9, 0, 0))
put("FuzzFrames", "truncated", bytes([3, 9]) + stream[:40])

# FuzzConnection: whole client byte streams, as the Python tests send them.
for i, (name, (method, payload)) in enumerate(requests.items()):
    put("FuzzConnection", name, call(1, method, payload))
put("FuzzConnection", "pipelined", b"".join(call(2 * i + 1, m, p) for i, (m, p) in enumerate(requests.values())))
put("FuzzConnection", "unknown-method", call(1, "/r2ec.v1.Nope/Nope", b""))
put("FuzzConnection", "no-end-stream", fr.encode_frame(fr.FrameType.CALL, 1, wire_pb2.CallHeader(method=R + "GetItems").SerializeToString())
    + fr.encode_frame(fr.FrameType.MESSAGE, 1, b""))
put("FuzzConnection", "cancel", fr.encode_frame(fr.FrameType.CALL, 5, wire_pb2.CallHeader(method=R + "Recommend").SerializeToString())
    + fr.encode_frame(fr.FrameType.CANCEL, 5) + fr.encode_frame(fr.FrameType.MESSAGE, 5, good, fr.FLAG_END_STREAM))
put("FuzzConnection", "stream-id-reuse", call(3, *requests["health"]) + call(3, *requests["health"]))
put("FuzzConnection", "ping-goaway", fr.encode_frame(fr.FrameType.PING, 0, b"abcdefgh") + fr.encode_frame(fr.FrameType.GOAWAY, 0, b""))
put("FuzzConnection", "bad-call-header", fr.encode_frame(fr.FrameType.CALL, 1, b"\x0a\x10/r2ec") + call(3, *requests["modelinfo"]))
put("FuzzConnection", "expired", call(1, *requests["recommend"], timeout_ms=-5))
# The live loop end to end on one connection: a new item, events for it, the history, Recommend by user id, GetItems
# of the new item, the user deleted, then read again.
put("FuzzConnection", "events-loop", b"".join(call(2 * i + 1, m, p) for i, (m, p) in enumerate([
    requests["upsert-items"],
    ("/r2ec.v1.Events/RecordEvents", ev.RecordEventsRequest(events=[ev.Event(user_id="u7", item_id="i13"),
                                                                     ev.Event(user_id="u7", item_id="i2")]).SerializeToString()),
    ("/r2ec.v1.Events/GetUserHistory", ev.GetUserHistoryRequest(user_id="u7").SerializeToString()),
    (R + "Recommend", rec.RecommendRequest(user_id="u7", top_k=4).SerializeToString()),
    (R + "GetItems", rec.GetItemsRequest(item_ids=["i13", "i2"]).SerializeToString()),
    ("/r2ec.v1.Events/DeleteUser", ev.DeleteUserRequest(user_id="u7").SerializeToString()),
    ("/r2ec.v1.Events/GetUserHistory", ev.GetUserHistoryRequest(user_id="u7").SerializeToString()),
])))

# FuzzDatasets: layout selector (0 atomic, 1 ml-100k, 2 ml-1m, 3 ml-latest csv, 4 amazon) + files split at NUL.
def ds(name: str, layout: int, *files: str) -> None:
    put("FuzzDatasets", name, bytes([layout]) + b"\0".join(f.encode("utf-8") for f in files))

ds("atomic", 0, "user_id:token\titem_id:token\trating:float\ttimestamp:float\nu1\ti1\t4\t100\nu1\ti2\t5\t200\nu2\ti1\t3\t150.5\nu2\ti3\t1\t160\n",
   "item_id:token\tmovie_title:token\trelease_year:token\tclass:token_seq\ni1\tToy Story\t1995\tAnimation Comedy\ni2\tHeat (1995)\t\tAction\ni3\tX\t1e3\t\n",
   "user_id:token\tage:float\nu1\t20\nu2\t\n")
ds("atomic-minimal", 0, "user_id:token\titem_id:token\nu1\ti1\nu1\ti2\nu2\ti2\n")
ds("ml-100k", 1, "1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n2\t3\t2\t888551000\n",
   "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
   "2|GoldenEye (1995)|01-Jan-1995||http://x|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n"
   "3|Four Rooms (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1|0|0\n",
   "unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\nDocumentary|7\nDrama|8\nFantasy|9\n"
   "Film-Noir|10\nHorror|11\nMusical|12\nMystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n")
ds("ml-100k-latin1", 1, "1\t1\t5\t874965758\n")
put("FuzzDatasets", "ml-100k-latin1", bytes([1]) + b"1\t1\t5\t874965758\n\x001|Caf\xe9 (1999)|01-Jan-1999||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1\r\n")
ds("ml-1m", 2, "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
   "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n")
ds("ml-latest", 3, "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n2,1,2.5,1445714835\n",
   'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,"Grumpier Old Men, The (1995)",Comedy|Romance\n4,"Say ""Hi""",(no genres listed)\n')
ds("amazon", 4, '{"rating": 5.0, "title": "Great", "asin": "B01", "parent_asin": "B01", "user_id": "U1", "timestamp": 1588687728923}\n'
   '{"rating": 3, "parent_asin": "B02", "user_id": "U1", "timestamp": 1588687729000}\r\n\n'
   '{"rating": 4, "asin": "B01", "user_id": "U2", "timestamp": 1588687720}\n',
   '{"parent_asin": "B01", "title": "Cable \\u00e9 \\ud83c\\udfac", "description": ["d1", "d2"], "features": [], "categories": ["A", "B"]}\n'
   '{"parent_asin": "B02", "title": null, "description": [], "features": ["f"], "nested": {"a": [1, 2.5e3, true, false]}}\n')

# FuzzTokenizer: text.
for name, text in {"titles": "Toy Story (1995) GoldenEye", "answer": "The user likes <answer>12</answer><|endoftext|>",
                   "unicode": "déjà vu — 東京物語 🎬 Ⅻ \u200b\t\n  x", "contractions": "it's we'll I'd they're 1,000.5"}.items():
    put("FuzzTokenizer", name, text.encode("utf-8"))

count = sum(1 for _ in CORPUS.rglob("*") if _.is_file())
print(f"wrote {count} seed files under {CORPUS}")
