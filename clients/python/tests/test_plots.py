"""r2ec_client.plots on small hand-written logs: the series it extracts, the PNGs it writes (valid PNG, non-trivial
size), the command-line entry point and its errors. No server needed."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")
from r2ec_client import plots  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def training_log(tmp_path):
    lines = [{"step": step, "loss": 3.0 / step, "reward": 0.1 * step, "reasoning_len": 40 + step, "lr": 1e-4}
             for step in range(1, 21)]
    lines.insert(10, {"eval": 10, "NDCG@10": 0.05, "Recall@10": 0.1})
    lines.append({"eval": 20, "NDCG@10": 0.07, "Recall@10": 0.13})
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    return path


@pytest.fixture
def bench_json(tmp_path):
    levels = [{"concurrency": c, "throughput": 1000.0 * c / (1 + c / 16), "p50_ms": 0.2 * (1 + c / 16),
               "p90_ms": 0.4 * (1 + c / 16), "p99_ms": 0.9 * (1 + c / 16)} for c in (1, 2, 4, 8, 16, 32, 64)]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"name": "health", "levels": levels}))
    return path


def assert_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000


def test_training_series(training_log):
    series = plots.training_series(plots.read_jsonl(training_log))
    assert series["loss"][0] == list(range(1, 21))
    assert series["eval NDCG@10"] == ([10, 20], [0.05, 0.07])
    assert set(series) == {"loss", "reward", "reasoning_len", "lr", "eval NDCG@10", "eval Recall@10"}


def test_plot_training(training_log, tmp_path):
    assert_png(plots.plot_training(training_log, tmp_path / "out" / "training.png"))


def test_plot_training_fields(training_log, tmp_path):
    assert_png(plots.plot_training(training_log, tmp_path / "some.png", fields=["eval NDCG@10", "loss"]))
    with pytest.raises(ValueError, match="no series nope; it has: .*eval NDCG@10"):
        plots.plot_training(training_log, tmp_path / "none.png", fields=["loss", "nope"])
    out = tmp_path / "cli-fields.png"
    assert plots.main(["training", str(training_log), str(out), "--fields", "loss,eval NDCG@10"]) == 0
    assert_png(out)
    assert plots.main(["training", str(training_log), str(out), "--fields", "missing"]) == 1


def test_plot_latency(bench_json, tmp_path):
    assert_png(plots.plot_latency(bench_json, tmp_path / "latency.png"))


def test_command_line(training_log, bench_json, tmp_path):
    for kind, source in (("training", training_log), ("latency", bench_json)):
        out = tmp_path / f"{kind}-cli.png"
        result = subprocess.run([sys.executable, "-m", "r2ec_client.plots", kind, str(source), str(out)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert_png(out)


def test_command_line_errors(tmp_path):
    assert plots.main(["nonsense", "a", "b"]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 2}\nnot json\n')
    assert plots.main(["training", str(bad), str(tmp_path / "x.png")]) == 1
    empty = tmp_path / "empty.json"
    empty.write_text('{"levels": []}')
    assert plots.main(["latency", str(empty), str(tmp_path / "y.png")]) == 1


def test_plot_scale(tmp_path):
    rows = [{"items": n, "p50Milliseconds": 2 + n / 1e5, "p99Milliseconds": 3 + n / 8e4, "scoreMilliseconds": n / 2e5,
             "topKMilliseconds": n / 1e6, "scoreGBPerSecond": 12.0, "streamCopyGBPerSecond": 20.0, "streamTriadGBPerSecond": 22.0}
            for n in (1000, 10000, 100000, 1000000)]
    source = tmp_path / "scale.json"
    source.write_text(json.dumps(rows[::-1]))
    assert_png(plots.plot_scale(source, tmp_path / "scale.png"))
    assert plots.main(["scale", str(source), str(tmp_path / "scale-cli.png")]) == 0
    assert_png(tmp_path / "scale-cli.png")
    empty = tmp_path / "empty-scale.json"
    empty.write_text("[]")
    assert plots.main(["scale", str(empty), str(tmp_path / "z.png")]) == 1
    missing = tmp_path / "missing-field.json"
    missing.write_text(json.dumps([{"items": 10}]))
    assert plots.main(["scale", str(missing), str(tmp_path / "w.png")]) == 1
