#!/usr/bin/env bash
# Runs one example against 3 throwaway redis-servers:
#   examples/run_example.sh path/to/example_binary
# Starts the servers on free loopback ports in a temp dir, passes
# REDLOCK_SERVERS=url1,url2,url3, runs the example with a timeout and exits with its status.
# Cleanup (by PID, never by name) runs on every exit path.
set -euo pipefail
example=${1:?usage: run_example.sh EXAMPLE_BINARY}
dir=$(mktemp -d "${TMPDIR:-/tmp}/redlock-example.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# Starts one server on a random free loopback port; a port that turns out to be taken makes
# redis-server exit, and we try another (bounded).
start_server() {
  local i=$1 port pid
  mkdir -p "$dir/$i"
  for _ in $(seq 1 20); do
    port=$((20000 + RANDOM % 40000))
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/$i" --save '' --appendonly no \
      --daemonize no --logfile "$dir/$i/redis.log" &
    pid=$!
    for _ in $(seq 1 200); do
      # Ours, not another test's server that already had this port: compare the PID.
      if redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null | grep -q "^process_id:$pid"; then
        pids+=("$pid")
        urls+=("redis://127.0.0.1:$port")
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break  # exited: port in use, try another
      sleep 0.05
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  echo "run_example.sh: could not start redis-server" >&2
  return 1
}

urls=()
for i in 1 2 3; do start_server "$i"; done

export REDLOCK_SERVERS
REDLOCK_SERVERS=$(IFS=,; echo "${urls[*]}")
status=0
timeout 30 "$example" || status=$?
exit "$status"
