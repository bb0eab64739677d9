"""New-item freshness of a live r2ec server: how long from sending UpsertItems for an item no training run saw until a
Recommend returns it. Each round upserts one new item (a title and genres, as a backend would), then asks Recommend
for a user with the new item among the candidates, and records the time from the upsert's send to that answer; it
also records where the new item ranks in the user's full-catalogue answer (top 100). Usage:

    .venv/bin/python benchmarks/freshness.py HOST:PORT [--model NAME] [--rounds 200]

Run against `r2ec serve --store URL --model CHECKPOINT` (the dual-head network encodes new items on the spot;
popularity, WALS and BPR cannot recommend them, and the script says so)."""
from __future__ import annotations

import argparse
import json
import statistics
import time

from r2ec_client import Client

GENRES = ["Action", "Comedy", "Drama", "Sci-Fi", "Thriller", "Romance", "Animation", "Documentary"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target")
    parser.add_argument("--model", default="")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--user", default="1")
    parser.add_argument("--json")
    args = parser.parse_args()
    run = f"fresh-{int(time.time())}"
    upsert_ms, visible_ms, ranks = [], [], []
    with Client(args.target, timeout=30) as client:
        for i in range(args.rounds):
            item = f"{run}-{i}"
            start = time.perf_counter()
            answer = client.upsert_items([{"item_id": item, "title": f"New Film {i}: The Sequel", "year": 2026,
                                           "genres": [GENRES[i % len(GENRES)], GENRES[(i * 3 + 1) % len(GENRES)]]}])
            acked = time.perf_counter()
            if args.model and args.model not in answer.encoded_by or not answer.encoded_by:
                raise SystemExit(f"no loaded model can recommend new items (encoded_by={answer.encoded_by}): "
                                 "serve a dual-head checkpoint")
            shown = client.recommend(user_id=args.user, candidates=[item, "50", "100"], top_k=3,
                                     model=args.model)
            seen = time.perf_counter()
            assert item in shown.item_ids, shown.item_ids
            full = client.recommend(user_id=args.user, top_k=100, model=args.model)
            ranks.append(full.item_ids.index(item) + 1 if item in full.item_ids else None)
            upsert_ms.append((acked - start) * 1e3)
            visible_ms.append((seen - start) * 1e3)
    within_100 = [r for r in ranks if r is not None]
    result = {
        "rounds": args.rounds,
        "upsert_ms": {"p50": percentile(upsert_ms, 50), "p99": percentile(upsert_ms, 99), "max": max(upsert_ms)},
        "upsert_to_recommended_ms": {"p50": percentile(visible_ms, 50), "p99": percentile(visible_ms, 99),
                                     "max": max(visible_ms), "mean": statistics.fmean(visible_ms)},
        "new_items_in_full_top_100": len(within_100),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
