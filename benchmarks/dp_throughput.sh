#!/usr/bin/env bash
# Data-parallel training throughput at equal total cores: one process with 2 pool threads against
# `mpirun -np 2` ranks of 1 thread each, on the default recipe (configs/default.json) for STEPS steps.
# Prints the median tokens/s of steps 3.. of each run (rank 0's log: the whole batch's tokens over the step's
# wall time) and their ratio. Each run is stopped once its steps are logged (the final evaluation is not timed).
#   benchmarks/dp_throughput.sh [R2EC_BINARY] [STEPS]
set -euo pipefail
r2ec=${1:-.build/release/r2ec}
steps=${2:-30}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(train --config configs/default.json --set "stages.0.steps=$((steps + 5))" --set stages.0.eval_every=0)

# Runs "$@" in the background until $log holds $steps step lines, then stops it.
run_until() {
  local log=$1; shift
  "$@" >"$tmp/out" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -f "$log" ] && [ "$(grep -c '"step"' "$log")" -ge "$steps" ]; then break; fi
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [ "$(grep -c '"step"' "$log" 2>/dev/null || echo 0)" -ge "$steps" ] || { cat "$tmp/out"; exit 1; }
}

median() {  # median tokens_per_s of step lines 3.. of a log
  python3 - "$1" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if '"step"' in l]
print(statistics.median(r["tokens_per_s"] for r in rows[3:]))
PY
}

run_until "$tmp/one.jsonl" env R2EC_THREADS=2 "$r2ec" "${args[@]}" --out "$tmp/one" --log "$tmp/one.jsonl"
root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
run_until "$tmp/two.jsonl" mpirun -np 2 "${root[@]}" --bind-to none -x R2EC_THREADS=1 "$r2ec" "${args[@]}" --out "$tmp/two" --log "$tmp/two.jsonl"
one=$(median "$tmp/one.jsonl"); two=$(median "$tmp/two.jsonl")
python3 - "$one" "$two" <<'PY'
import sys
one, two = map(float, sys.argv[1:])
print(f"1 process x 2 threads: {one:.0f} tokens/s; mpirun -np 2 x 1 thread: {two:.0f} tokens/s; ratio {two / one:.3f}")
PY
# The same steps: the two runs' losses side by side (first 5 steps).
python3 - "$tmp/one.jsonl" "$tmp/two.jsonl" <<'PY'
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(p) if '"step"' in l] for p in sys.argv[1:])
print("losses (1 process / 2 ranks):", ", ".join(f"{x:.5f}/{y:.5f}" for x, y in zip(a[:5], b[:5])))
print("largest relative difference over", min(len(a), len(b)), "steps:", max(abs(x - y) / max(1, abs(x)) for x, y in zip(a, b)))
PY
