//! Signature and claims → [`Identity`], or the precise reason a token is refused; and the
//! verified-token cache that spares repeated tokens the signature check.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use serde_json::Value;

use crate::auth::bounded::{BoundedCache, OnEvict, Weighed, bounded};
use crate::auth::claims::{self, Claims};
use crate::auth::identity::{Identity, collect_scopes};
use crate::auth::jwks::{KeyStore, MAX_KID_BYTES, VerifyKey};
use crate::config::IssuerSettings;
use crate::decision::rejection::{Rejection, TokenError};
use crate::ops::metrics::Metrics;

/// Token types accepted in `typ` (RFC 9068 §2.1 and RFC 7519 §5.1); any other value marks
/// another kind of token (an ID token, a logout token, …).
const ACCEPTED_TYPES: [&str; 3] = ["at+jwt", "application/at+jwt", "jwt"];

/// What the verifier needs to know about one issuer.
pub struct IssuerVerifier {
    /// `iss`, exactly as configured.
    pub issuer: Arc<str>,
    /// Its keys.
    pub keys: Arc<KeyStore>,
    audiences: Vec<String>,
    leeway: u64,
    scope_claims: Vec<String>,
}

impl IssuerVerifier {
    /// Prepares validation for an issuer whose keys live in `keys`.
    pub fn new(config: &IssuerSettings, keys: Arc<KeyStore>) -> IssuerVerifier {
        IssuerVerifier {
            issuer: config.issuer.clone(),
            keys,
            audiences: config.audiences.clone(),
            leeway: config.leeway.as_secs(),
            scope_claims: config.scope_claims.clone(),
        }
    }
}

/// A verified token as kept in the cache.
#[derive(Clone)]
struct Cached {
    identity: Arc<Identity>,
    issuer: usize,
    key: Arc<VerifyKey>,
    /// `exp` plus leeway: after this the entry is never served.
    valid_until: u64,
    /// Approximate bytes of the entry, token included (its cache weight).
    bytes: u64,
}

impl Weighed for Cached {
    fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Bytes of a cache entry beyond its strings: the cache slot, the boxed key, the identity's
/// struct, header values and reference counts (measured order of magnitude, rounded up).
const ENTRY_OVERHEAD: u64 = 512;

/// Approximate bytes a cached token and its identity hold: the token, and each identity
/// string twice (the field and the shared header-value buffer).
fn entry_bytes(token: &str, id: &Identity) -> u64 {
    let strings = id.subject.as_ref().map_or(0, String::len)
        + id.client_id.as_ref().map_or(0, String::len)
        + id.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
        + id.claims.iter().map(|(_, v)| v.len() + 40).sum::<usize>();
    (token.len() + 2 * strings) as u64 + ENTRY_OVERHEAD
}

/// Verifies bearer tokens against the configured issuers.
pub struct Verifier {
    issuers: Vec<IssuerVerifier>,
    by_iss: HashMap<Arc<str>, usize>,
    /// Claims copied into upstream headers.
    claim_names: Vec<Arc<str>>,
    /// Keyed by the whole token: a lookup hashes it and compares it byte for byte, so a
    /// token only ever finds its own entry.
    cache: Option<BoundedCache<Box<str>, Cached>>,
    metrics: Metrics,
}

impl Verifier {
    /// A verifier for `issuers`; `cache_entries` of `None` turns the token cache off, which
    /// otherwise holds at most that many tokens and about `cache_bytes` bytes.
    pub fn new(
        issuers: Vec<IssuerVerifier>,
        claim_names: Vec<Arc<str>>,
        cache_entries: Option<usize>,
        cache_bytes: u64,
        metrics: Metrics,
    ) -> Verifier {
        let by_iss = issuers
            .iter()
            .enumerate()
            .map(|(i, v)| (v.issuer.clone(), i))
            .collect();
        // Bounded in bytes and in entries: 100 000 entries of 7 KB tokens would be 3 GB.
        // Expired entries are never served (every hit checks `exp`) and age out under the
        // cache's eviction (S3-FIFO) like any entry that is not hit again.
        let cache = cache_entries.map(|entries| {
            let counted = metrics.clone();
            let on_evict: OnEvict = Arc::new(move || counted.token_cache_evicted());
            bounded(entries, cache_bytes, Some(on_evict))
        });
        Verifier {
            issuers,
            by_iss,
            claim_names,
            cache,
            metrics,
        }
    }

    /// The configured issuers.
    pub fn issuers(&self) -> &[IssuerVerifier] {
        &self.issuers
    }

    /// Verifies `token`: a cached identity when the same token was verified before and its
    /// key is still published, a full verification otherwise.
    pub fn verify(&self, token: &str) -> Result<Arc<Identity>, Rejection> {
        let Some(cache) = &self.cache else {
            return self.verify_uncached(token).map(|c| c.identity);
        };
        if let Some(hit) = cache.get(token) {
            let issuer = &self.issuers[hit.issuer];
            let key_current = issuer.keys.keys().is_some_and(|set| set.contains(&hit.key));
            if now() <= hit.valid_until && key_current {
                self.metrics.token_cache_hit();
                return Ok(hit.identity);
            }
            cache.remove(token);
        }
        self.metrics.token_cache_miss();
        let verified = self.verify_uncached(token)?;
        cache.insert(Box::from(token), verified.clone());
        Ok(verified.identity)
    }

    fn verify_uncached(&self, token: &str) -> Result<Cached, Rejection> {
        crate::auth::token::check_syntax(token)?;
        let invalid = Rejection::InvalidToken;
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            invalid(match e.kind() {
                // `alg: none` and unknown names land here.
                ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                    TokenError::DisallowedAlgorithm
                }
                _ => TokenError::Malformed,
            })
        })?;
        if header.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_BYTES) {
            // Before any lookup or memo: a key id is short, and a long one costs memory.
            return Err(invalid(TokenError::Malformed));
        }
        if header.crit.is_some() {
            // We implement no JWS extension, so any listed one must be refused.
            return Err(invalid(TokenError::UnsupportedCrit));
        }
        if let Some(typ) = &header.typ
            && !ACCEPTED_TYPES.iter().any(|t| typ.eq_ignore_ascii_case(t))
        {
            return Err(invalid(TokenError::BadType));
        }
        // The issuer names whose keys and settings apply; the signature check that follows
        // is what makes this claim, and the others, trustworthy.
        let claims = claims::decode(token).ok_or(invalid(TokenError::BadClaims))?;
        let iss = match claims.get("iss") {
            Some(Value::String(iss)) => iss.as_str(),
            _ => return Err(invalid(TokenError::BadClaims)),
        };
        let index = *self
            .by_iss
            .get(iss)
            .ok_or(invalid(TokenError::UnknownIssuer))?;
        let issuer = &self.issuers[index];
        let set = issuer.keys.keys().ok_or(Rejection::KeysUnavailable)?;
        let key = match &header.kid {
            Some(kid) => match set.get(kid) {
                Some(k) => k,
                None => {
                    issuer.keys.unknown_kid(kid);
                    return Err(invalid(TokenError::UnknownKey));
                }
            },
            None => set
                .without_kid(header.alg)
                .ok_or(invalid(TokenError::UnknownKey))?,
        };
        // The algorithm must be one the key and the allowlist permit: the header only picks
        // among those, it never widens them.
        if !key.algorithms.contains(&header.alg) {
            return Err(invalid(TokenError::DisallowedAlgorithm));
        }
        key.signature.verify(token, header.alg).map_err(invalid)?;
        let expected = claims::Expected {
            issuer: &issuer.issuer,
            audiences: &issuer.audiences,
            leeway: issuer.leeway,
        };
        let exp = claims::check(&claims, &expected, now()).map_err(invalid)?;
        let identity = self.identity(issuer, &claims, exp)?;
        Ok(Cached {
            bytes: entry_bytes(token, &identity),
            identity: Arc::new(identity),
            issuer: index,
            key: key.clone(),
            valid_until: exp.saturating_add(issuer.leeway),
        })
    }

    fn identity(
        &self,
        issuer: &IssuerVerifier,
        claims: &Claims,
        exp: u64,
    ) -> Result<Identity, Rejection> {
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let mut mapped = Vec::with_capacity(self.claim_names.len());
        for name in &self.claim_names {
            if let Some(value) = claims.get(&**name).and_then(claim_text) {
                mapped.push((name.clone(), value));
            }
        }
        // Everything forwarded must be a valid header value; a token that smuggles control
        // characters into a claim is refused rather than forwarded mangled.
        Identity::new(
            text("sub"),
            issuer.issuer.clone(),
            text("client_id").or_else(|| text("azp")),
            collect_scopes(claims, &issuer.scope_claims),
            mapped,
            exp,
        )
        .map_err(|_| Rejection::InvalidToken(TokenError::BadClaims))
    }
}

/// A claim as header text: strings as they are, arrays of strings comma-joined, other
/// values as compact JSON.
fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.iter().all(|i| i.is_string()) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Some(other.to_string()),
    }
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}
