#!/usr/bin/env python3
"""The multi-dataset evaluation table of docs/evaluation.md, produced by one command.

For every dataset directory and every row it runs the real binary under the project's protocol (leave-one-out by
default, full ranking, history masked, 1,000 bootstrap resamples for the 95% intervals):
  pop, wals, bpr         `r2ec eval --baseline KIND --seeds N --json ...` (the baselines' defaults)
  a recipe (a name under configs/ or a path to a config)
                         `r2ec train --config CONFIG --dataset D --out RUNS/D/NAME --set time_limit=0` (so the step
                         count decides, not the machine's load), then `r2ec eval --model RUNS/D/NAME --json ...`,
                         which re-measures the checkpoint independently of the numbers training printed.
Each row's JSON report is kept in RUNS/<dataset>/<row>.json and reused by later runs (--force redoes them), so a
table over several long trainings can be built up over several sessions. The markdown goes to stdout and, with
--out, to a file.

  python3 benchmarks/eval_table.py --datasets data/ml-100k,data/ml-1m --rows pop,wals,bpr,default
"""
import argparse
import json
import os
import subprocess
import sys
import time

BASELINES = {"pop": "popularity", "wals": "WALS (defaults)", "bpr": "BPR (defaults)"}


def run(cmd, log):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    with open(log, "ab") as f:
        f.write(("+ " + " ".join(cmd) + "\n").encode())
        f.flush()
        started = time.time()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            sys.exit(f"eval_table: command failed ({r.returncode}), see {log}: {' '.join(cmd)}")
        return time.time() - started


def recipe_config(row):
    """configs/NAME.json for a bare name, else the path given."""
    if os.path.sep in row or row.endswith(".json"):
        return row, os.path.splitext(os.path.basename(row))[0]
    return os.path.join("configs", row + ".json"), row


def measure(args, dataset, row, folder):
    name = os.path.basename(os.path.normpath(dataset))
    report = os.path.join(folder, f"{row if row in BASELINES else recipe_config(row)[1]}.json")
    if os.path.exists(report) and not args.force:
        with open(report) as f:
            return json.load(f)
    log = os.path.join(folder, "commands.log")
    common = ["--dataset", dataset, "--split", args.split, "--bootstrap", str(args.bootstrap)]
    if row in BASELINES:
        run([args.r2ec, "eval", "--baseline", row, "--seeds", str(1 if row == "pop" else args.seeds),
             "--json", report] + common, log)
        with open(report) as f:
            result = json.load(f)
    else:
        config, recipe = recipe_config(row)
        if not os.path.exists(config):
            sys.exit(f"eval_table: --rows {row}: no config {config} (a recipe is a name under configs/ or a path)")
        out = os.path.join(folder, recipe)
        train = [args.r2ec, "train", "--config", config, "--dataset", dataset, "--out", out,
                 "--set", "time_limit=0", "--set", f"split={json.dumps(args.split)}"]
        for s in args.train_set:
            train += ["--set", s]
        seconds = run(train, log)
        run([args.r2ec, "eval", "--model", out, "--json", report] + common, log)
        with open(report) as f:
            result = json.load(f)
        result["train_wall_seconds"] = seconds
        with open(os.path.join(out, "r2ec_train.json")) as f:
            result["train_seconds"] = json.load(f).get("train_seconds")
        result["recipe"] = config
        with open(report, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
    print(f"eval_table: {name} {row}: test NDCG@10 {result['metrics']['NDCG@10']:.4f}", file=sys.stderr, flush=True)
    return result


def f4(v):
    return f"{v:.4f}".replace("0.", ".", 1) if v is not None else ""


def table(args, results):
    lines = []
    for dataset, rows in results:
        d = rows[0][1]["dataset"]
        s = rows[0][1]["split"]
        lines.append(f"**{d['name']}** ({d['users']:,} users, {d['items']:,} items, {d['interactions']:,} "
                     f"interactions, fingerprint `{d['fingerprint']}`; {args.split}: {s['train_interactions']:,} "
                     f"training interactions, {s['test_samples']:,} test samples)")
        lines.append("")
        lines.append("| model | HR@10 | NDCG@10 [95% interval] | MRR | validation NDCG@10 | fit / train |")
        lines.append("|---|---|---|---|---|---|")
        for row, r in rows:
            m, iv = r["metrics"], r["intervals"].get("NDCG@10", [None, None])
            label = BASELINES.get(row) or f"r2ec recipe `{r.get('recipe', row)}`"
            if row in ("wals", "bpr") and r.get("fits", 1) > 1:
                label += f", mean of {r['fits']} seeds"
            if row in BASELINES:
                fit = f"{r['fit_seconds']:.1f} s"
            else:
                fit = f"{r.get('train_seconds') or 0:.0f} s training, {r.get('train_wall_seconds', 0):.0f} s wall"
            lines.append(f"| {label} | {f4(m['HR@10'])} | {f4(m['NDCG@10'])} [{f4(iv[0])}-{f4(iv[1])}] | "
                         f"{f4(m['MRR'])} | {f4(r.get('validation_metrics', {}).get('NDCG@10'))} | {fit} |")
        lines.append("")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--r2ec", default=".build/release/r2ec")
    p.add_argument("--datasets", default="data/ml-100k,data/ml-1m", help="comma-separated dataset directories")
    p.add_argument("--rows", default="pop,wals,bpr,default",
                   help="comma-separated: pop, wals, bpr, or a recipe (a name under configs/, or a config path)")
    p.add_argument("--split", default="loo", choices=["loo", "temporal"])
    p.add_argument("--seeds", type=int, default=3, help="fits per seeded baseline (WALS, BPR)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--train-set", action="append", default=[], help="extra --set path=value for every recipe row")
    p.add_argument("--runs", default="runs/table", help="where reports and checkpoints go (one folder per dataset)")
    p.add_argument("--out", help="also write the markdown here")
    p.add_argument("--force", action="store_true", help="redo rows whose report exists")
    args = p.parse_args()
    if not os.access(args.r2ec, os.X_OK):
        sys.exit(f"eval_table: --r2ec {args.r2ec} is not an executable (swift build -c release --product r2ec)")
    datasets = [d for d in args.datasets.split(",") if d]
    rows = [r for r in args.rows.split(",") if r]
    if not datasets or not rows:
        sys.exit("eval_table: --datasets and --rows must name at least one each")
    for d in datasets:
        if not os.path.isdir(d):
            sys.exit(f"eval_table: --datasets: no directory {d} (scripts/fetch-data.sh {d})")
    results = []
    for d in datasets:
        folder = os.path.join(args.runs, os.path.basename(os.path.normpath(d)) + ("" if args.split == "loo" else "-" + args.split))
        os.makedirs(folder, exist_ok=True)
        results.append((d, [(row, measure(args, d, row, folder)) for row in rows]))
    text = table(args, results)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
