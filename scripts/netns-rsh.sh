#!/usr/bin/env bash
# mpirun's remote launcher (plm_rsh_agent) for the namespace hosts of scripts/netns-hosts.sh: where ssh would log in
# to HOST and run the command in its shell, this runs it in the namespace R2EC_NETNS_HOSTS maps HOST to
# ("10.77.0.1=NAME-h1,10.77.0.2=NAME-h2").
#   mpirun --mca plm_rsh_agent scripts/netns-rsh.sh --host 10.77.0.1,10.77.0.2 ...
set -euo pipefail
host=$1
shift
for pair in ${R2EC_NETNS_HOSTS//,/ }; do
  if [[ ${pair%%=*} == "$host" ]]; then exec ip netns exec "${pair#*=}" sh -c "$*"; fi
done
echo "netns-rsh.sh: no namespace for host $host in R2EC_NETNS_HOSTS=$R2EC_NETNS_HOSTS" >&2
exit 255
