# shellcheck shell=bash
# Throwaway redis-servers for the scripts: free loopback ports, one temp dir, stopped by PID.
#
#   . "$root/scripts/lib/servers.sh"
#   servers_start 3                     # or: servers_start 1 --appendonly yes (extra args)
#   echo "${SERVER_PORTS[@]}" "${SERVER_URLS[@]}" "${SERVER_PIDS[@]}"
#   servers_kill9 0                     # SIGKILL server 0 (a fault)
#   trap servers_stop EXIT              # or call servers_stop from the script's own cleanup
#
# servers_start appends to SERVER_PORTS, SERVER_PIDS, SERVER_URLS and SERVER_DIRS, so it must
# run in the script's own shell, never inside $(...). Each server runs in
# $SERVERS_DIR/redis-<index> (log: redis.log there); SERVERS_DIR defaults to a new
# /tmp/redlock-servers.XXXXXX that servers_stop removes (a directory the caller set is left
# to the caller). A port is chosen by the kernel (bind to port 0, then released); a server
# that cannot bind it exits, and another port is tried. "Ready" means it answers PING and
# reports our PID, so another process on a reused port is never mistaken for ours.
# Processes are stopped only by the PIDs recorded here, never by name.

SERVER_PORTS=()
SERVER_PIDS=()
SERVER_URLS=()
SERVER_DIRS=()
SERVERS_DIR=${SERVERS_DIR:-}
_servers_own_dir=0

# A free loopback port (bound and released by the kernel's choice).
servers_free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  else
    echo $((20000 + RANDOM % 40000))  # a taken port makes redis-server exit: retried below
  fi
}

# True while `pid` runs (an exited child stays a zombie until reaped: kill -0 still succeeds).
_servers_alive() {
  local stat
  stat=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ ${stat:0:1} != Z ]]
}

# servers_start N [extra redis-server arguments...]: starts N servers; exits the script (1)
# when one cannot be started.
servers_start() {
  local n=$1 i attempt port pid dir ready
  shift
  if [[ -z $SERVERS_DIR ]]; then
    SERVERS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/redlock-servers.XXXXXX")
    _servers_own_dir=1
  fi
  for ((i = 0; i < n; i++)); do
    dir=$SERVERS_DIR/redis-${#SERVER_PIDS[@]}
    mkdir -p "$dir"
    ready=0
    for attempt in 1 2 3 4 5; do
      port=$(servers_free_port)
      redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --daemonize no --logfile "$dir/redis.log" "$@" >>"$dir/stdout.log" 2>&1 &
      pid=$!
      for _ in $(seq 200); do
        if redis-cli -h 127.0.0.1 -p "$port" info server 2>/dev/null | grep -q "^process_id:$pid"; then
          ready=1
          break
        fi
        _servers_alive "$pid" || break  # exited (port taken): try another
        sleep 0.05
      done
      ((ready)) && break
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    done
    if ((!ready)); then
      echo "servers.sh: redis-server did not start (dir $dir); its log:" >&2
      cat "$dir/redis.log" "$dir/stdout.log" >&2 2>/dev/null || true
      exit 1
    fi
    SERVER_PORTS+=("$port")
    SERVER_PIDS+=("$pid")
    SERVER_URLS+=("redis://127.0.0.1:$port")
    SERVER_DIRS+=("$dir")
  done
}

# servers_kill9 I: SIGKILL server I and reap it (its port and dir stay recorded).
servers_kill9() {
  local pid=${SERVER_PIDS[$1]}
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# servers_stop: SIGTERM every server, wait up to 5 s each, then SIGKILL; reaps them and
# removes SERVERS_DIR if servers_start made it. Idempotent; never fails.
servers_stop() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do
    for _ in $(seq 100); do _servers_alive "$pid" || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
  if ((_servers_own_dir)) && [[ -n $SERVERS_DIR ]]; then
    rm -rf "$SERVERS_DIR"
  fi
  return 0
}
