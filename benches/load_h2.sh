#!/usr/bin/env bash
# benches/load_h2.sh: scopegate over HTTP/2 (h2c, prior knowledge) against a plain pingora
# h2c passthrough, on loopback, in one run, with h2load (Debian's nghttp2-client).
#
#   benches/load_h2.sh      setup, release build, tokens, then ROUNDS rounds of each shape
#
# Both proxies run pinned to core 0 with one worker thread, h2load and the upstream share
# core 1. Shapes, all `GET /timesheets/4711` with one RS256 token (token cache warm):
#   1conn-100streams   one connection, 100 concurrent streams (a mesh sidecar's hop)
#   32conn-10streams   32 connections, 10 streams each (many clients)
# Each target runs DURATION seconds per round, the order alternating; per round the ratio is
# the passthrough's CPU per request over scopegate's (1.00: authorization costs nothing;
# the same measure as benches/load.sh), and of requests per second. Medians are printed.
#
# Environment: ROUNDS (6), DURATION seconds (3), PORT_BASE (18200), SKIP_SETUP=1,
# SKIP_BUILD=1, CARGO_TARGET_DIR as cargo reads it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-3}
PORT_BASE=${PORT_BASE:-18200}
url_path=/timesheets/4711
SCRIPT=load_h2.sh
# shellcheck source=benches/support/processes.sh
. benches/support/processes.sh

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  scripts/setup --bench
fi
for tool in h2load taskset curl; do
  command -v "$tool" >/dev/null || { say "load_h2.sh: $tool is missing"; exit 1; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked --bin scopegate --example passthrough --example bench_upstream \
    --example mint_tokens
fi
bin=${CARGO_TARGET_DIR:-$repo/target}/release

if [ "$(nproc)" -ge 2 ]; then proxy_core=0; load_core=1; else proxy_core=0; load_core=0; fi

wait_h2() { # wait_h2 URL [HEADER]: until it answers 200 over h2c, at most 15 s
  for _ in $(seq 150); do
    [ "$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' ${2:+-H "$2"} "$1" 2>/dev/null)" = 200 ] && return 0
    sleep 0.1
  done
  say "load_h2.sh: $1 never answered 200 over h2c"; return 1
}
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

upstream_port=$PORT_BASE
pass_port=$((PORT_BASE + 1))
sg_port=$((PORT_BASE + 2))
admin_port=$((PORT_BASE + 3))
"$bin/examples/mint_tokens" 1 "$work/tokens.txt" "$work/jwks.json"
auth="Authorization: Bearer $(head -n1 "$work/tokens.txt")"
taskset -c "$load_core" "$bin/examples/bench_upstream" "127.0.0.1:$upstream_port" "$work/jwks.json" \
  2>"$work/upstream.log" &
pids+=($!)
taskset -c "$proxy_core" "$bin/examples/passthrough" "127.0.0.1:$pass_port" \
  "127.0.0.1:$upstream_port" --h2c true 2>"$work/passthrough.log" &
pids+=($!); pass_pid=$!
cat >"$work/scopegate.yaml" <<CONF
version: 1
listen: 127.0.0.1:$sg_port
admin_listen: 127.0.0.1:$admin_port
upstream: http://127.0.0.1:$upstream_port
policy: $repo/policies/timesheets.yaml
threads: 1
upgrade_socket: $work/scopegate.sock
http2:
  h2c: true
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:$upstream_port/.well-known/jwks.json
    algorithms: [RS256]
CONF
env -u RUST_LOG taskset -c "$proxy_core" "$bin/scopegate" run -c "$work/scopegate.yaml" \
  >"$work/scopegate.log" 2>&1 &
pids+=($!); sg_pid=$!
wait_h2 "http://127.0.0.1:$pass_port$url_path" "$auth"
wait_h2 "http://127.0.0.1:$sg_port$url_path" "$auth" ||
  { tail -n 20 "$work/scopegate.log" >&2; exit 1; }

run() { # run PID PORT CONNS STREAMS: prints "requests cpu_ticks"
  local before after out done_
  before=$(proc_ticks "$1")
  out=$(taskset -c "$load_core" h2load -D "$DURATION" -c "$3" -m "$4" -H "$auth" \
    "http://127.0.0.1:$2$url_path" 2>&1)
  after=$(proc_ticks "$1")
  done_=$(printf '%s\n' "$out" | awk '/^requests:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^succeeded/) print $i }' | tr -d ',')
  failed=$(printf '%s\n' "$out" | awk '/^status codes:/ { print $5 + $7 + $9 }')
  [ "${failed:-0}" = 0 ] || say "load_h2.sh: non-2xx answers on port $2: $failed"
  echo "${done_:-0} $((after - before))"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

clk=$(getconf CLK_TCK)
declare -A cpu_ratios rps_ratios
shapes=("1conn-100streams 1 100" "32conn-10streams 32 10")
for round in $(seq "$ROUNDS"); do
  for shape in "${shapes[@]}"; do
    read -r name conns streams <<<"$shape"
    if [ $((round % 2)) = 1 ]; then
      read -r pr pt < <(run "$pass_pid" "$pass_port" "$conns" "$streams")
      read -r sr st < <(run "$sg_pid" "$sg_port" "$conns" "$streams")
    else
      read -r sr st < <(run "$sg_pid" "$sg_port" "$conns" "$streams")
      read -r pr pt < <(run "$pass_pid" "$pass_port" "$conns" "$streams")
    fi
    # CPU µs per request of each process, and their ratio (passthrough over scopegate).
    cpu=$(awk -v pr="$pr" -v pt="$pt" -v sr="$sr" -v st="$st" \
      'BEGIN { if (pr == 0 || sr == 0 || st == 0) print 0; else printf "%.4f", (pt / pr) / (st / sr) }')
    rps=$(awk -v pr="$pr" -v sr="$sr" 'BEGIN { if (pr == 0) print 0; else printf "%.4f", sr / pr }')
    cpu_ratios[$name]+="$cpu "
    rps_ratios[$name]+="$rps "
    say "round $round $name: passthrough $pr req, $(awk -v t="$pt" -v r="$pr" -v c="$clk" 'BEGIN { printf "%.1f", r ? 1e6 * t / c / r : 0 }') µs/req; scopegate $sr req, $(awk -v t="$st" -v r="$sr" -v c="$clk" 'BEGIN { printf "%.1f", r ? 1e6 * t / c / r : 0 }') µs/req"
  done
done
printf '%-18s %12s %12s\n' shape "cpu ratio" "req/s ratio"
for shape in "${shapes[@]}"; do
  read -r name _ _ <<<"$shape"
  printf '%-18s %11.2fx %11.2fx\n' "$name" \
    "$(tr ' ' '\n' <<<"${cpu_ratios[$name]}" | grep . | median)" \
    "$(tr ' ' '\n' <<<"${rps_ratios[$name]}" | grep . | median)"
done
