//! The wall clock, read once per request and handed down: every check of one request
//! (`exp`, `nbf`, `iat`, `auth_time`, a DPoP proof's `iat`, a nonce's window) sees the
//! same second.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 for a clock set before it).
pub fn unix_now() -> u64 {
    unix_time().as_secs()
}

/// Time since the Unix epoch (zero for a clock set before it).
pub fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}
