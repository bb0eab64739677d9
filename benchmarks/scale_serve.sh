#!/usr/bin/env bash
# The whole server on a synthetic catalogue of ITEMS items: `r2ec data synth` writes the catalogue (USERS users,
# 20 events each), `r2ec serve` loads MODEL over it (building the item table: every item read out by the network),
# `r2ec bench serve` finds the saturated rate of direct Recommend (64 calls in flight, histories of up to 20 items)
# and then loads the server open loop (Poisson arrivals) at half that rate. Prints both levels, the server's start
# time (dataset + item table) and its resident memory (VmRSS after the load, VmHWM: the peak since start).
#   benchmarks/scale_serve.sh [R2EC_BINARY] [ITEMS] [MODEL] [SECONDS] [JSON_OUT]
# With CACHE_STARTS=1 the server keeps its item table in a fresh --item-table-cache directory and is started twice
# before the load: cold (reads every item out and saves the table) and warm (reads the saved table). With
# KILL_AFTER=S too, between them and over an empty directory again, a start is killed (SIGKILL) S seconds in,
# mid-build, and the next start resumes its partial table (its table compared byte for byte with the cold one's).
# The load then runs against the warm server. Other serve options come from their R2EC_* variables (e.g.
# R2EC_ITEM_TABLE_CACHE=DIR keeps the item table in DIR across runs). With PERF_DATA=FILE, `perf record -g` samples the
# server over the half-saturation phase into FILE.
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
cache=()
[ "${CACHE_STARTS:-0}" = 1 ] && cache=(--item-table-cache "$tmp/tables")

# start NAME: starts the server (log in $tmp/NAME.log), waits until it listens; sets port and started (seconds).
start() {
  local began
  began=$(date +%s.%N)
  "$r2ec" serve --dataset "$tmp/synth" --model "$model" --port 0 "${cache[@]}" >"$tmp/$1.log" 2>&1 &
  server=$!
  port=
  while kill -0 "$server" 2>/dev/null; do
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$tmp/$1.log" | head -1)
    [ -n "$port" ] && break
    sleep 1
  done
  [ -n "$port" ] || { cat "$tmp/$1.log"; echo "server did not start" >&2; exit 1; }
  started=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$began" "$(date +%s.%N)")
}
stop() { kill -TERM "$server"; wait "$server" || true; server=; }
# The item table lines of a start's log (read, resumed), without the progress bar.
table_lines() { tr '\r' '\n' <"$tmp/$1.log" | grep -E '^item table: (read|resuming)|warning: item table' || true; }
memory() { grep -E '^(VmRSS|VmHWM)' "/proc/$server/status" | tr -s ' \t' ' ' | paste -sd ';' -; }

"$r2ec" data synth --users "$users" --items "$items" --events $((users * 20)) --out "$tmp/synth" --name synth 2>/dev/null
if [ ${#cache[@]} -gt 0 ]; then
  start cold
  cold=$started
  echo "cold start: $started s (item table read out and saved); $(table_lines cold)"
  stop
  if [ -n "${KILL_AFTER:-}" ]; then
    mv "$tmp/tables" "$tmp/tables.done"
    "$r2ec" serve --dataset "$tmp/synth" --model "$model" --port 0 "${cache[@]}" >"$tmp/killed.log" 2>&1 &
    server=$!
    sleep "$KILL_AFTER"
    kill -KILL "$server"; wait "$server" || true; server=
    rows=$(python3 -c "import json, struct, sys; f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]
print(int(json.loads(f.read(n))['__metadata__']['rows_complete']))" "$tmp/tables/"*.partial || echo none)
    echo "killed start: SIGKILL after $KILL_AFTER s, left $(ls "$tmp/tables") with $rows complete rows"
    start resumed
    echo "resumed start: $started s; $(table_lines resumed)"
    stop
    cmp "$tmp/tables.done/"* "$tmp/tables/"* && echo "resumed table: the same bytes as the cold start's"
    rm -rf "$tmp/tables.done"
  fi
  start warm
  echo "warm start: $started s; $(table_lines warm)"
else
  start serve
fi
echo "server: $items items, $model, listening on port $port after $started s (dataset + item table); $(memory)"

"$r2ec" bench serve --target "127.0.0.1:$port" --dataset "$tmp/synth" --concurrency 64 --seconds 5 \
  --json "$tmp/saturated.json" | tee "$tmp/saturated.txt"
rate=$(python3 -c "import json, sys; print(round(json.load(open(sys.argv[1]))['levels'][0]['throughput'] / 2, 1))" \
  "$tmp/saturated.json")
echo "half the saturated rate: $rate calls/s"
perf=
[ -n "${PERF_DATA:-}" ] && { perf record -q -g -F 499 -p "$server" -o "$PERF_DATA" -- sleep "$seconds" & perf=$!; }
"$r2ec" bench serve --target "127.0.0.1:$port" --dataset "$tmp/synth" --rate "$rate" --poisson --seconds "$seconds" \
  --json "$tmp/half.json"
[ -n "$perf" ] && wait "$perf"
echo "server after the load: $(memory)"
if [ -n "$json" ]; then
  python3 - "$tmp/saturated.json" "$tmp/half.json" "$json" "$items" "$started" "/proc/$server/status" "${cold:-}" <<'PY'
import json, sys
saturated, half, out, items, started, status, cold = sys.argv[1:]
memory = {l.split(":")[0]: int(l.split()[1]) / 1024 for l in open(status) if l.startswith(("VmRSS", "VmHWM"))}
json.dump({"items": int(items), "start_seconds": float(started), "saturated": json.load(open(saturated))["levels"][0],
           "half": json.load(open(half))["levels"][0], "rss_mib": memory["VmRSS"], "peak_rss_mib": memory["VmHWM"],
           **({"cold_start_seconds": float(cold)} if cold else {})}, open(out, "w"), indent=2)
print("wrote", out)
PY
fi
