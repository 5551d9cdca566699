#!/usr/bin/env bash
# benches/upstream/measure.sh: what a change proposed to a pingora crate would save, measured
# with benches/instructions.sh on a build that carries it, beside this checkout's own build.
#
#   benches/upstream/measure.sh [PATCH]   (default: pingora-timeout-last-slot.patch)
#
# The patch is written against pingora's repository (paths like `pingora-timeout/src/...`).
# The script copies the patched crate out of cargo's registry (the version Cargo.lock
# pins), applies the patch there, and builds a scratch copy of this checkout (a git worktree
# of HEAD) whose Cargo.toml adds `[patch.crates-io]` for it, into a target folder of its own.
# Then it runs benches/instructions.sh (TARGETS, REQUESTS as it reads them; by default the
# passthrough, the passthrough without timeouts and one token, 5 000 requests) twice: on
# this checkout's release build and on the patched one. Nothing here changes what scopegate
# ships: the patch is a proposal for pingora, and the build with it is thrown away.
#
# Environment: SKIP_SETUP=1 (valgrind is installed: scripts/setup --bench), SKIP_BUILD=1
# (this checkout's release build is current), TARGETS, REQUESTS,
# KEEP=DIR (keep the scratch copy and its build there, to measure again without rebuilding).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
patch=$(realpath "${1:-benches/upstream/pingora-timeout-last-slot.patch}")
export TARGETS=${TARGETS:-passthrough passthrough-bare one-token}
export REQUESTS=${REQUESTS:-5000}

say() { printf '%s\n' "$*" >&2; }

# The crate the patch touches, and the version this checkout locks.
crate=$(sed -n 's|^--- a/\([^/]*\)/.*|\1|p' "$patch" | head -n1)
[ -n "$crate" ] || { say "measure.sh: $patch names no crate"; exit 1; }
version=$(awk -v c="$crate" '$1 == "name" && $3 == "\"" c "\"" { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
[ -n "$version" ] || { say "measure.sh: Cargo.lock has no $crate"; exit 1; }
cargo fetch --locked >/dev/null
src=$(cargo metadata --locked --format-version 1 |
  python3 -c 'import json, sys; c, v = sys.argv[1:]; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == c and p["version"] == v))' \
    "$crate" "$version")
src=$(dirname "$src")

scratch=${KEEP:-$(mktemp -d /tmp/scopegate-upstream.XXXXXX)}
if [ -z "${KEEP:-}" ]; then trap 'git -C "$repo" worktree remove --force "$scratch/scopegate" 2>/dev/null; rm -rf "$scratch"' EXIT; fi
if [ ! -d "$scratch/scopegate" ]; then
  mkdir -p "$scratch"
  cp -r "$src" "$scratch/$crate"
  chmod -R u+w "$scratch/$crate"
  (cd "$scratch" && git apply -p1 "$patch")
  git worktree add --quiet --detach "$scratch/scopegate" HEAD
  printf '\n[patch.crates-io]\n%s = { path = "%s" }\n' "$crate" "$scratch/$crate" >>"$scratch/scopegate/Cargo.toml"
fi
say "measure.sh: $crate $version with $(basename "$patch"), built in $scratch"

if [ "${SKIP_SETUP:-0}" != 1 ]; then
  scripts/setup --bench
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked --bin scopegate --example passthrough \
    --example bench_upstream --example mint_tokens --example bench_client
fi
(cd "$scratch/scopegate" && cargo build --release --bin scopegate --example passthrough \
  --example bench_upstream --example mint_tokens --example bench_client)

say "measure.sh: this checkout"
SKIP_SETUP=1 SKIP_BUILD=1 benches/instructions.sh | grep '^|'
say "measure.sh: with the patch"
SKIP_SETUP=1 SKIP_BUILD=1 "$scratch/scopegate/benches/instructions.sh" | grep '^|'
