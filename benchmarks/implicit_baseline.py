#!/usr/bin/env python3
"""Peer baselines on the project's leave-one-out split: the `implicit` library's ALS and BPR (and popularity as a
check that the split and the tie rule match `r2ec eval`), with full ranking, masked history and the same metrics.

The split is re-implemented from docs/evaluation.md (stable sort by timestamp, file order on ties; last item test,
second-last validation) and its sizes are checked against the Swift split's (98,114 / 943 / 943 on ml-100k).

Metrics are the mean over --repeats fits with seeds 0, 1, ...; fit times the median. With --r2ec BINARY, each
implicit fit is interleaved with an `r2ec eval` run of the matching Swift baseline, so that both fit times come from
the same minutes of the same (shared, noisy) machine.

Usage: benchmarks/.venv/bin/python benchmarks/implicit_baseline.py [--dataset data/ml-100k] [--repeats 3]
                                                                   [--r2ec .build/release/r2ec]
Setup: python3 -m venv benchmarks/.venv && benchmarks/.venv/bin/pip install implicit==0.7.3
"""
import argparse
import glob
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits


def id_key(s):
    """Catalogue order: whole numbers first, as numbers; then other ids as strings (Catalog.idPrecedes)."""
    try:
        return (0, int(s), s)
    except ValueError:
        return (1, 0, s)


def load_atomic(directory):
    inter = glob.glob(os.path.join(directory, "*.inter"))[0]
    rows = []
    with open(inter, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        u, i, t = names.index("user_id"), names.index("item_id"), names.index("timestamp")
        for line in f:
            if not line.strip():
                continue
            p = line.rstrip("\n").split("\t")
            rows.append((p[u], p[i], int(float(p[t]))))
    item_ids = set(r[1] for r in rows)
    item_file = inter[: -len(".inter")] + ".item"
    if os.path.exists(item_file):
        with open(item_file, encoding="utf-8") as f:
            f.readline()
            item_ids |= {line.split("\t")[0] for line in f if line.strip()}
    items = {x: k for k, x in enumerate(sorted(item_ids, key=id_key))}
    users = {x: k for k, x in enumerate(sorted({r[0] for r in rows}, key=id_key))}
    return [(users[a], items[b], t) for a, b, t in rows], len(users), len(items)


def leave_one_out(rows, n_users):
    per_user = [[] for _ in range(n_users)]
    for pos, (u, i, t) in enumerate(rows):
        per_user[u].append((t, pos, i))
    train, valid, test = [], [], []  # train: (u, i); valid/test: (u, target, masked items)
    for u, seq in enumerate(per_user):
        seq.sort()  # (timestamp, file position): a stable sort by timestamp
        items = [i for _, _, i in seq]
        m = len(items)
        held = 2 if m >= 3 else (1 if m == 2 else 0)
        train += [(u, i) for i in items[: m - held]]
        if m >= 3:
            valid.append((u, items[m - 2], set(items[: m - 2]) - {items[m - 2]}))
        if m >= 2:
            test.append((u, items[m - 1], set(items[: m - 1]) - {items[m - 1]}))
    return train, valid, test


def matrix(pairs, n_users, n_items):
    u = np.array([p[0] for p in pairs]); i = np.array([p[1] for p in pairs])
    m = sp.csr_matrix((np.ones(len(pairs), dtype=np.float32), (u, i)), shape=(n_users, n_items))
    m.sum_duplicates()
    return m


KS = (5, 10, 20)
NAMES = [f"HR@{k}" for k in KS] + [f"NDCG@{k}" for k in KS] + ["MRR"]


def evaluate(scores_of, samples):
    """scores_of(users) -> (len(users), n_items) array. Rank = 1 + #higher + #equal at a smaller index, masked
    items skipped (docs/evaluation.md)."""
    values = []
    users = np.array([s[0] for s in samples])
    scores = scores_of(users)
    for row, (u, target, masked) in zip(scores, samples):
        row = row.astype(np.float64).copy()
        t = row[target]
        if masked:
            row[list(masked)] = -np.inf
        idx = np.arange(len(row))
        rank = 1 + int(np.sum(row > t)) + int(np.sum((row == t) & (idx < target)))
        values.append([float(rank <= k) for k in KS] + [1 / np.log2(rank + 1) if rank <= k else 0.0 for k in KS] + [1 / rank])
    return dict(zip(NAMES, np.mean(np.array(values), axis=0)))


def row(label, metrics, fit):
    return f"| {label} | " + " | ".join(f"{metrics[n]:.4f}".lstrip("0") for n in NAMES) + f" | {fit} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="data/ml-100k")
    ap.add_argument("--repeats", type=int, default=3, help="fits per model (metrics averaged, median fit time)")
    ap.add_argument("--r2ec", help="the r2ec binary, to time its WALS/BPR fits interleaved with implicit's")
    args = ap.parse_args()

    import implicit
    from implicit.als import AlternatingLeastSquares
    from implicit.bpr import BayesianPersonalizedRanking

    rows, n_users, n_items = load_atomic(args.dataset)
    train, valid, test = leave_one_out(rows, n_users)
    print(f"implicit {implicit.__version__}; {args.dataset}: {n_users} users, {n_items} items, {len(rows)} interactions;"
          f" split {len(train)} train / {len(valid)} validation / {len(test)} test")
    if os.path.basename(os.path.normpath(args.dataset)) == "ml-100k":
        assert (len(train), len(valid), len(test)) == (98114, 943, 943), "split differs from r2ec's"
    ui = matrix(train, n_users, n_items)
    ui_tv = matrix(train + [(u, i) for u, i, _ in valid], n_users, n_items)

    print("\n| model | " + " | ".join(NAMES) + " | fit (median) |")
    print("|---|" + "---|" * (len(NAMES) + 1))

    counts = np.asarray(ui.sum(axis=0)).ravel()
    print(row("popularity (training counts)", evaluate(lambda us: np.tile(counts, (len(us), 1)), test), "-"))

    swift_times = {}

    def swift_fit(baseline, options):
        """Fit seconds of one `r2ec eval` run (from its JSON report), or None without --r2ec."""
        if not args.r2ec:
            return None
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([args.r2ec, "eval", "--dataset", args.dataset, "--baseline", baseline, "--options", options,
                            "--bootstrap", "0", "--json", f.name], check=True, stdout=subprocess.DEVNULL)
            return json.load(open(f.name))["fit_seconds"]

    def fits(make, m, swift=None):
        """`repeats` fitted models (seed = repeat) and the median fit time; interleaves the Swift peer's fits."""
        times, models, peer = [], [], []
        for rep in range(args.repeats):
            model = make(rep)
            t0 = time.perf_counter()
            model.fit(m, show_progress=False)
            times.append(time.perf_counter() - t0)
            models.append(model)
            if swift:
                peer.append(swift_fit(*swift))
        if swift and args.r2ec:
            swift_times[swift] = np.median(peer)
        return models, f"{np.median(times):.3f} s"

    def mean_over(models, samples, scores):
        runs = [evaluate(lambda us, m=m: scores(m, us), samples) for m in models]
        return {n: float(np.mean([r[n] for r in runs])) for n in NAMES}

    with threadpool_limits(1, "blas"):
        als = lambda rep: AlternatingLeastSquares(factors=32, regularization=0.01, iterations=15, alpha=1.0,
                                                  random_state=rep, calculate_training_loss=False)
        # implicit's positives weigh alpha * count (1 here), r2ec's 1 + alpha * count: implicit alpha 1 = r2ec alpha 0.
        models, fit = fits(als, ui, swift=("wals", "factors=32,reg=0.01,alpha=0,iterations=15"))
        trained = lambda m, us: m.user_factors[us] @ m.item_factors.T
        print(row("implicit ALS (32 factors, reg .01, 15 it, alpha 1)", mean_over(models, test, trained), fit))
        # Test users' vectors recomputed from their test history (train + validation item) against fixed items:
        # the fold-in `r2ec eval` uses for WALS.
        folded = lambda m, us: np.stack([m.recalculate_user(u, ui_tv[u]) for u in us]) @ m.item_factors.T
        print(row("same, user vectors folded in from the test history", mean_over(models, test, folded), fit))
        models2, fit2 = fits(als, ui_tv)
        print(row("same, refit on train + validation", mean_over(models2, test, trained), fit2))

        bpr = lambda rep: BayesianPersonalizedRanking(factors=64, learning_rate=0.01, regularization=0.01, iterations=50,
                                                      random_state=rep)
        # Weighted positives (implicit alpha 2 = r2ec alpha 1): r2ec solves every row exactly by Cholesky here.
        als_w = lambda rep: AlternatingLeastSquares(factors=32, regularization=0.01, iterations=15, alpha=2.0,
                                                    random_state=rep, calculate_training_loss=False)
        models_w, fit_w = fits(als_w, ui, swift=("wals", "factors=32,reg=0.01,alpha=1,iterations=15"))
        print(row("implicit ALS, alpha 2 (positives weigh 2)", mean_over(models_w, test, trained), fit_w))
        print(row("same, user vectors folded in from the test history", mean_over(models_w, test, folded), fit_w))
        models3, fit3 = fits(bpr, ui, swift=("bpr", "factors=64,lr=0.02,reg=0.002,epochs=50"))
        print(row("implicit BPR (64 factors, reg .01, 50 it, lr .01)", mean_over(models3, test, trained), fit3))

    for (baseline, options), t in swift_times.items():
        print(f"\nr2ec {baseline} ({options}): median fit {t:.3f} s over {args.repeats} runs interleaved with implicit's")

if __name__ == "__main__":
    main()
