//! Server-provided nonces (RFC 9449 §8) that need no shared store: a nonce is the HMAC of a
//! time-window counter under a secret every replica reads from the same file. Any replica
//! computes the same nonce for the same window, so a nonce one replica handed out is
//! accepted by all; the current and the previous window's nonces are accepted, so a nonce
//! lives between one and two windows.
//!
//! A nonce bounds how long a proof can be used, not how often: it is the same for every
//! client in its window. Single use across replicas needs the shared store (`dpop::claim`).

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;

/// Domain separation: the secret may be shared with nothing else, but a nonce is never
/// a MAC of any other message.
const LABEL: &[u8] = b"scopegate dpop nonce v1\0";

/// Issues and checks nonces.
pub struct Nonces {
    key: hmac::Key,
    window: u64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces under `secret` for windows of `window`.
    pub fn new(secret: &[u8], window: Duration) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            window: window.as_secs().max(1),
        }
    }

    /// The nonce of the window that holds `now`.
    pub fn current(&self, now: u64) -> String {
        self.for_window(now / self.window)
    }

    /// The nonce of window number `counter` (`now / window_seconds`).
    pub fn for_window(&self, counter: u64) -> String {
        let mut message = LABEL.to_vec();
        message.extend_from_slice(&counter.to_be_bytes());
        let tag = hmac::sign(&self.key, &message);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `nonce` is the current or the previous window's at `now`.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let counter = now / self.window;
        [Some(counter), counter.checked_sub(1)]
            .into_iter()
            .flatten()
            .any(|c| {
                let mut message = LABEL.to_vec();
                message.extend_from_slice(&c.to_be_bytes());
                // Constant-time comparison.
                hmac::verify(&self.key, &message, &tag).is_ok()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn replicas_sharing_the_secret_accept_each_others_nonces() {
        let (a, b) = (
            Nonces::new(SECRET, Duration::from_secs(60)),
            Nonces::new(SECRET, Duration::from_secs(60)),
        );
        let nonce = a.current(6_000);
        assert!(b.accepts(&nonce, 6_000));
        assert!(
            b.accepts(&nonce, 6_059 + 60),
            "the next window still accepts it"
        );
        assert!(
            !b.accepts(&nonce, 6_000 + 120),
            "two windows on it is stale"
        );
        assert!(
            !b.accepts(&nonce, 5_999),
            "a nonce from the future is not one"
        );
        let other = Nonces::new(
            b"another secret, another deployment",
            Duration::from_secs(60),
        );
        assert!(!other.accepts(&nonce, 6_000));
        for garbage in ["", "!!", "AAAA"] {
            assert!(!a.accepts(garbage, 6_000));
        }
        assert_eq!(a.current(6_000), a.for_window(100));
    }
}
