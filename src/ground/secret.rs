//! A secret the gateway holds (an HMAC key, a client secret, the DPoP nonce key): readable
//! by the code that uses it, never by a log line.

use std::fmt;

/// Secret bytes. `Debug` and `Display` print `<redacted>`, so a `{:?}` of any settings
/// value that holds one cannot leak it; only [`Secret::expose`] gives the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into().into_boxed_slice())
    }

    /// The bytes, for the one place that signs, verifies or authenticates with them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text (a client secret is sent as text); `None` when not UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Its length in bytes: what checks of its strength may read.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_bytes() {
        let secret = Secret::new(b"hunter2-hunter2".to_vec());
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(secret.expose(), b"hunter2-hunter2");
    }
}
