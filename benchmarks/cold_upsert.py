"""Item cold start through a live server, as issue 12 asks it: the items `benchmarks/cold_items.py` held out are
added with UpsertItems, then every user whose leave-one-out test target is one of them gets a Recommend(user_id)
(the store holds the user's earlier events; `now` is the target's time, as `r2ec eval` counts prompt times back from
it) ranking the whole catalogue, and the target's rank gives HR@10, NDCG@10 and MRR, with 95% bootstrap intervals
over the users (1,000 seeded resamples), and the median rank. A model that cannot score the new items (popularity,
WALS, BPR until a refit) never returns them: such a target counts as not ranked (0 in every measure). Usage:

    python3 benchmarks/cold_items.py data/ml-100k DEST --of catalogue --fraction 0.1 --unseen TRAIN
    r2ec train --config configs/default.json --dataset TRAIN --out MODEL
    r2ec store import --dataset TRAIN --store sqlite:STORE
    r2ec serve --port 7912 --store sqlite:STORE --model MODEL --model popularity
    .venv/bin/python benchmarks/cold_upsert.py 127.0.0.1:7912 DEST TRAIN --model MODEL_NAME --model popularity

Upserting again is harmless (the items are then updated with the same facts, `created` 0)."""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re

from r2ec_client import Client


def read_items(folder: str) -> dict[str, dict]:
    """item id -> {title, year, genres} as r2ec's RecBole reader reads a MovieLens .item file (a row without a
    usable year takes it from a trailing "(1995)" in the title)."""
    name = os.path.basename(os.path.normpath(folder))
    rows = {}
    with open(os.path.join(folder, name + ".item"), encoding="utf-8", errors="replace") as f:
        columns = [c.split(":")[0] for c in next(f).rstrip("\n").split("\t")]
        for line in f:
            if not line.strip():
                continue
            row = dict(zip(columns, line.rstrip("\n").split("\t")))
            title, year = row.get("movie_title", ""), row.get("release_year", "")
            year = int(year) if year.isdigit() else 0
            match = re.search(r"^(.*\S)\s*\((\d{4})\)$", title)
            if year == 0 and match:
                title, year = match.group(1), int(match.group(2))
            rows[row["item_id"]] = {"item_id": row["item_id"], "title": title, "year": year,
                                    "genres": row.get("class", "").split()}
    return rows


def test_targets(folder: str) -> dict[str, tuple[str, int]]:
    """user -> (test item, its time): each user's last interaction after a stable sort by time (file order on
    ties), for users with at least two, as r2ec's leave-one-out split takes it."""
    name = os.path.basename(os.path.normpath(folder))
    by_user: dict[str, list] = {}
    with open(os.path.join(folder, name + ".inter"), encoding="utf-8") as f:
        columns = [c.split(":")[0] for c in next(f).rstrip("\n").split("\t")]
        cu, ci, ct = columns.index("user_id"), columns.index("item_id"), columns.index("timestamp")
        for i, line in enumerate(f):
            if line.strip():
                v = line.rstrip("\n").split("\t")
                by_user.setdefault(v[cu], []).append((float(v[ct]), i, v[ci]))
    out = {}
    for user, events in by_user.items():
        if len(events) >= 2:
            t, _, item = sorted(events)[-1]
            out[user] = (item, int(t))
    return out


def interval(values: list[float], resamples: int = 1000, seed: int = 1) -> tuple[float, float]:
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(values) for _ in values) / len(values) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="HOST:PORT of r2ec serve --store over TRAIN's store")
    parser.add_argument("dest", help="the cold_items.py dataset (with the held-out items' test interactions)")
    parser.add_argument("train", help="its --unseen dataset (without the held-out items), which the store holds")
    parser.add_argument("--model", action="append", default=[], help="loaded model to ask (repeatable; default: "
                        "the server's default)")
    parser.add_argument("--json")
    args = parser.parse_args()
    items = read_items(args.dest)
    held = sorted(set(items) - set(read_items(args.train)))
    cold = {u: t for u, t in test_targets(args.dest).items() if t[0] in held}
    result = {"held_out_items": len(held), "cold_users": len(cold), "models": {}}
    with Client(args.target, timeout=60) as client:
        upserted = client.upsert_items([items[i] for i in held], batch_size=500)
        result["upsert"] = {"created": upserted.created, "updated": upserted.updated,
                            "encoded_by": list(upserted.encoded_by)}
        for model in args.model or [""]:
            ranks = []
            for user in sorted(cold):
                item, when = cold[user]
                answer = client.recommend(user_id=user, top_k=len(items), model=model, now=when)
                ranks.append(answer.item_ids.index(item) + 1 if item in answer.item_ids else 0)
            hits = [1.0 if 0 < r <= 10 else 0.0 for r in ranks]
            gains = [1 / math.log2(r + 1) if 0 < r <= 10 else 0.0 for r in ranks]
            inverse = [1 / r if r else 0.0 for r in ranks]
            ranked = sorted(r for r in ranks if r)
            result["models"][model or "default"] = {
                "served_by": answer.model, "HR@10": sum(hits) / len(hits), "HR@10_95": interval(hits),
                "NDCG@10": sum(gains) / len(gains), "NDCG@10_95": interval(gains),
                "MRR": sum(inverse) / len(inverse), "MRR_95": interval(inverse),
                "median_rank": ranked[len(ranked) // 2] if ranked else None, "not_ranked": ranks.count(0)}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
