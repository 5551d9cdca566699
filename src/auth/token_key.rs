//! The verified-token cache's key: a signed token, hashed by its length and its last bytes.
//!
//! A JWS ends in its signature, and the cache only ever holds tokens whose signature
//! verified: no one can make two cached tokens share their last bytes without the issuer's
//! key, so hashing those bytes spreads entries as well as hashing the whole token does, for
//! a tenth of the work on a 700-byte token. A lookup still compares the whole token, so a
//! token only ever finds its own entry; a forged token that copies a cached one's tail only
//! lands in that entry's bucket and misses. (The introspection cache does not do this: it
//! holds answers for tokens anyone can choose.)

use std::hash::{Hash, Hasher};

use quick_cache::Equivalent;

/// Bytes of a token's end that are hashed: 24 bytes of signature, more than any collision
/// needs.
const TAIL: usize = 32;

/// A cached token.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenKey(Box<str>);

impl TokenKey {
    /// The key for `token`.
    pub fn new(token: &str) -> TokenKey {
        TokenKey(Box::from(token))
    }
}

/// A token looked up in the cache: hashed and compared as its [`TokenKey`] would be.
#[derive(Debug)]
pub struct TokenLookup<'a>(pub &'a str);

fn hash_tail<H: Hasher>(token: &str, state: &mut H) {
    let bytes = token.as_bytes();
    state.write_usize(bytes.len());
    state.write(&bytes[bytes.len().saturating_sub(TAIL)..]);
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_tail(&self.0, state);
    }
}

impl Hash for TokenLookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_tail(self.0, state);
    }
}

impl Equivalent<TokenKey> for TokenLookup<'_> {
    fn equivalent(&self, key: &TokenKey) -> bool {
        *self.0 == *key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn a_lookup_hashes_as_its_key_and_matches_only_the_same_token() {
        let hasher = quick_cache::DefaultHashBuilder::default();
        let token =
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi1oZXJlLWFuZC1tb3Jl";
        let key = TokenKey::new(token);
        assert_eq!(hasher.hash_one(&key), hasher.hash_one(TokenLookup(token)));
        assert!(TokenLookup(token).equivalent(&key));
        // The same tail with another payload: same bucket, never the same entry.
        let forged = token.replace("eyJzdWIiOiJhIn0", "eyJzdWIiOiJiIn0");
        assert_eq!(hasher.hash_one(&key), hasher.hash_one(TokenLookup(&forged)));
        assert!(!TokenLookup(&forged).equivalent(&key));
        // Another signature: another hash.
        let other = format!("{}X", &token[..token.len() - 1]);
        assert_ne!(hasher.hash_one(&key), hasher.hash_one(TokenLookup(&other)));
    }
}
