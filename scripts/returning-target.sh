#!/bin/bash
# Returning users with the load generator in another process (docs/benchmarks.md, Returning users): one
# `r2ec serve` per configuration (prefix cache with dynamic batching, no prefix cache, prefix cache with
# max_batch_size 1), each measured by `bench serve --returning --target`. Run under the build lock:
#   flock /tmp/r2ec-swift.lock scripts/returning-target.sh [checkpoint]   (default runs/prefix-default)
set -u
cd "$(dirname "$0")/.."
B=.build/release/r2ec
MODEL=${1:-runs/prefix-default}
PORT=7979
run() {  # label, serve options...
  label=$1; shift
  log=$(mktemp)
  $B serve --dataset data/ml-100k --model "$MODEL" --port $PORT "$@" > "$log" 2>&1 &
  spid=$!
  for _ in $(seq 1 240); do grep -q "listening" "$log" && break; sleep 0.5; done
  echo "== $label ($*) $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  $B bench serve --returning --target 127.0.0.1:$PORT --seconds 3 2>/dev/null | grep -E "^\| returning"
  kill $spid; wait $spid 2>/dev/null
  rm -f "$log"
}
run cached --prefix-cache 2G --max-batch-size 32
run full --prefix-cache 0 --max-batch-size 32
run single --prefix-cache 2G --max-batch-size 1
