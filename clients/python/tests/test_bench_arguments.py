"""`r2ec bench ...` refuses settings it cannot run with, naming the option, before it measures or starts anything:
zero or negative sizes would otherwise divide by zero, loop for ever (`--chunk 0` advanced the engine's row blocks
by nothing) or run a benchmark of nothing."""
from __future__ import annotations

import subprocess

import pytest

from conftest import REPO, server_binary

CASES = [
    (["engine", "--chunk", "0"], "--chunk: expected at least 1, got 0"),
    (["engine", "--step-split-from=-1"], "--step-split-from: expected at least 1, got -1"),
    (["engine", "--pipeline-from", "0"], "--pipeline-from: expected at least 1, got 0"),
    (["engine", "--prefill-batches", "0"], "--prefill-batches: expected batch sizes in 1...1024, got 0"),
    (["engine", "--decode-batches", "2000"], "--decode-batches: expected batch sizes in 1...1024, got 2000"),
    (["engine", "--length", "4000", "--decode-steps", "200"], "exceed the benchmark model's 4096 positions"),
    (["engine", "--seconds", "nan"], "--seconds: expected > 0"),
    (["engine", "--rounds", "0"], "--rounds: expected 1...100, got 0"),
    (["engine", "--items", "0"], "--items: expected 1...1000000, got 0"),
    (["engine", "--parts", "everything"], "--parts: prefill, decode or direct, got 'everything'"),
    (["train", "--length", "1"], "--length: expected 2...4096, got 1"),
    (["train", "--batch", "0"], "--batch: expected 1...1024, got 0"),
    (["train", "--peak-seconds=-1"], "--peak-seconds: expected > 0"),
    (["gemm", "--batches=-3"], "--batches: expected batch counts in 1...1024, got -3"),
    (["gemm", "--strategies", "fast"], "--strategies: pool, openBLAS, single, got 'fast'"),
    (["rpc", "--connections", "0"], "--connections: expected 1...10000, got 0"),
    (["rpc", "--in-flight", "0"], "--in-flight: expected 1...1024, got 0"),
    (["rpc", "--methods", "ping"], "--methods: health or recommend, got 'ping'"),
    (["ingest", "--batch", "0"], "--batch: expected 1...100000, got 0"),
    (["ingest", "--clients", "0"], "--clients: expected 1...1024, got 0"),
    (["ingest", "--stores", "mysql"], "--stores: sqlite or postgres, got 'mysql'"),
    (["scale", "--int4-screen"], "--int4-screen: screens the int8 table; add --item-table-precision int8"),
    (["serve", "--returning", "--levels", "cached,fast"], "--levels: unknown level 'fast' (known: cached, full, single, model)"),
    (["serve", "--levels", "cached"], "--levels: applies to --returning only"),
    (["serve", "--returning", "--target", "127.0.0.1:1", "--levels", "cached"],
     "--levels: with --target one level runs, the server's own configuration"),
    (["scale", "--sizes", "5"], "--sizes: expected item counts in 10...50000000, got '5'"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_bench_setting_is_refused_naming_it(args, message):
    binary = server_binary()
    if not binary.exists():
        pytest.skip(f"no binary at {binary}")
    done = subprocess.run([str(binary), "bench", *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 64, (done.returncode, done.stdout[-500:], done.stderr[-500:])
    assert message in done.stderr, done.stderr
    assert done.stdout == "", "refused before measuring anything"
