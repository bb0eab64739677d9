"""Plots (matplotlib; the `[plot]` extra), drawn on Figures built without pyplot, so using them never switches a
notebook's backend: the notebook plots return the Figure (shown as the cell's value; `.savefig(path)` writes it),
the file plots write a PNG.

For a notebook user, from call results:
- `plot_recommendations(result)`: a Recommendation's items by rank, score bars, and calibrated probabilities
  beside them where the model gave any;
- `plot_item_map(atlas, history=..., recommended=...)`: an `item_map.ItemMap` (a 2-D layout of SimilarItems'
  neighbour graph, computed on the client) coloured by genre, with a user's history and recommendations marked.

From the JSON files the server's commands write:
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


def _figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height))


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
    columns = min(3, len(ordered))
    rows = math.ceil(len(ordered) / columns)
    figure = _figure(4.5 * columns, 3.2 * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
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
    return _save(figure, out_path)


def plot_latency(bench_path: str | Path, out_path: str | Path, title: str | None = None) -> Path:
    """Latency-throughput curve from a bench JSON into a PNG."""
    with open(bench_path) as file:
        bench = json.load(file)
    levels = sorted(bench.get("levels", []), key=lambda level: level.get("concurrency", 0))
    if not levels:
        raise ValueError(f"{bench_path}: no \"levels\"")
    figure = _figure(6.5, 4.5)
    axis = figure.subplots()
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
    return _save(figure, out_path)


def plot_scale(bench_path: str | Path, out_path: str | Path, title: str | None = None) -> Path:
    """Serving cost against catalogue size from `r2ec bench scale --json` rows into a PNG: Recommend latency (p50,
    p99), the scoring pass alone and the top-10 selection alone against items, and the scoring pass's table
    bandwidth beside STREAM."""
    with open(bench_path) as file:
        rows = json.load(file)
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{bench_path}: expected a non-empty list of rows")
    rows = sorted(rows, key=lambda row: row["items"])
    items = [row["items"] for row in rows]
    figure = _figure(11, 4.3)
    left, right = figure.subplots(1, 2)
    left.plot(items, [row["p50Milliseconds"] for row in rows], marker="o", label="Recommend p50 (batch 1)")
    left.plot(items, [row["p99Milliseconds"] for row in rows], marker="o", label="Recommend p99 (batch 1)")
    left.plot(items, [row["scoreMilliseconds"] for row in rows], marker="s", label="scoring pass alone")
    left.plot(items, [row["topKMilliseconds"] for row in rows], marker="^", label="top-10 alone")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("items in the catalogue")
    left.set_ylabel("ms")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    left.set_title("latency")
    right.plot(items, [row["scoreGBPerSecond"] for row in rows], marker="o", label="scoring: table GB/s")
    right.plot(items, [row["streamCopyGBPerSecond"] for row in rows], linestyle="--", label="STREAM copy (same run)")
    right.plot(items, [row["streamTriadGBPerSecond"] for row in rows], linestyle=":", label="STREAM triad (same run)")
    right.set_xscale("log")
    right.set_xlabel("items in the catalogue")
    right.set_ylabel("GB/s")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8)
    right.set_title("memory bandwidth")
    figure.suptitle(title or "r2ec bench scale")
    figure.tight_layout()
    return _save(figure, out_path)


def _save(figure, out_path: str | Path) -> Path:
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    return out


def _shorten(text: str, width: int = 38) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def plot_recommendations(result, title: str | None = None):
    """A Recommendation (or any ScoredItems) as horizontal bars, rank 1 at the top: the model's score, and, when
    any item has one, its calibrated probability in a second panel (items without one are marked "n/a")."""
    items = list(result.items)
    if not items:
        raise ValueError("no items to plot")
    with_probability = any(item.probability is not None for item in items)
    figure = _figure(10 if with_probability else 7, 0.9 + 0.32 * len(items))
    axes = figure.subplots(1, 2 if with_probability else 1, sharey=True, squeeze=False,
                           gridspec_kw={"width_ratios": [3, 2]} if with_probability else None)[0]
    positions = list(range(len(items)))
    labels = [f"{item.rank}. {_shorten(item.title or item.item_id)}" for item in items]
    scores = [item.score for item in items]
    axes[0].barh(positions, scores, color="#4477aa")
    low, high = min(scores), max(scores)
    margin = (high - low) * 0.15 or abs(high) * 0.05 or 1.0
    axes[0].set_xlim(low - margin if low > 0 and (high - low) < 0.5 * high else min(0, low - margin), high + margin)
    axes[0].set_yticks(positions, labels)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("score")
    axes[0].grid(axis="x", alpha=0.3)
    for position, score in zip(positions, scores):
        axes[0].annotate(f"{score:.3g}", (score, position), xytext=(3, 0), textcoords="offset points",
                         va="center", fontsize=7)
    if with_probability:
        probabilities = [item.probability for item in items]
        axes[1].barh(positions, [p or 0 for p in probabilities], color="#cc6677")
        for position, probability in zip(positions, probabilities):
            text = "n/a" if probability is None else f"{probability:.3f}"
            axes[1].annotate(text, (probability or 0, position), xytext=(3, 0), textcoords="offset points",
                             va="center", fontsize=7)
        known = [p for p in probabilities if p is not None]
        axes[1].set_xlim(0, max(known) * 1.35 if known and max(known) > 0 else 1)
        axes[1].set_xlabel("calibrated probability")
        axes[1].grid(axis="x", alpha=0.3)
    version = f" v{result.model_version}" if getattr(result, "model_version", 0) else ""
    figure.suptitle(title or f"recommendations of {result.model}{version}")
    figure.tight_layout()
    return figure


def plot_item_map(atlas, history=(), recommended=(), title: str | None = None, genres: int = 8,
                  label: bool = True):
    """An ItemMap as a scatter coloured by each item's first genre (the `genres` most frequent get a colour, the
    rest grey), neighbour edges faint; `history` items ringed and labelled with their titles, `recommended` items
    (in rank order) as stars labelled with their rank."""
    import numpy as np
    from collections import Counter

    coordinates = np.asarray(atlas.coordinates)
    first = [g[0] if g else "(none)" for g in atlas.genres]
    common = [name for name, _ in Counter(first).most_common(genres)]
    palette = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#ee8866",
               "#44bb99", "#99ddff"]
    from matplotlib.collections import LineCollection

    figure = _figure(8, 6)
    axis = figure.subplots()
    # One collection, not antialiased: thousands of hairlines stay cheap to draw and small in a PNG.
    axis.add_collection(LineCollection([coordinates[[a, b]] for a, b in atlas.edges], colors="#ebebeb",
                                       linewidths=0.4, antialiaseds=False, zorder=1))
    for colour, name in zip(palette, common):
        chosen = [i for i, genre in enumerate(first) if genre == name]
        axis.scatter(*coordinates[chosen].T, s=14, color=colour, label=name, zorder=2)
    rest = [i for i, genre in enumerate(first) if genre not in common]
    if rest:
        axis.scatter(*coordinates[rest].T, s=10, color="#dddddd", label="other", zorder=2)

    def marked(ids, names, **style):
        chosen = [(atlas.index[str(i)], name) for i, name in zip(ids, names) if str(i) in atlas.index]
        if chosen:
            axis.scatter(*coordinates[[i for i, _ in chosen]].T, zorder=3, **style)
        if label:
            for i, name in chosen:
                axis.annotate(name, coordinates[i], xytext=(4, 3), textcoords="offset points", fontsize=7, zorder=4)

    history, recommended = [str(i) for i in history], [str(i) for i in recommended]
    marked(history, [_shorten(atlas.titles[atlas.index[i]], 28) if i in atlas.index else "" for i in history],
           s=70, facecolors="none", edgecolors="black", linewidths=1.4, label="history")
    marked(recommended, [str(rank) for rank in range(1, len(recommended) + 1)], s=120, marker="*", color="black",
           label="recommended (by rank)")
    axis.legend(fontsize=7, loc="best", markerscale=0.8)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title or f"{len(atlas.item_ids)} items by {atlas.model}'s similarity "
                            f"({atlas.neighbours} neighbours each, Isomap of the neighbour graph)", fontsize=9)
    figure.tight_layout()
    return figure


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m r2ec_client.plots",
                                     description="Training curves, latency-throughput curves or catalogue-scale curves as a PNG.")
    parser.add_argument("kind", choices=("training", "latency", "scale"))
    parser.add_argument("source", help="a training JSONL log, a bench serve --json report, or bench scale --json rows")
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
        elif args.kind == "scale":
            out = plot_scale(args.source, args.out)
        else:
            out = plot_latency(args.source, args.out)
    except (OSError, ValueError, KeyError) as error:
        print(f"plots: {error}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
