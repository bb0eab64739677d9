#!/usr/bin/env bash
# What the item table cache's chunked writes cost a cold start: two cold starts of `r2ec serve` over one synthetic
# 10^6-item catalogue, without --item-table-cache and into an empty cache directory (ORDER=cache-nocache swaps them);
# prints the seconds until each listens and its peak RSS. Run from the repo root under the build lock:
#   benchmarks/cold_start_cache.sh R2EC_BINARY
set -euo pipefail
r2ec=$1
tmp=$(mktemp -d)
server=
cleanup() { if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then kill -TERM "$server"; wait "$server" || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
"$r2ec" data synth --users 2000 --items 1000000 --events 40000 --out "$tmp/synth" --name synth 2>/dev/null
start() {
  local name=$1; shift
  local began; began=$(date +%s.%N)
  "$r2ec" serve --dataset "$tmp/synth" --model models/default --port 0 "$@" >"$tmp/$name.log" 2>&1 &
  server=$!
  until grep -q "listening on" "$tmp/$name.log"; do kill -0 "$server" || { cat "$tmp/$name.log"; exit 1; }; sleep 0.5; done
  echo "$name: listening after $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$began" "$(date +%s.%N)") s; $(grep -E '^(VmHWM)' /proc/$server/status | tr -s ' \t' ' ')"
  tr '\r' '\n' <"$tmp/$name.log" | grep -E "^item table: (read|saved|wrote)|items/s" | tail -1 || true
  kill -TERM "$server"; wait "$server" || true; server=
}
order=${ORDER:-nocache-cache}
for which in ${order//-/ }; do
  if [ "$which" = cache ]; then start cache --item-table-cache "$tmp/tables"; ls -la "$tmp/tables"; else start nocache; fi
done
