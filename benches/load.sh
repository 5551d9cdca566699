#!/usr/bin/env bash
# benches/load.sh: scopegate against a plain pingora passthrough, on loopback, in one run.
#
#   benches/load.sh      setup, release build, tokens, the four targets, memory footprint
#
# Every proxy runs pinned to core 0 (taskset); wrk and the upstream share core 1. The
# proxies run side by side and are measured in turn, round after round (ROUNDS rounds of
# DURATION seconds per target, the order rotating), so that a machine that slows down or
# speeds up during the run moves every target alike; each ratio is taken within a round and
# the table shows medians. Targets, all `GET /timesheets/4711` at CONNS connections:
#   passthrough    examples/passthrough.rs: pingora with no authorization, same settings
#   one-token      scopegate at its defaults (access log on, info, text), the same RS256
#                  token on every request (token cache warm)
#   one-token-json the same with log_format: json (the example configuration)
#   one-token-warn the same at RUST_LOG=warn: no access line (what earlier runs measured)
#   opaque-token   scopegate at its defaults with introspection (RFC 7662) configured, one
#                  opaque token on every request (introspection cache warm; the upstream
#                  example answers the introspection calls, one per cache_max_seconds)
#   20k-tokens     scopegate at its defaults, 20 000 distinct RS256 tokens cycled (cache on;
#                  warm after the warm-up, so this measures cache hits over a large working set)
#   20k-no-cache   the same tokens, token_cache.enabled: false (a signature check each)
#   verify-bound   the passthrough plus an RS256 signature check of each of the 20k tokens
#                  (scopegate's own check, key parsed once) and nothing else: the bound the
#                  cache-off target is measured against
# Then examples/footprint: resident memory with 10 000 routes and 100 000 cached tokens.
#
# scopegate's stdout (its access log) goes to a file, as a container runtime's does. The
# access line's cost is one-token against one-token-warn in the same round: for the whole
# process, and on the request thread (the process less its access-log writer thread, whose
# CPU time is read from /proc per thread).
#
# Environment: ROUNDS (8), DURATION seconds per target per round (2), WARMUP (3), CONNS (32),
# TOKENS (20000), PORT_BASE (18000), SKIP_SETUP=1, SKIP_BUILD=1, SKIP_FOOTPRINT=1,
# SCOPEGATE_BIN (another scopegate binary to measure, e.g. an older build), PRELOAD (a
# library preloaded into every proxy alike, e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2),
# CARGO_TARGET_DIR as cargo reads it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-32}
TOKENS=${TOKENS:-20000}
PORT_BASE=${PORT_BASE:-18000}
url_path=/timesheets/4711

SCRIPT=load.sh
# shellcheck source=benches/support/processes.sh
. benches/support/processes.sh

# --- 1. tools -------------------------------------------------------------------------
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  scripts/setup --bench
fi
for tool in wrk taskset curl ss; do
  command -v "$tool" >/dev/null || { say "load.sh: $tool is missing"; exit 1; }
done

# --- 2. build ---------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked --bin scopegate \
    --example passthrough --example bench_upstream --example mint_tokens --example footprint
fi
bin=${CARGO_TARGET_DIR:-$repo/target}/release
scopegate_bin=${SCOPEGATE_BIN:-$bin/scopegate}
for b in "$scopegate_bin" "$bin/examples/passthrough" "$bin/examples/bench_upstream" \
  "$bin/examples/mint_tokens" "$bin/examples/footprint"; do
  [ -x "$b" ] || { say "load.sh: $b is not built"; exit 1; }
done

upstream_port=$PORT_BASE
for port in $(seq "$PORT_BASE" $((PORT_BASE + 9))) $(seq $((PORT_BASE + 91)) $((PORT_BASE + 96))); do
  if ss -Hltn "sport = :$port" | grep -q .; then
    say "load.sh: port $port is in use (set PORT_BASE)"; exit 1
  fi
done

ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then proxy_core=0; load_core=1; else proxy_core=0; load_core=0; fi
clk=$(getconf CLK_TCK)
load_before=$(cut -d' ' -f1 /proc/loadavg)
# The 1-minute load average lags (it stays high for a minute after a previous run), so
# whether the machine is busy right now is measured: both cores over two seconds.
busy_before=$(
  { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
    sleep 2
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; } |
    awk 'NR == 1 { b = $1; t = $2 } NR == 2 { printf "%.0f", 100 * ($1 - b) / ($2 - t) }'
)

proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
writer_ticks() { # writer_ticks PID: CPU ticks of the process's access-log writer thread (0 if none)
  local f t=0
  for f in /proc/"$1"/task/*; do
    [ "$(cat "$f/comm" 2>/dev/null)" = scopegate-acces ] && t=$((t + $(awk '{print $14 + $15}' "$f/stat")))
  done
  echo "$t"
}
core_ticks() { # busy, total and stolen ticks of one core (steal: the hypervisor ran something else)
  awk -v c="cpu$1" '$1 == c { busy = $2 + $3 + $4 + $7 + $8; print busy, busy + $5 + $6 + $9, $9 }' /proc/stat
}
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# --- 3. tokens, JWKS, upstream, proxies ---------------------------------------------------
"$bin/examples/mint_tokens" "$TOKENS" "$work/tokens.txt" "$work/jwks.json"
one_token=$(head -n1 "$work/tokens.txt")
auth="Authorization: Bearer $one_token"
# An opaque token: 32 random bytes, base64url, as reference-token servers issue them.
opaque_auth="Authorization: Bearer $(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"

taskset -c "$load_core" "$bin/examples/bench_upstream" "127.0.0.1:$upstream_port" "$work/jwks.json" \
  2>"$work/upstream.log" &
pids+=($!)
wait_http "http://127.0.0.1:$upstream_port/.well-known/jwks.json"

declare -A port_of pid_of admin_of
start_passthrough() { # start_passthrough NAME PORT [passthrough options]
  local name=$1 port=$2
  shift 2
  LD_PRELOAD=${PRELOAD:-} taskset -c "$proxy_core" "$bin/examples/passthrough" "127.0.0.1:$port" \
    "127.0.0.1:$upstream_port" "$@" 2>"$work/$name.log" &
  pids+=($!); pid_of[$name]=$!; port_of[$name]=$port
  wait_http "http://127.0.0.1:$port$url_path" "$auth"
}
start_scopegate() { # start_scopegate NAME INDEX CACHE_ENABLED RUST_LOG|default LOG_FORMAT [ISSUER_EXTRA]
  local name=$1 port=$((PORT_BASE + 1 + $2)) admin=$((PORT_BASE + 90 + $2))
  cat >"$work/$name.yaml" <<EOF
version: 1
listen: 127.0.0.1:$port
admin_listen: 127.0.0.1:$admin
upstream: http://127.0.0.1:$upstream_port
policy: $repo/policies/timesheets.yaml
threads: 1
log_format: $5
upgrade_socket: $work/$name.sock
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:$upstream_port/.well-known/jwks.json
    algorithms: [RS256]
${6:-}
token_cache:
  enabled: $3
EOF
  # `default`: RUST_LOG unset, as users run it (info).
  local env=(env -u RUST_LOG)
  [ "$4" = default ] || env=(env RUST_LOG="$4")
  LD_PRELOAD=${PRELOAD:-} "${env[@]}" taskset -c "$proxy_core" "$scopegate_bin" run -c "$work/$name.yaml" \
    >"$work/$name.log" 2>&1 &
  pids+=($!); pid_of[$name]=$!; port_of[$name]=$port; admin_of[$name]=$admin
  wait_http "http://127.0.0.1:$admin/readyz"
  wait_http "http://127.0.0.1:$port$url_path" "$auth" ||
    { say "load.sh: $name refuses a valid token"; tail -n 20 "$work/$name.log" >&2; exit 1; }
}
# One process per scopegate target, so that one target's cache contents never weigh on
# another's; the idle ones wait on core 0 and cost nothing measurable ("other" column).
start_passthrough passthrough $((PORT_BASE + 1))
start_passthrough bound $((PORT_BASE + 9)) --verify-rs256 "$work/jwks.json"
start_scopegate onetoken 1 true default text
start_scopegate onetokenjson 2 true default json
start_scopegate onetokenwarn 3 true warn text
start_scopegate cache 4 true default text
start_scopegate nocache 5 false default text
echo bench-introspection-secret >"$work/introspection-secret"
start_scopegate opaque 6 true default text "    introspection:
      endpoint: http://127.0.0.1:$upstream_port/introspect
      client_id: scopegate
      client_secret_file: $work/introspection-secret"
wait_http "http://127.0.0.1:${port_of[opaque]}$url_path" "$opaque_auth" ||
  { say "load.sh: opaque refuses the opaque token"; tail -n 20 "$work/opaque.log" >&2; exit 1; }
targets=(passthrough one-token one-token-json one-token-warn opaque-token 20k-tokens 20k-no-cache verify-bound)
declare -A proc_of=([passthrough]=passthrough [one-token]=onetoken [one-token-json]=onetokenjson
  [one-token-warn]=onetokenwarn [opaque-token]=opaque [20k-tokens]=cache [20k-no-cache]=nocache
  [verify-bound]=bound)
declare -A mode_of=([passthrough]=one [one-token]=one [one-token-json]=one [one-token-warn]=one
  [opaque-token]=opaque [20k-tokens]=tokens [20k-no-cache]=tokens [verify-bound]=tokens)
idle_rss=$(rss_mib "${pid_of[cache]}")

cache_counter() { # cache_counter PROC hit|miss
  curl -s "http://127.0.0.1:${admin_of[$1]}/metrics" |
    awk -v r="$2" '$1 == "scopegate_token_cache_requests_total{result=\"" r "\"}" { print $2 + 0 }'
}

# One wrk run against a target; appends "target round rps p50_us p99_us cpu_us_per_req
# cpu_pct other_pct load_core_pct steal_pct writer_us_per_req" to results.
results=$work/results.txt
run_wrk() { # run_wrk TARGET SECONDS [--latency]
  local url="http://127.0.0.1:${port_of[${proc_of[$1]}]}$url_path"
  local cmd=(taskset -c "$load_core" wrk -t1 -c"$CONNS" -d"$2s" ${3:-})
  if [ "${mode_of[$1]}" = one ]; then
    "${cmd[@]}" -H "$auth" -s benches/lua/report.lua "$url"
  elif [ "${mode_of[$1]}" = opaque ]; then
    "${cmd[@]}" -H "$opaque_auth" -s benches/lua/report.lua "$url"
  else
    "${cmd[@]}" -s benches/lua/tokens.lua "$url" -- "$work/tokens.txt"
  fi
}
measure() { # measure TARGET ROUND
  local target=$1 round=$2 pid=${pid_of[${proc_of[$1]}]}
  local t0 c0 l0 t1 c1 l1 w0 w1 out line h0=0 m0=0 h1=0 m1=0
  if [ "$target" = 20k-tokens ]; then h0=$(cache_counter cache hit); m0=$(cache_counter cache miss); fi
  w0=$(writer_ticks "$pid")
  t0=$(proc_ticks "$pid"); c0=$(core_ticks "$proxy_core"); l0=$(core_ticks "$load_core")
  out=$(run_wrk "$target" "$DURATION" --latency)
  t1=$(proc_ticks "$pid"); c1=$(core_ticks "$proxy_core"); l1=$(core_ticks "$load_core")
  w1=$(writer_ticks "$pid")
  if [ "$target" = 20k-tokens ]; then
    h1=$(cache_counter cache hit); m1=$(cache_counter cache miss)
    echo "$round $((h1 - h0)) $((m1 - m0))" >>"$work/cache.txt"
  fi
  line=$(grep '^RESULT' <<<"$out") || { say "load.sh: wrk printed no result:"; say "$out"; exit 1; }
  field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" $line"; }
  if [ "$(field errors)" != 0 ] || [ "$(field status_errors)" != 0 ]; then
    say "load.sh: $target: $(field errors) socket errors, $(field status_errors) non-2xx answers: the run is invalid"
    exit 1
  fi
  awk -v name="$target" -v round="$round" -v r="$(field requests)" -v d="$(field duration_us)" \
    -v p50="$(field p50_us)" -v p99="$(field p99_us)" -v t="$((t1 - t0))" -v clk="$clk" \
    -v c0="$c0" -v c1="$c1" -v l0="$l0" -v l1="$l1" -v w="$((w1 - w0))" 'BEGIN {
      split(c0, a, " "); split(c1, b, " "); split(l0, x, " "); split(l1, y, " ")
      cpu = t / clk; secs = d / 1e6
      other = (b[2] - a[2]) > 0 ? 100 * (b[1] - a[1] - t) / (b[2] - a[2]) : 0
      if (other < 0) other = 0
      load_pct = (y[2] - x[2]) > 0 ? 100 * (y[1] - x[1]) / (y[2] - x[2]) : 0
      steal = (b[2] - a[2]) > 0 ? 100 * (b[3] - a[3]) / (b[2] - a[2]) : 0
      printf "%s %d %.0f %d %d %.1f %.0f %.0f %.0f %.0f %.2f\n", name, round, r / secs, p50, p99, 1e6 * cpu / r, 100 * cpu / secs, other, load_pct, steal, 1e6 * w / clk / r
    }' | tee -a "$results" | awk '{ printf "  round %d %-19s %7d req/s  p50 %.2f ms  p99 %.2f ms  %5.1f µs CPU/req (log writer %.2f)\n", $2, $1, $3, $4 / 1000, $5 / 1000, $6, $11 }' >&2
}

# --- 4. measure -------------------------------------------------------------------------
say "load.sh: $ncpu cores, ${busy_before}% busy before the run; warm-up ${WARMUP}s per target, then $ROUNDS rounds of ${DURATION}s per target at $CONNS connections"
for target in "${targets[@]}"; do run_wrk "$target" "$WARMUP" >/dev/null; done
n=${#targets[@]}
for round in $(seq "$ROUNDS"); do
  for k in $(seq 0 $((n - 1))); do
    measure "${targets[$(((k + round - 1) % n))]}" "$round"
  done
done
loaded_rss=$(rss_mib "${pid_of[cache]}")

# --- 5. report --------------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$results"; }
per_pair() { # per_pair TARGET OTHER EXPR: EXPR of (a: TARGET, b: OTHER) columns, one line per round
  awk -v t="$1" -v u="$2" '$1 == t { x[$2] = $0 } $1 == u { p[$2] = $0 }
    END { for (r in x) if (r in p) { split(x[r], a, " "); split(p[r], b, " "); print '"$3"' } }' "$results"
}
per_round() { per_pair "$1" passthrough "$2"; } # per_round TARGET EXPR: against the passthrough
base=$(col passthrough 3 | median)
spread=$(col passthrough 3 | sort -g | awk -v m="$base" 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f", 100 * (hi - lo) / m }')

echo
echo "scopegate load test: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes'), $ncpu x $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)${SCOPEGATE_BIN:+, scopegate binary $SCOPEGATE_BIN}"
echo "wrk -t1 -c$CONNS on core $load_core with the upstream, proxies on core $proxy_core${PRELOAD:+, LD_PRELOAD=$PRELOAD}; medians of $ROUNDS rounds of ${DURATION}s per target (ratio: within each round, median [min-max])"
echo
printf '| %-19s | %7s | %-18s | %6s | %6s | %10s | %10s | %9s | %13s | %13s | %11s |\n' \
  target 'req/s' 'ratio' 'p50 ms' 'p99 ms' 'CPU µs/req' 'log writer' 'proxy CPU' "other, core $proxy_core" "steal, core $proxy_core" "core $load_core busy"
echo '|---------------------|--------:|--------------------|-------:|-------:|-----------:|-----------:|----------:|--------------:|--------------:|------------:|'
for target in "${targets[@]}"; do
  ratios=$(per_round "$target" 'a[3] / b[3]' | sort -g)
  printf '| %-19s | %7.0f | %-18s | %6.2f | %6.2f | %10.1f | %10.2f | %8.0f%% | %12.0f%% | %12.0f%% | %10.0f%% |\n' "$target" \
    "$(col "$target" 3 | median)" \
    "$(printf '%.2fx [%.2f-%.2f]' "$(median <<<"$ratios")" "$(head -n1 <<<"$ratios")" "$(tail -n1 <<<"$ratios")")" \
    "$(col "$target" 4 | median | awk '{ print $1 / 1000 }')" "$(col "$target" 5 | median | awk '{ print $1 / 1000 }')" \
    "$(col "$target" 6 | median)" "$(col "$target" 11 | median)" "$(col "$target" 7 | median)" \
    "$(col "$target" 8 | sort -g | tail -n1)" "$(col "$target" 10 | sort -g | tail -n1)" "$(col "$target" 9 | sort -g | tail -n1)"
done
echo
p99_diff=$(per_round one-token '(a[5] - b[5]) / 1000' | median)
read -r hits misses < <(awk '{ h += $2; m += $3 } END { print h + 0, m + 0 }' "$work/cache.txt")
echo "20k-tokens token cache in the measured windows: $hits hits, $misses misses"
echo "scopegate (cache on) VmRSS: $idle_rss MiB at start, $loaded_rss MiB after the runs (20 000 tokens cached)"
echo
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "met" : "MISSED" }'; }
r_b=$(per_round one-token 'a[3] / b[3]' | median)
r_json=$(per_round one-token-json 'a[3] / b[3]' | median)
r_warn=$(per_round one-token-warn 'a[3] / b[3]' | median)
# The access line: CPU per request against one-token-warn in the same round, for the whole
# process and for the request thread (the process less the log writer thread).
line_text=$(per_pair one-token one-token-warn 'a[6] - b[6]' | median)
line_json=$(per_pair one-token-json one-token-warn 'a[6] - b[6]' | median)
thread_text=$(per_pair one-token one-token-warn '(a[6] - a[11]) - (b[6] - b[11])' | median)
thread_json=$(per_pair one-token-json one-token-warn '(a[6] - a[11]) - (b[6] - b[11])' | median)
r_c=$(per_round 20k-tokens 'a[3] / b[3]' | median)
r_o=$(per_round opaque-token 'a[3] / b[3]' | median)
r_d=$(per_round 20k-no-cache 'a[3] / b[3]' | median)
r_bound=$(per_round verify-bound 'a[3] / b[3]' | median)
# The cache-off target against the bound, round by round: req/s of 20k-no-cache over
# verify-bound's in the same round.
r_d_bound=$(awk '$1 == "20k-no-cache" { x[$2] = $3 } $1 == "verify-bound" { b[$2] = $3 }
  END { for (r in x) if (r in b) print x[r] / b[r] }' "$results" | median)
printf 'targets (DESIGN.md, Operating envelope), median ratio to the passthrough in the same round:\n'
printf '  one token, defaults (access log, text)  %.2fx  (>= 0.90x)   %s\n' "$r_b" "$(verdict "$r_b" 0.90 '>=')"
printf '  one token, log_format: json            %.2fx  (>= 0.90x)   %s\n' "$r_json" "$(verdict "$r_json" 0.90 '>=')"
printf '  one token, RUST_LOG=warn (no line)     %.2fx  (0.89-0.92x before the access log moved off the request thread)\n' "$r_warn"
printf '  the access line, CPU per request over one-token-warn, median of the rounds:\n'
printf '    text: %.2f µs for the process, %.2f µs on the request thread  (<= 2 µs)   %s\n' "$line_text" "$thread_text" "$(verdict "$thread_text" 2 '<=')"
printf '    json: %.2f µs for the process, %.2f µs on the request thread  (<= 2 µs)   %s\n' "$line_json" "$thread_json" "$(verdict "$thread_json" 2 '<=')"
printf '  opaque token, introspection cache warm %.2fx  (>= 0.85x)   %s\n' "$r_o" "$(verdict "$r_o" 0.85 '>=')"
printf '  20k tokens, defaults, cache on         %.2fx  (>= 0.85x)   %s\n' "$r_c" "$(verdict "$r_c" 0.85 '>=')"
printf '  20k tokens, defaults, cache off        %.2fx  (>= 0.55x)   %s\n' "$r_d" "$(verdict "$r_d" 0.55 '>=')"
printf '    the verification bound on this machine (passthrough + signature check): %.2fx;\n' "$r_bound"
printf '    cache off against it   %.2fx  (>= 0.90x, "within 10%% of the verification bound")   %s\n' \
  "$r_d_bound" "$(verdict "$r_d_bound" 0.90 '>=')"
printf '  one-token p99 - passthrough p99: %.2f ms  (<= 0.5 ms)   %s\n' "$p99_diff" "$(verdict "$p99_diff" 0.5 '<=')"

quiet=true
if [ "$busy_before" -gt 10 ]; then
  echo "WARNING: the cores were ${busy_before}% busy before the run (load average $load_before): other work was running"; quiet=false
fi
if awk -v s="$spread" 'BEGIN { exit !(s > 10) }'; then
  echo "WARNING: the passthrough varied by ${spread}% between rounds (> 10%): the machine was not steady"; quiet=false
fi
while read -r target round _ _ _ _ _ other loadpct steal _; do
  if [ "$steal" -gt 5 ]; then
    echo "WARNING: $target round $round: the hypervisor took ${steal}% of core $proxy_core (steal)"; quiet=false
  fi
  if [ "$other" -gt 5 ]; then
    echo "WARNING: $target round $round: other processes used ${other}% of core $proxy_core"; quiet=false
  fi
  if [ "$loadpct" -gt 95 ]; then
    echo "WARNING: $target round $round: core $load_core (wrk + upstream) was ${loadpct}% busy: the load generator may be the limit"; quiet=false
  fi
done <"$results"
$quiet && echo "the machine looked quiet: ${busy_before}% busy before the run, passthrough within ${spread}% across rounds"

# --- 6. memory with a large policy and a full token cache --------------------------------
if [ "${SKIP_FOOTPRINT:-0}" != 1 ]; then
  echo
  "$bin/examples/footprint" 10000 100000
fi
