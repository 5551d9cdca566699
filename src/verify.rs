//! Signature and claims → [`Identity`], or the precise reason a token is refused; and the
//! verified-token cache that spares repeated tokens the signature check.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use serde_json::Value;

use crate::config::IssuerConfig;
use crate::error::{Rejection, TokenError};
use crate::identity::{Identity, collect_scopes};
use crate::jwks::{KeyStore, VerifyKey};
use crate::metrics::Metrics;

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
    pub fn new(config: &IssuerConfig, keys: Arc<KeyStore>) -> IssuerVerifier {
        IssuerVerifier {
            issuer: Arc::from(config.issuer.as_str()),
            keys,
            audiences: config.audiences.clone(),
            leeway: config.leeway_seconds,
            scope_claims: config.scope_claims.clone(),
        }
    }

    /// RFC 7519 §4.1 on a token whose signature verified: `exp`, `iss` and `aud` are
    /// required; `exp`, `nbf` and `iat` are compared with the leeway. Returns `exp`.
    fn check_claims(&self, claims: &Claims, now: u64) -> Result<u64, TokenError> {
        let number = |name: &str| match claims.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or(TokenError::BadClaims),
        };
        let exp = number("exp")?.ok_or(TokenError::BadClaims)?;
        if now > exp.saturating_add(self.leeway) {
            return Err(TokenError::Expired);
        }
        for not_before in [number("nbf")?, number("iat")?].into_iter().flatten() {
            if not_before > now + self.leeway {
                return Err(TokenError::NotYetValid);
            }
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if **iss == *self.issuer => {}
            Some(Value::String(_)) => return Err(TokenError::UnknownIssuer),
            _ => return Err(TokenError::BadClaims),
        }
        let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => {
                let mut any = false;
                for aud in auds {
                    any |= accepted(aud.as_str().ok_or(TokenError::BadClaims)?);
                }
                any
            }
            _ => return Err(TokenError::BadClaims),
        };
        if audience_ok {
            Ok(exp)
        } else {
            Err(TokenError::BadAudience)
        }
    }
}

/// A token's claims, as JSON.
type Claims = serde_json::Map<String, Value>;

/// A verified token as kept in the cache.
#[derive(Clone)]
struct Cached {
    identity: Arc<Identity>,
    issuer: usize,
    key: Arc<VerifyKey>,
    /// `exp` plus leeway: after this the entry is never served.
    valid_until: u64,
}

/// Verifies bearer tokens against the configured issuers.
pub struct Verifier {
    issuers: Vec<IssuerVerifier>,
    by_iss: HashMap<Arc<str>, usize>,
    /// Claims copied into upstream headers.
    claim_names: Vec<Arc<str>>,
    /// Keyed by the whole token: a lookup hashes it and compares it byte for byte, so a
    /// token only ever finds its own entry.
    cache: Option<quick_cache::sync::Cache<Box<str>, Cached>>,
    metrics: Metrics,
}

impl Verifier {
    /// A verifier for `issuers`; `cache_entries` of `None` turns the token cache off.
    pub fn new(
        issuers: Vec<IssuerVerifier>,
        claim_names: Vec<Arc<str>>,
        cache_entries: Option<u64>,
        metrics: Metrics,
    ) -> Verifier {
        let by_iss = issuers
            .iter()
            .enumerate()
            .map(|(i, v)| (v.issuer.clone(), i))
            .collect();
        // Bounded in entries, and so in memory: a token is at most `token.max_bytes` long.
        // Expired entries are never served (every hit checks `exp`) and age out under the
        // cache's eviction (S3-FIFO) like any entry that is not hit again.
        let cache = cache_entries.map(|n| quick_cache::sync::Cache::new(n as usize));
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
                self.metrics.token_cache_hits.inc();
                return Ok(hit.identity);
            }
            cache.remove(token);
        }
        self.metrics.token_cache_misses.inc();
        let verified = self.verify_uncached(token)?;
        cache.insert(Box::from(token), verified.clone());
        Ok(verified.identity)
    }

    fn verify_uncached(&self, token: &str) -> Result<Cached, Rejection> {
        crate::token::check_syntax(token)?;
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
        let claims = decode_claims(token).ok_or(invalid(TokenError::BadClaims))?;
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
        let exp = issuer.check_claims(&claims, now()).map_err(invalid)?;
        let identity = self.identity(issuer, &claims, exp)?;
        Ok(Cached {
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

/// The payload's claims, before the signature is checked.
fn decode_claims(token: &str) -> Option<Claims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> IssuerVerifier {
        let config = crate::config::Config::parse(
            "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers: [{issuer: https://tenant/, audiences: [api, other], jwks_uri: http://127.0.0.1:1/jwks}]
",
            "c.yaml",
        )
        .unwrap();
        let keys = Arc::new(KeyStore::new(&config.issuers[0]));
        IssuerVerifier::new(&config.issuers[0], keys)
    }

    fn check(claims: Value) -> Result<u64, TokenError> {
        let Value::Object(claims) = claims else {
            panic!("claims are an object")
        };
        issuer().check_claims(&claims, 1_000_000)
    }

    #[test]
    fn registered_claims_are_checked_with_the_leeway() {
        let ok = |exp: u64| serde_json::json!({"iss": "https://tenant/", "aud": "api", "exp": exp});
        assert_eq!(check(ok(1_000_100)), Ok(1_000_100));
        // 30 s leeway on both sides.
        assert_eq!(check(ok(999_970)), Ok(999_970));
        assert_eq!(check(ok(999_969)), Err(TokenError::Expired));
        let mut early = ok(1_000_100);
        early["nbf"] = 1_000_031.into();
        assert_eq!(check(early.clone()), Err(TokenError::NotYetValid));
        early["nbf"] = 1_000_030.into();
        assert!(check(early.clone()).is_ok());
        early["iat"] = 1_000_031.into();
        assert_eq!(check(early), Err(TokenError::NotYetValid));
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let base =
            serde_json::json!({"iss": "https://tenant/", "aud": ["x", "other"], "exp": 1_000_100});
        assert!(check(base.clone()).is_ok());
        let mut wrong = base.clone();
        wrong["aud"] = serde_json::json!(["x", "y"]);
        assert_eq!(check(wrong), Err(TokenError::BadAudience));
        let mut wrong = base.clone();
        wrong["iss"] = "https://tenant".into();
        assert_eq!(check(wrong), Err(TokenError::UnknownIssuer));
    }

    #[test]
    fn missing_or_mistyped_claims_are_bad_claims() {
        let base = serde_json::json!({"iss": "https://tenant/", "aud": "api", "exp": 1_000_100});
        for (name, value) in [
            ("exp", Value::Null),
            ("exp", 1_000_100.5.into()),
            ("exp", "1000100".into()),
            ("nbf", "0".into()),
            ("iat", (-1).into()),
            ("aud", Value::Null),
            ("aud", serde_json::json!(["api", 7])),
            ("aud", 7.into()),
            ("iss", Value::Null),
            ("iss", serde_json::json!(["https://tenant/"])),
        ] {
            let mut claims = base.clone();
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
            assert_eq!(check(claims), Err(TokenError::BadClaims), "{name}: {value}");
        }
    }
}
