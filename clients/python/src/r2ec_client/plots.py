"""PNG plots from the JSON files the server's commands write (matplotlib, Agg backend; the `[plot]` extra):
- `training`: a JSONL training log, step lines {"step", "loss", "reward", "reasoning_len", ...} and eval lines
  {"eval": step, "NDCG@10": ..., ...}: one panel per quantity against the step.
- `latency`: a bench JSON {"levels": [{"concurrency", "throughput", "p50_ms", "p90_ms", "p99_ms"}, ...]}: latency
  percentiles against throughput, each point labelled with its concurrency.
Command line: `python -m r2ec_client.plots training|latency IN OUT.png`."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

TRAINING_SERIES = ("loss", "reward", "reasoning_len")
PERCENTILES = ("p50_ms", "p90_ms", "p99_ms")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    return plt


def read_jsonl(path: str | Path) -> list[dict]:
    """Objects of a JSONL file; blank lines skipped, a malformed line reported with its number."""
    records = []
    with open(path) as file:
        for number, line in enumerate(file, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}:{number}: not JSON: {error}") from None
    return records


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_series(records: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
    """name -> (steps, values). Step lines give TRAINING_SERIES (and any other numeric key); eval lines give their
    metrics, named "eval NAME"."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for record in records:
        if "eval" in record:
            step, prefix = record["eval"], "eval "
        elif "step" in record:
            step, prefix = record["step"], ""
        else:
            continue
        for key, value in record.items():
            if key in ("step", "eval") or not _finite(value):
                continue
            steps, values = series.setdefault(prefix + key, ([], []))
            steps.append(step)
            values.append(value)
    return series


def plot_training(log_path: str | Path, out_path: str | Path, title: str | None = None,
                  fields: list[str] | None = None) -> Path:
    """Training curves from a JSONL log into a PNG: the standard series first, then any other numeric ones; or only
    `fields`, in that order (names as in the log, evaluation metrics prefixed "eval ", e.g. "eval NDCG@10")."""
    series = training_series(read_jsonl(log_path))
    if not series:
        raise ValueError(f"{log_path}: no step or eval lines with numeric values")
    if fields:
        missing = [name for name in fields if name not in series]
        if missing:
            raise ValueError(f"{log_path} has no series {', '.join(missing)}; it has: {', '.join(sorted(series))}")
        ordered = list(fields)
    else:
        ordered = [name for name in TRAINING_SERIES if name in series]
        ordered += sorted(name for name in series if name not in ordered)
    plt = _pyplot()
    columns = min(3, len(ordered))
    rows = math.ceil(len(ordered) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, ordered):
        steps, values = series[name]
        axis.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(ordered):]:
        axis.set_visible(False)
    figure.suptitle(title or Path(log_path).name)
    figure.tight_layout()
    return _save(figure, out_path, plt)


def plot_latency(bench_path: str | Path, out_path: str | Path, title: str | None = None) -> Path:
    """Latency-throughput curve from a bench JSON into a PNG."""
    with open(bench_path) as file:
        bench = json.load(file)
    levels = sorted(bench.get("levels", []), key=lambda level: level.get("concurrency", 0))
    if not levels:
        raise ValueError(f"{bench_path}: no \"levels\"")
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    throughput = [level["throughput"] for level in levels]
    for percentile in PERCENTILES:
        if all(percentile in level for level in levels):
            axis.plot(throughput, [level[percentile] for level in levels], marker="o",
                      label=percentile.replace("_ms", ""))
    for level in levels:
        if "concurrency" in level:
            axis.annotate(f"c={level['concurrency']}", (level["throughput"], level.get("p50_ms", 0)),
                          textcoords="offset points", xytext=(4, -10), fontsize=7)
    axis.set_xlabel("throughput (calls/s)")
    axis.set_ylabel("latency (ms)")
    axis.set_yscale("log")
    from matplotlib.ticker import ScalarFormatter
    axis.yaxis.set_major_formatter(ScalarFormatter())
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    axis.set_title(title or bench.get("name") or Path(bench_path).name)
    figure.tight_layout()
    return _save(figure, out_path, plt)


def _save(figure, out_path: str | Path, plt) -> Path:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m r2ec_client.plots",
                                     description="Training curves or latency-throughput curves as a PNG.")
    parser.add_argument("kind", choices=("training", "latency"))
    parser.add_argument("source", help="a training JSONL log, or a bench serve --json report")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--fields", help="training only: series to draw, comma-separated (e.g. 'loss,eval NDCG@10')")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.fields is not None and args.kind != "training":
        parser.print_usage(sys.stderr)
        print("plots: --fields applies to training curves only", file=sys.stderr)
        return 2
    try:
        if args.kind == "training":
            fields = [name.strip() for name in (args.fields or "").split(",") if name.strip()] or None
            out = plot_training(args.source, args.out, fields=fields)
        else:
            out = plot_latency(args.source, args.out)
    except (OSError, ValueError, KeyError) as error:
        print(f"plots: {error}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
