#!/usr/bin/env bash
# Two test "hosts" on one machine for what crosses a network (data-parallel training over TCP): network namespaces
# NAME-h1 (10.77.0.1/24) and NAME-h2 (10.77.0.2/24) joined by a veth pair, loopback up in each. Needs root and
# iproute2 (`ip`). Prints the two namespace names.
#   scripts/netns-hosts.sh up NAME      creates them (fails if they exist)
#   scripts/netns-hosts.sh down NAME    deletes them (the veth pair goes with them)
# Run a command on a host: `ip netns exec NAME-h1 COMMAND`; scripts/netns-rsh.sh is the matching mpirun launcher.
set -euo pipefail
action=${1:?usage: netns-hosts.sh up|down NAME}
name=${2:?usage: netns-hosts.sh up|down NAME}
h1="$name-h1" h2="$name-h2"
# veth names are at most 15 bytes and must be unique in the root namespace while they are created.
tag=$(printf '%s' "$name" | cksum | cut -c1-8)
case "$action" in
  up)
    ip netns add "$h1"
    ip netns add "$h2"
    ip link add "v$tag"a type veth peer name "v$tag"b
    ip link set "v$tag"a netns "$h1"
    ip link set "v$tag"b netns "$h2"
    ip -n "$h1" addr add 10.77.0.1/24 dev "v$tag"a
    ip -n "$h2" addr add 10.77.0.2/24 dev "v$tag"b
    for h in "$h1" "$h2"; do ip -n "$h" link set lo up; done
    ip -n "$h1" link set "v$tag"a up
    ip -n "$h2" link set "v$tag"b up
    echo "$h1 $h2"
    ;;
  down)
    ip netns del "$h1" 2>/dev/null || true
    ip netns del "$h2" 2>/dev/null || true
    ;;
  *) echo "netns-hosts.sh: unknown action $action (up, down)" >&2; exit 2 ;;
esac
