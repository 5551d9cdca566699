-- wrk script for the fixed-request targets: no per-request work, only a machine-readable
-- summary line for benches/load.sh (latency in microseconds). tokens.lua loads it for done().
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d errors=%d status_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
