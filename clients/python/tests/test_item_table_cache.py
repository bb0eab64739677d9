"""`r2ec serve --item-table-cache DIR` on a REAL server process (issue 15, item 2): the first start reads every item
out and leaves one finished table in DIR (named by the weights and prompts hashes, a plain safetensors file of unit
rows), the second start - given the directory by its R2EC_ITEM_TABLE_CACHE variable this time - reads it, says so in
its log and answers Recommend exactly as the first; a damaged file is ignored with a warning naming it and rebuilt.
The checkpoint directory is never written. The tiny checkpoint and dataset are test_model_loading's (numpy-written,
independent of the Swift writer)."""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ServerProcess, server_binary, server_unavailable_reason
from r2ec_client import Client
from test_model_loading import HIDDEN, snapshot, write_checkpoint, write_dataset

pytestmark = pytest.mark.skipif(server_unavailable_reason() is not None, reason=server_unavailable_reason() or "")


def serve(dataset: Path, checkpoint: Path, *extra: str) -> ServerProcess:
    return ServerProcess([str(server_binary()), "serve", "--host", "127.0.0.1", "--port", "0", "--dataset",
                          str(dataset), "--model", str(checkpoint), *extra])


def answers(server: ServerProcess) -> list[tuple[str, float]]:
    with Client(server.address, timeout=60) as client:
        items = client.recommend(history=[1, 2], top_k=6).items
    return [(item.item_id, item.score) for item in items]


def read_table(path: Path) -> tuple[dict, np.ndarray]:
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    entry = header["item_vectors"]
    start, end = (8 + length + offset for offset in entry["data_offsets"])
    return header["__metadata__"], np.frombuffer(raw[start:end], dtype="<f4").reshape(entry["shape"])


def test_second_start_reads_the_cached_table_and_answers_the_same(tmp_path, monkeypatch):
    dataset = write_dataset(tmp_path / "dataset")
    checkpoint = write_checkpoint(tmp_path / "checkpoint")
    before = snapshot(checkpoint)
    tables = tmp_path / "tables"   # made by the server

    first = serve(dataset, checkpoint, "--item-table-cache", str(tables))
    try:
        expected = answers(first)
    finally:
        assert first.stop() == 0, first.output
    assert not any("item table: read" in line for line in first.lines), first.output
    files = sorted(p.name for p in tables.iterdir())
    assert len(files) == 1 and files[0].startswith("item-table-") and files[0].endswith("-float32.safetensors"), files
    table = tables / files[0]
    metadata, vectors = read_table(table)
    assert vectors.shape == (8, HIDDEN) and metadata["rows_complete"].lstrip("0") == "8", metadata
    assert f"-{metadata['weights_hash']}-{metadata['prompts_hash']}-" in files[0]
    assert np.allclose(np.linalg.norm(vectors.astype(np.float64), axis=1), 1, atol=1e-5), "unit rows"

    monkeypatch.setenv("R2EC_ITEM_TABLE_CACHE", str(tables))
    second = serve(dataset, checkpoint)
    try:
        assert answers(second) == expected
    finally:
        assert second.stop() == 0, second.output
    assert any(f"item table: read 8 items from {table}" in line for line in second.lines), second.output
    assert sorted(p.name for p in tables.iterdir()) == files

    # A file cut short: ignored with a warning naming it, rebuilt to the same bytes, the same answers.
    good = table.read_bytes()
    table.write_bytes(good[:len(good) // 2])
    third = serve(dataset, checkpoint)
    try:
        assert answers(third) == expected
    finally:
        assert third.stop() == 0, third.output
    assert any("warning" in line and str(table) in line and "truncated" in line for line in third.lines), third.output
    assert table.read_bytes() == good
    assert snapshot(checkpoint) == before, "serving never writes into the checkpoint"


def test_item_table_cache_that_is_a_file_is_refused(tmp_path):
    dataset = write_dataset(tmp_path / "dataset")
    checkpoint = write_checkpoint(tmp_path / "checkpoint")
    plain = tmp_path / "plain"
    plain.write_text("x")
    result = subprocess.run([str(server_binary()), "serve", "--dataset", str(dataset), "--model", str(checkpoint),
                             "--item-table-cache", str(plain), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--item-table-cache" in result.stderr and "not a directory" in result.stderr, result.stderr
