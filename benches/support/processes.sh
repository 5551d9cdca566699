# Sourced by benches/load.sh, load_h2.sh and instructions.sh: messages, a scratch folder,
# the processes a script starts and their stop, and waiting for a listener.
#
# The sourcing script sets SCRIPT (its name, for messages and the folder) and may set
# STOP_TENTHS (how long, in tenths of a second, a process gets to stop after SIGINT; 50)
# and WAIT_TENTHS (how long `wait_http` waits; 150). Every PID appended to `pids` is
# stopped on exit, and the folder `work` removed.

say() { printf '%s\n' "$*" >&2; }

work=$(mktemp -d "/tmp/scopegate-${SCRIPT%.sh}.XXXXXX")
pids=()

stop() { # stop PID: SIGINT is pingora's fast shutdown; SIGKILL if it lingers
  local pid=$1
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq "${STOP_TENTHS:-50}"); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  for pid in "${pids[@]}"; do stop "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { # wait_http URL [HEADER]: until it answers 200, at most WAIT_TENTHS / 10 s
  for _ in $(seq "${WAIT_TENTHS:-150}"); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' ${2:+-H "$2"} "$1" 2>/dev/null)" = 200 ] && return 0
    sleep 0.1
  done
  say "$SCRIPT: $1 never answered 200"; return 1
}
