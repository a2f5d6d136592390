#!/usr/bin/env bash
# Runs one example against 3 throwaway redis-servers:
#   examples/run_example.sh path/to/example_binary
# Starts the servers on free loopback ports in a temp dir (scripts/lib/servers.sh), passes
# REDLOCK_SERVERS=url1,url2,url3, runs the example with a timeout and exits with its status.
# Cleanup (by PID, never by name) runs on every exit path.
set -euo pipefail
example=${1:?usage: run_example.sh EXAMPLE_BINARY}
. "$(dirname "$0")/../scripts/lib/servers.sh"
trap servers_stop EXIT

servers_start 3

export REDLOCK_SERVERS
REDLOCK_SERVERS=$(IFS=,; echo "${SERVER_URLS[*]}")
status=0
timeout 30 "$example" || status=$?
exit "$status"
