#!/usr/bin/env bash
# Two r2ec replicas sharing one store behind HAProxy, all on loopback (docs/deployment.md "Several replicas").
#   deploy/start-loopback.sh STORE_URL [LISTEN_PORT] [--grpc] [-- extra serve arguments]
# STORE_URL: postgres://USER@HOST:PORT/DB filled by `r2ec store import` (sqlite: allows one writer, so one replica).
# Replicas on LISTEN_PORT+1 and +2, HAProxy on LISTEN_PORT (default 7878), its stats on LISTEN_PORT+3/stats.
# --grpc: the replicas also serve gRPC (--grpc-port LISTEN_PORT+5 and +6) and HAProxy balances it in HTTP/2 mode
# on LISTEN_PORT+4 (deploy/haproxy-grpc.cfg; the server must be built with gRPC, the default).
# Each replica's /metrics and /healthz on LISTEN_PORT+7 and +8: HAProxy's health checks read /healthz.
# Runs until interrupted; SIGINT/SIGTERM stops HAProxy, then drains each replica (SIGTERM).
# Replicas run --max-connection-age 60, --drain-grace 2 (SIGTERM to one replica: /healthz 503, HAProxy takes it out
# within 500 ms, then it drains) and --model popularity unless the extra arguments give their own; each
# caches user histories and drops the users the other replica wrote (PostgreSQL NOTIFY; docs/deployment.md). R2EC_BIN: the server (default .build/release/r2ec).
set -euo pipefail
store=${1:?usage: deploy/start-loopback.sh STORE_URL [LISTEN_PORT] [-- serve arguments]}
shift
port=7878
if [ $# -gt 0 ] && [ "$1" != "--" ] && [ "$1" != "--grpc" ]; then port=$1; shift; fi
grpc=0
if [ $# -gt 0 ] && [ "$1" = "--grpc" ]; then grpc=1; shift; fi
if [ $# -gt 0 ]; then
  [ "$1" = "--" ] || { echo "expected '--' before the serve arguments, got '$1'" >&2; exit 2; }
  shift
fi
case $store in postgres://*|postgresql://*) ;; *) echo "STORE_URL: expected postgres://..., got '$store'" >&2; exit 2;; esac
[[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65527 ] || { echo "LISTEN_PORT: expected 1-65527, got '$port'" >&2; exit 2; }
bin=${R2EC_BIN:-.build/release/r2ec}
here=$(cd "$(dirname "$0")" && pwd)
age=(--max-connection-age 60)
grace=(--drain-grace 2)
model=(--model popularity)
for a in "$@"; do
  [[ $a == --max-connection-age* ]] && age=(); [[ $a == --drain-grace* ]] && grace=(); [[ $a == --model* ]] && model=()
done

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop INT TERM EXIT

for i in 1 2; do
  grpc_port=()
  [ $grpc = 1 ] && grpc_port=(--grpc-port $((port + 4 + i)))
  "$bin" serve --host 127.0.0.1 --port $((port + i)) "${grpc_port[@]}" --metrics-port $((port + 6 + i)) \
    --store "$store" "${model[@]}" "${age[@]}" "${grace[@]}" "$@" &
  pids+=($!)
done
# Wait for both replicas to listen before HAProxy takes traffic (the gRPC port is bound before the custom one).
for i in 1 2; do
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$((port + i))) 2>/dev/null && break; sleep 0.1; done
done
configs=(-f "$here/haproxy.cfg")
[ $grpc = 1 ] && configs+=(-f "$here/haproxy-grpc.cfg")
R2EC_LISTEN=127.0.0.1:$port R2EC_REPLICA1=127.0.0.1:$((port + 1)) R2EC_REPLICA2=127.0.0.1:$((port + 2)) \
  R2EC_HAPROXY_STATS=127.0.0.1:$((port + 3)) R2EC_GRPC_LISTEN=127.0.0.1:$((port + 4)) \
  R2EC_GRPC_REPLICA1=127.0.0.1:$((port + 5)) R2EC_GRPC_REPLICA2=127.0.0.1:$((port + 6)) \
  R2EC_REPLICA1_HEALTH=$((port + 7)) R2EC_REPLICA2_HEALTH=$((port + 8)) \
  haproxy -db "${configs[@]}" &
pids=($! "${pids[@]}")
echo "HAProxy on 127.0.0.1:$port (stats http://127.0.0.1:$((port + 3))/stats), replicas on $((port + 1)) and $((port + 2)) (/metrics, /healthz on $((port + 7)) and $((port + 8)))" >&2
[ $grpc = 1 ] && echo "HAProxy gRPC (h2c) on 127.0.0.1:$((port + 4)), replicas' gRPC on $((port + 5)) and $((port + 6))" >&2
wait -n "${pids[@]}"
