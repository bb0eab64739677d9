#!/usr/bin/env python3
"""Derives an item cold-start dataset from a RecBole atomic dataset, for leave-one-out evaluation.

A seeded share of the items is held out: by default of the items that are some user's leave-one-out test target
(the user's last interaction after a stable sort by timestamp, file order on ties, exactly as r2ec's split orders
them), with `--of catalogue` of every item in the catalogue. Every interaction with a held-out item is dropped except
those that are their user's last. Under leave-one-out those items are then test targets only, never in training or
validation, i.e. new items to every model; `r2ec eval --targets cold` evaluates on them and `--targets warm` on the
others. The .item (and .user) files are copied unchanged, so the text of a held-out item is known (its statistics in
the prompts count no training interaction).

`--unseen DIR` also writes the dataset a model trains on when the held-out items do not exist yet: DEST without
them at all (no interaction, no .item row), so training never sees them, not even as negatives. A model trained on
it and evaluated on DEST (`r2ec eval --dataset DEST --model M --targets cold`) meets them as UpsertItems adds them
to a server: the item table encodes each one from its prompt, with no ratings.

  python3 benchmarks/cold_items.py data/ml-100k data/ml-100k-cold --fraction 0.2 --seed 1
  python3 benchmarks/cold_items.py data/ml-100k data/ml-100k-new10 --of catalogue --fraction 0.1 --unseen data/ml-100k-new10-train
"""
import argparse
import os
import random
import shutil
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("dest")
    p.add_argument("--fraction", type=float, default=0.2, help="share of the items (see --of) held out")
    p.add_argument("--of", choices=["targets", "catalogue"], default="targets",
                   help="the items the share is of: the test-target items (default) or the whole catalogue")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--unseen", metavar="DIR", help="also write DEST without the held-out items at all (for training)")
    args = p.parse_args()
    if not 0 < args.fraction <= 1:
        sys.exit("cold_items: --fraction must be in (0, 1]")
    name = os.path.basename(os.path.normpath(args.source))
    inter = os.path.join(args.source, name + ".inter")
    if not os.path.exists(inter):
        sys.exit(f"cold_items: no {inter} (a RecBole atomic dataset named after its folder)")
    with open(inter, encoding="utf-8") as f:
        header = f.readline()
        rows = [line for line in f if line.strip()]
    columns = [c.split(":")[0] for c in header.rstrip("\n").split("\t")]
    try:
        cu, ci, ct = columns.index("user_id"), columns.index("item_id"), columns.index("timestamp")
    except ValueError:
        sys.exit(f"cold_items: {inter} needs user_id, item_id and timestamp columns, has {columns}")
    by_user = {}
    for i, line in enumerate(rows):
        f = line.rstrip("\n").split("\t")
        by_user.setdefault(f[cu], []).append((float(f[ct]), i, f[ci]))
    last = set()
    targets = set()
    for u, events in by_user.items():
        events.sort(key=lambda e: (e[0], e[1]))
        if len(events) >= 2:
            last.add(events[-1][1])
            targets.add(events[-1][2])
    catalogue = set(f.rstrip("\n").split("\t")[ci] for f in rows)
    item_file = os.path.join(args.source, name + ".item")
    item_rows = []
    if os.path.exists(item_file):
        with open(item_file, encoding="utf-8") as f:
            item_header = f.readline()
            item_rows = [line for line in f if line.strip()]
        item_columns = [c.split(":")[0] for c in item_header.rstrip("\n").split("\t")]
        if "item_id" not in item_columns:
            sys.exit(f"cold_items: {item_file} needs an item_id column, has {item_columns}")
        ii = item_columns.index("item_id")
        catalogue |= set(line.rstrip("\n").split("\t")[ii] for line in item_rows)
    rng = random.Random(args.seed)
    pool = sorted(targets if args.of == "targets" else catalogue)
    held = set(rng.sample(pool, max(1, round(args.fraction * len(pool)))))
    kept = [line for i, line in enumerate(rows) if rows[i].rstrip("\n").split("\t")[ci] not in held or i in last]
    out_name = os.path.basename(os.path.normpath(args.dest))
    os.makedirs(args.dest, exist_ok=True)
    with open(os.path.join(args.dest, out_name + ".inter"), "w", encoding="utf-8") as f:
        f.write(header)
        f.writelines(kept)
    for ext in (".item", ".user"):
        src = os.path.join(args.source, name + ext)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.dest, out_name + ext))
    cold_tests = sum(1 for u, e in by_user.items() if len(e) >= 2 and e[-1][2] in held)
    print(f"cold_items: {args.dest}: held out {len(held)} of {len(pool)} "
          f"{'test-target items' if args.of == 'targets' else 'catalogue items'}; "
          f"{len(rows) - len(kept)} interactions dropped, {len(kept)} kept; {cold_tests} users' test targets are cold")
    if args.unseen:
        unseen_name = os.path.basename(os.path.normpath(args.unseen))
        os.makedirs(args.unseen, exist_ok=True)
        unseen = [line for line in kept if line.rstrip("\n").split("\t")[ci] not in held]
        with open(os.path.join(args.unseen, unseen_name + ".inter"), "w", encoding="utf-8") as f:
            f.write(header)
            f.writelines(unseen)
        if item_rows:
            with open(os.path.join(args.unseen, unseen_name + ".item"), "w", encoding="utf-8") as f:
                f.write(item_header)
                f.writelines(line for line in item_rows if line.rstrip("\n").split("\t")[ii] not in held)
        src = os.path.join(args.source, name + ".user")
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(args.unseen, unseen_name + ".user"))
        print(f"cold_items: {args.unseen}: without the {len(held)} held-out items: {len(unseen)} interactions, "
              f"{len(catalogue) - len(held)} items")


if __name__ == "__main__":
    main()
