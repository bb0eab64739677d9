#!/usr/bin/env bash
# The whole server on a synthetic catalogue of ITEMS items: `r2ec data synth` writes the catalogue (USERS users,
# 20 events each), `r2ec serve` loads MODEL over it (building the item table: every item read out by the network),
# `r2ec bench serve` finds the saturated rate of direct Recommend (64 calls in flight, histories of up to 20 items)
# and then loads the server open loop (Poisson arrivals) at half that rate. Prints both levels, the server's start
# time (dataset + item table) and its resident memory (VmRSS after the load, VmHWM: the peak since start).
#   benchmarks/scale_serve.sh [R2EC_BINARY] [ITEMS] [MODEL] [SECONDS] [JSON_OUT]
set -euo pipefail
r2ec=${1:-.build/release/r2ec}
items=${2:-1000000}
model=${3:-models/default}
seconds=${4:-20}
json=${5:-}
users=2000
tmp=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$r2ec" data synth --users "$users" --items "$items" --events $((users * 20)) --out "$tmp/synth" --name synth 2>/dev/null
began=$(date +%s.%N)
"$r2ec" serve --dataset "$tmp/synth" --model "$model" --port 0 >"$tmp/serve.log" 2>&1 &
server=$!
port=
while kill -0 "$server" 2>/dev/null; do
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$tmp/serve.log" | head -1)
  [ -n "$port" ] && break
  sleep 1
done
[ -n "$port" ] || { cat "$tmp/serve.log"; echo "server did not start" >&2; exit 1; }
started=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$began" "$(date +%s.%N)")
memory() { grep -E '^(VmRSS|VmHWM)' "/proc/$server/status" | tr -s ' \t' ' ' | paste -sd ';' -; }
echo "server: $items items, $model, listening on port $port after $started s (dataset + item table); $(memory)"

"$r2ec" bench serve --target "127.0.0.1:$port" --dataset "$tmp/synth" --concurrency 64 --seconds 5 \
  --json "$tmp/saturated.json" | tee "$tmp/saturated.txt"
rate=$(python3 -c "import json, sys; print(round(json.load(open(sys.argv[1]))['levels'][0]['throughput'] / 2, 1))" \
  "$tmp/saturated.json")
echo "half the saturated rate: $rate calls/s"
"$r2ec" bench serve --target "127.0.0.1:$port" --dataset "$tmp/synth" --rate "$rate" --poisson --seconds "$seconds" \
  --json "$tmp/half.json"
echo "server after the load: $(memory)"
if [ -n "$json" ]; then
  python3 - "$tmp/saturated.json" "$tmp/half.json" "$json" "$items" "$started" "/proc/$server/status" <<'PY'
import json, sys
saturated, half, out, items, started, status = sys.argv[1:]
memory = {l.split(":")[0]: int(l.split()[1]) / 1024 for l in open(status) if l.startswith(("VmRSS", "VmHWM"))}
json.dump({"items": int(items), "start_seconds": float(started), "saturated": json.load(open(saturated))["levels"][0],
           "half": json.load(open(half))["levels"][0], "rss_mib": memory["VmRSS"], "peak_rss_mib": memory["VmHWM"]},
          open(out, "w"), indent=2)
print("wrote", out)
PY
fi
