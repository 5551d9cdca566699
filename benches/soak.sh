#!/usr/bin/env bash
# benches/soak.sh: the soak, long, on a release build. Loopback only; not run in CI.
#
#   benches/soak.sh [SECONDS]     default 600 (ten minutes)
#
# It runs tests/it/soak.rs (the test suite runs the same soak for 12 s): four keep-alive
# clients send a mix of valid tokens the gateway has seen, tokens it has never seen, public
# requests, tokens without the route's scope, tampered signatures and unknown key ids, while
# a fault cycle (one step a second) reloads the policy, publishes a new key and then signs
# with it, writes a broken policy, takes the JWKS server down for a second, stops and
# restarts the upstream, retires the old key and samples the gateway's memory.
#
# It prints one report line:
#   lost                  valid requests not answered 200 while the upstream was up
#   wrong answers         refusals of the wrong kind (401 for 403, 200 for a tampered token...)
#   5xx without cause     any 5xx outside an injected outage
#   RSS MiB [...]         the gateway's resident memory at the start, once per fault cycle
#                         (about 7 s), and at the end
# and fails if any of the first three is not zero. Memory grows while the verified-token
# cache fills towards its bound (token_cache.max_bytes, 64 MiB) and must then stay flat.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-600}
scripts/setup --test
SCOPEGATE_SOAK_SECONDS=$seconds cargo test --release --locked --test it soak -- \
  --nocapture --test-threads 1 2>&1 | grep -E '^soak:|^  [A-Z]|panicked|test result'
