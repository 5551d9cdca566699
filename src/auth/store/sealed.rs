//! Introspection answers as the store holds them: encrypted (AES-256-GCM) under a key
//! derived from the token, and bound to the entry's key. A reader of the store learns
//! nothing of an answer without its token, and a writer without the token cannot make an
//! entry that opens: a forged or swapped entry is just a miss.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

/// Domain separation from the entry's key, which is also a hash of the token.
const LABEL: &[u8] = b"scopegate introspection answer key v1\0";

fn key(token: &str) -> LessSafeKey {
    let mut hasher = Sha256::new();
    hasher.update(LABEL);
    hasher.update(token.as_bytes());
    let bytes: [u8; 32] = hasher.finalize().into();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte key"))
}

/// `plain` encrypted for `token`, bound to `aad` (the entry's key hash): nonce ‖ ciphertext.
pub fn seal(token: &str, aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).ok()?;
    let mut out = plain.to_vec();
    key(token)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out,
        )
        .ok()?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&out);
    Some(sealed)
}

/// The plain text of `sealed`, if it was sealed for `token` and `aad`.
pub fn open(token: &str, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = key(token)
        .open_in_place(nonce, Aad::from(aad), &mut body)
        .ok()?;
    Some(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_opens_only_with_its_token_and_key() {
        let sealed = seal("opaque-alice", b"k", br#"{"active":true}"#).unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"active"));
        assert_eq!(
            open("opaque-alice", b"k", &sealed).unwrap(),
            br#"{"active":true}"#
        );
        assert_eq!(open("opaque-bob", b"k", &sealed), None);
        assert_eq!(open("opaque-alice", b"other", &sealed), None);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(open("opaque-alice", b"k", &tampered), None);
        assert_eq!(open("opaque-alice", b"k", b"short"), None);
    }
}
