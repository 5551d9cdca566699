#!/usr/bin/env bash
# benches/instructions.sh: user-space instructions per request, scopegate against a plain
# pingora passthrough, under callgrind: a measure that does not move with the machine's noise.
#
#   benches/instructions.sh   setup (valgrind), release build, tokens, then each target in turn
#
# Each target is one proxy process run under
#   valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no
# and driven by examples/bench_client.rs, which sends an exact number of requests
# (`GET /timesheets/4711`, CONNS keep-alive connections, one request in flight on each) and
# fails unless every answer is 2xx. After WARMUP requests (caches warm, connections to the
# upstream pooled), instrumentation is switched on (`callgrind_control -i on`), REQUESTS
# requests are sent, and after SETTLE seconds (the last access lines written) the counts are
# dumped (`callgrind_control -d`) and instrumentation switched off. Every thread's count is
# divided by the number of requests the upstream answered in that window (examples/
# bench_upstream.rs counts them; it must equal REQUESTS), and printed per thread and in total.
# Targets:
#   passthrough    examples/passthrough.rs: pingora, no authorization, same settings and
#                  allocator (mimalloc) as scopegate, one worker thread, and scopegate's
#                  default upstream timeouts set on the peer as scopegate sets them
#   passthrough-bare the same without upstream timeouts (--timeouts false): pingora's bare
#                  defaults, the baseline of the measurements before 2026-12-07 14:00 UTC;
#                  reported beside the others, never the baseline
#   one-token      scopegate at its defaults (threads: 1, access log on, info, text), one
#                  RS256 token on every request (verified-token cache warm)
#   one-token-json the same with log_format: json (deploy/scopegate.yaml's)
#   one-token-preserve one-token with upstream_header_case: preserve: the identity headers
#                  written through pingora's RequestHeader, whose case-preserving second map
#                  grows insert by insert (it has no reserve)
#   20k-tokens     TOKENS distinct RS256 tokens cycled, cache warm (the warm-up sends each once)
#   opaque-token   introspection (RFC 7662) configured, one opaque token, introspection cache
#                  warm (bench_upstream answers the one introspection call; cache_max_seconds
#                  is raised so that the cached result outlives the run)
#   dpop           a DPoP-bound RS256 token (cnf.jkt) under the DPoP scheme, a fresh ES256
#                  proof per request (minted by the client, not measured): the token cache
#                  hit plus a proof check, which no cache can spare
#   traced         one-token with OpenTelemetry tracing on, every trace sampled (exported to
#                  a closed port: spans are made and queued, the export fails off-thread)
#   traced-10      the same with sampling_ratio: 0.1
#   h2-passthrough the passthrough accepting HTTP/2 with prior knowledge (--h2c true)
#   h2-one-token   scopegate with http2.h2c: true, one token; both h2 targets are driven by
#                  h2load (Debian's nghttp2-client), exactly COUNT requests over CONNS
#                  connections with 10 streams each, and compared with each other
# The upstream and the client run natively on core 1, the proxy under valgrind on core 0.
# Only the proxy's instructions are counted, and the count does not depend on the machine's
# load; it moves by well under 1 % between runs (timers and epoll batching differ a little).
#
# Environment: REQUESTS per target (20000), WARMUP requests (2000; the 20k-tokens target
# sends each token once instead), CONNS (4), TOKENS (20000), SETTLE seconds (2),
# TARGETS (all of the above, space-separated), PORT_BASE (18300), SKIP_SETUP=1, SKIP_BUILD=1,
# SCOPEGATE_BIN (another scopegate binary to measure instead of this checkout's release
# build), BEFORE_BIN (a second scopegate binary, e.g. an older commit's, measured in the
# same run beside SCOPEGATE_BIN: the table shows both and the difference; it must accept
# each target's configuration, so leave one-token-preserve out for a build older than
# upstream_header_case), PROFILES (a
# directory to keep the callgrind files in, for callgrind_annotate), CARGO_TARGET_DIR as
# cargo reads it.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

REQUESTS=${REQUESTS:-20000}
WARMUP=${WARMUP:-2000}
CONNS=${CONNS:-4}
TOKENS=${TOKENS:-20000}
SETTLE=${SETTLE:-2}
TARGETS=${TARGETS:-passthrough passthrough-bare one-token one-token-json one-token-preserve 20k-tokens opaque-token dpop traced traced-10 h2-passthrough h2-one-token}
PORT_BASE=${PORT_BASE:-18300}
url_path=/timesheets/4711
public_url=https://api.exampleco.com

SCRIPT=instructions.sh STOP_TENTHS=300 WAIT_TENTHS=1200
# shellcheck source=benches/support/processes.sh
. benches/support/processes.sh

# --- 1. tools -------------------------------------------------------------------------
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  scripts/setup --bench
fi
for tool in valgrind callgrind_control taskset curl ss h2load; do
  command -v "$tool" >/dev/null || { say "instructions.sh: $tool is missing"; exit 1; }
done

# --- 2. build ---------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked --bin scopegate \
    --example passthrough --example bench_upstream --example mint_tokens --example bench_client
fi
bin=${CARGO_TARGET_DIR:-$repo/target}/release
scopegate_bin=${SCOPEGATE_BIN:-$bin/scopegate}
for b in "$scopegate_bin" ${BEFORE_BIN:+"$BEFORE_BIN"} "$bin/examples/passthrough" \
  "$bin/examples/bench_upstream" "$bin/examples/mint_tokens" "$bin/examples/bench_client"; do
  [ -x "$b" ] || { say "instructions.sh: $b is not built"; exit 1; }
done
for t in $TARGETS; do
  case "$t" in
    passthrough | passthrough-bare | one-token | one-token-json | one-token-preserve | 20k-tokens | opaque-token | dpop | h2-passthrough | h2-one-token | traced | traced-10) ;;
    *) say "instructions.sh: unknown target $t"; exit 2 ;;
  esac
done

upstream_port=$PORT_BASE
proxy_port=$((PORT_BASE + 1))
admin_port=$((PORT_BASE + 2))
for port in "$upstream_port" "$proxy_port" "$admin_port"; do
  if ss -Hltn "sport = :$port" | grep -q .; then
    say "instructions.sh: port $port is in use (set PORT_BASE)"; exit 1
  fi
done
if [ "$(nproc)" -ge 2 ]; then proxy_core=0; load_core=1; else proxy_core=0; load_core=0; fi

served() { curl -s "http://127.0.0.1:$upstream_port/.bench/served"; }

# --- 3. tokens, JWKS, upstream ------------------------------------------------------------
"$bin/examples/mint_tokens" "$TOKENS" "$work/tokens.txt" "$work/jwks.json" --dpop-bound "$work/dpop-token.txt"
one_token=$(head -n1 "$work/tokens.txt")
head -n1 "$work/tokens.txt" >"$work/one-token.txt"
# An opaque token: 32 random bytes, base64url, as reference-token servers issue them.
head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$work/opaque-token.txt"
echo bench-introspection-secret >"$work/introspection-secret"

taskset -c "$load_core" "$bin/examples/bench_upstream" "127.0.0.1:$upstream_port" "$work/jwks.json" \
  2>"$work/upstream.log" &
pids+=($!)
wait_http "http://127.0.0.1:$upstream_port/.well-known/jwks.json"

scopegate_config() { # scopegate_config TARGET: the configuration file for that target
  local format=text issuer_extra="" top_extra=""
  case "$1" in
    one-token-json) format=json ;;
    opaque-token) issuer_extra="    introspection:
      endpoint: http://127.0.0.1:$upstream_port/introspect
      client_id: scopegate
      client_secret_file: $work/introspection-secret
      cache_max_seconds: 86400" ;;
    one-token-preserve) top_extra="upstream_header_case: preserve" ;;
    h2-one-token) top_extra="http2:
  h2c: true" ;;
    # Tracing on, every trace sampled or one in ten, exported to a port nobody listens on:
    # the request path's cost of making spans (export runs on its own thread; its
    # failures are counted and cost the requests nothing).
    traced | traced-10) top_extra="tracing:
  endpoint: http://127.0.0.1:9
  sampling_ratio: $([ "$1" = traced ] && echo 1.0 || echo 0.1)" ;;
    dpop) issuer_extra="    dpop: allowed"
      top_extra="dpop:
  public_url: $public_url" ;;
  esac
  cat <<EOF
version: 1
listen: 127.0.0.1:$proxy_port
admin_listen: 127.0.0.1:$admin_port
upstream: http://127.0.0.1:$upstream_port
policy: $repo/policies/timesheets.yaml
threads: 1
log_format: $format
upgrade_socket: $work/scopegate.sock
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:$upstream_port/.well-known/jwks.json
    algorithms: [RS256]
$issuer_extra
$top_extra
EOF
}

# The client's arguments for a target: which tokens, which scheme.
client_args() {
  case "$1" in
    passthrough | passthrough-bare | one-token | one-token-json | one-token-preserve | traced | traced-10) echo --tokens "$work/one-token.txt" ;;
    20k-tokens) echo --tokens "$work/tokens.txt" ;;
    opaque-token) echo --tokens "$work/opaque-token.txt" ;;
    dpop) echo --tokens "$work/dpop-token.txt" --dpop "$public_url$url_path" ;;
  esac
}
client() { # client TARGET COUNT
  if [ "${1#h2-}" != "$1" ]; then
    # HTTP/2 with prior knowledge: h2load sends exactly COUNT requests, 10 streams at a time
    # on each connection.
    taskset -c "$load_core" h2load -n "$2" -c "$CONNS" -m 10 -H "Authorization: Bearer $one_token" \
      "http://127.0.0.1:$proxy_port$url_path" >"$work/client.out" 2>&1 &&
      grep -q "succeeded, 0 failed, 0 errored" "$work/client.out" &&
      grep -Eq "status codes: $2 2xx" "$work/client.out" ||
      { say "instructions.sh: h2load failed:"; cat "$work/client.out" >&2; return 1; }
    return 0
  fi
  # shellcheck disable=SC2046 # word splitting of client_args is meant (no spaces in $work)
  taskset -c "$load_core" "$bin/examples/bench_client" "127.0.0.1:$proxy_port" "$2" \
    --conns "$CONNS" --path "$url_path" $(client_args "$1") >"$work/client.out" 2>&1 ||
    { say "instructions.sh: the client failed:"; cat "$work/client.out" >&2; return 1; }
}

# --- 4. measure ---------------------------------------------------------------------------
# measure TARGET BUILD BINARY: one proxy under callgrind; appends
# "target build thread role instructions requests" lines to $results.
is_passthrough() { case "$1" in passthrough | passthrough-bare | h2-passthrough) return 0 ;; esac; return 1; }
results=$work/results.txt
: >"$results"
measure() {
  local target=$1 build=$2 binary=$3 name="$1.$2" pid warm s0 s1 n f th
  local vg=(valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no
    --callgrind-out-file="$work/$name.cg.%p")
  if is_passthrough "$target"; then
    local h2c=false timeouts=true
    [ "$target" = h2-passthrough ] && h2c=true
    [ "$target" = passthrough-bare ] && timeouts=false
    taskset -c "$proxy_core" "${vg[@]}" "$binary" "127.0.0.1:$proxy_port" "127.0.0.1:$upstream_port" \
      --threads 1 --h2c "$h2c" --timeouts "$timeouts" >"$work/$name.log" 2>&1 &
  else
    scopegate_config "$target" >"$work/$name.yaml"
    env -u RUST_LOG taskset -c "$proxy_core" "${vg[@]}" "$binary" run -c "$work/$name.yaml" \
      >"$work/$name.log" 2>&1 &
  fi
  pid=$!
  pids+=("$pid")
  if is_passthrough "$target"; then
    wait_http "http://127.0.0.1:$proxy_port$url_path"
  else
    wait_http "http://127.0.0.1:$admin_port/readyz"
  fi
  warm=$WARMUP
  [ "$target" = 20k-tokens ] && warm=$TOKENS
  say "  $target ($build): warm-up, $warm requests"
  client "$target" "$warm" || { tail -n 20 "$work/$name.log" >&2; exit 1; }
  callgrind_control -i on "$pid" >/dev/null 2>&1
  s0=$(served)
  say "  $target ($build): $REQUESTS requests, instrumented"
  client "$target" "$REQUESTS" || { tail -n 20 "$work/$name.log" >&2; exit 1; }
  sleep "$SETTLE"
  callgrind_control -d measured "$pid" >/dev/null 2>&1
  callgrind_control -i off "$pid" >/dev/null 2>&1
  s1=$(served)
  n=$((s1 - s0))
  if [ "$n" != "$REQUESTS" ]; then
    say "instructions.sh: $target ($build): the upstream answered $n requests, not $REQUESTS"; exit 1
  fi
  stop "$pid"
  # One file per thread for the dump: NAME.cg.PID.1-TT (part 1, thread TT).
  for f in "$work/$name.cg.$pid".1-*; do
    [ -e "$f" ] || { say "instructions.sh: $target ($build): callgrind wrote no dump"; exit 1; }
    local thread=${f##*-} ir role=other
    ir=$(awk '$1 == "summary:" { print $2; exit } $1 == "totals:" { t = $2 } END { if (t != "") print t }' "$f" | head -n1)
    if grep -q 'access_log' "$f" && ! grep -q 'ProxyHttp' "$f"; then role=log-writer; fi
    echo "$target $build $thread $role ${ir:-0} $n" >>"$results"
  done
  # The request thread: the one that counted the most (it runs the proxy's phases).
  th=$(awk -v t="$target" -v b="$build" '$1 == t && $2 == b && $5 + 0 > max { max = $5 + 0; th = $3 }
    END { print th }' "$results")
  awk -v t="$target" -v b="$build" -v th="$th" '{ if ($1 == t && $2 == b && $3 == th) $4 = "request"; print }' \
    "$results" >"$results.new"
  mv "$results.new" "$results"
  if [ -n "${PROFILES:-}" ]; then
    mkdir -p "$PROFILES"
    cp "$work/$name.cg.$pid".1-* "$PROFILES/"
  fi
}

builds=(after)
declare -A bin_of=([after]=$scopegate_bin)
if [ -n "${BEFORE_BIN:-}" ]; then builds=(before after); bin_of[before]=$BEFORE_BIN; fi
say "instructions.sh: $REQUESTS requests per target after $WARMUP of warm-up, $CONNS connections; targets: $TARGETS"
started=$(date +%s)
for target in $TARGETS; do
  if is_passthrough "$target"; then
    measure "$target" passthrough "$bin/examples/passthrough"
  else
    for build in "${builds[@]}"; do measure "$target" "$build" "${bin_of[$build]}"; done
  fi
done

# --- 5. report --------------------------------------------------------------------------
echo
echo "scopegate instructions per request: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock examples 2>/dev/null || echo ' + uncommitted changes'), $(nproc) x $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(valgrind --version)"
echo "after: ${SCOPEGATE_BIN:-the release build of this checkout}${BEFORE_BIN:+; before: $BEFORE_BIN}"
echo "callgrind, instrumentation on for $REQUESTS requests per target after $WARMUP of warm-up, $CONNS keep-alive connections; user-space instructions (Ir) per request; $(($(date +%s) - started)) s"
echo
# Per thread, every thread that counted anything.
echo "per thread (valgrind thread number: role, instructions per request):"
awk '{ printf "  %-15s %-11s thread %s %-10s %10.1f\n", $1, $2, $3, $4, $5 / $6 }' "$results"
echo
pass=$(awk '$1 == "passthrough" { s += $5 / $6 } END { printf "%.0f", s }' "$results")
pass_h2=$(awk '$1 == "h2-passthrough" { s += $5 / $6 } END { printf "%.0f", s }' "$results")
printf '| %-15s | %-11s | %14s | %10s | %13s | %9s | %16s |\n' target build 'request thread' 'log writer' 'other threads' total 'over passthrough'
echo '|-----------------|-------------|---------------:|-----------:|--------------:|----------:|-----------------:|'
awk -v pass="$pass" -v pass_h2="$pass_h2" '
  { k = $1 " " $2; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    v = $5 / $6; tot[k] += v
    if ($4 == "request") req[k] += v; else if ($4 == "log-writer") log_[k] += v; else oth[k] += v }
  function fmt(x) { return sprintf("%.1fk", x / 1000) }
  END { for (i = 1; i <= n; i++) { k = order[i]; split(k, p, " ")
      base = (p[1] ~ /^h2-/) ? pass_h2 : pass
      over = (p[2] == "passthrough" || base == 0) ? "-" : sprintf("%+.1fk", (tot[k] - base) / 1000)
      printf "| %-15s | %-11s | %14s | %10s | %13s | %9s | %16s |\n", p[1], p[2], fmt(req[k]), (k in log_) ? fmt(log_[k]) : "-", fmt(oth[k]), fmt(tot[k]), over } }' "$results"
if [ -n "${BEFORE_BIN:-}" ]; then
  echo
  echo "after − before, total per request:"
  awk '{ v = $5 / $6; if ($2 == "before") b[$1] += v; else if ($2 == "after") a[$1] += v }
    END { for (t in a) if (t in b) printf "  %-15s %+.1fk (%+.1f %%)\n", t, (a[t] - b[t]) / 1000, 100 * (a[t] - b[t]) / b[t] }' "$results" | sort
fi
