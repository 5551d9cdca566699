//! Signature and claims → [`Identity`], or the precise reason a token is refused; and the
//! verified-token cache that spares repeated tokens the signature check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::errors::ErrorKind;
use serde_json::Value;

use crate::auth::bounded::{BoundedCache, OnEvict, Weighed, bounded};
use crate::auth::claims::{self, Claims};
use crate::auth::identity::{ConditionClaims, Identity, NamedClaims, collect_scopes};
use crate::auth::introspect::Introspector;
use crate::auth::jwks::{KeyStore, MAX_KID_BYTES, VerifyKey};
use crate::auth::token_key::{TokenKey, TokenLookup};
use crate::config::IssuerSettings;
use crate::ground::rejection::{Rejection, TokenError};
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
    /// Its introspection endpoint and cache, when configured.
    pub introspector: Option<Introspector>,
    audiences: Vec<String>,
    leeway: u64,
    scope_claims: Vec<String>,
}

impl IssuerVerifier {
    /// Prepares validation for an issuer whose keys live in `keys`.
    pub fn new(
        config: &IssuerSettings,
        keys: Arc<KeyStore>,
        introspector: Option<Introspector>,
    ) -> IssuerVerifier {
        IssuerVerifier {
            issuer: config.issuer.clone(),
            keys,
            introspector,
            audiences: config.audiences.clone(),
            leeway: config.leeway.as_secs(),
            scope_claims: config.scope_claims.clone(),
        }
    }
}

/// A verified token as kept in the cache.
struct Cached {
    identity: Arc<Identity>,
    issuer: usize,
    key: Arc<VerifyKey>,
    /// `exp` plus leeway: after this the entry is never served.
    valid_until: u64,
    /// The claims the identity kept for the policy's conditions.
    conditions: ConditionClaims,
    /// Approximate bytes of the entry, token included (its cache weight).
    bytes: u64,
}

/// Why a JWS did not verify at once.
enum Failure {
    /// Refused.
    Rejected(Rejection),
    /// Its `kid` is unknown and a refetch of the key set is under way: worth waiting for.
    KeyPending {
        /// Changes when the issuer's next fetch ends.
        fetched: tokio::sync::watch::Receiver<u64>,
        /// The longest wait.
        wait: std::time::Duration,
    },
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Failure {
        Failure::Rejected(rejection)
    }
}

impl Failure {
    fn into_rejection(self) -> Rejection {
        match self {
            Failure::Rejected(rejection) => rejection,
            Failure::KeyPending { .. } => Rejection::InvalidToken(TokenError::UnknownKey),
        }
    }
}

impl Weighed for Cached {
    fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Bytes of a cache entry beyond its strings: the cache slot, the boxed key, the identity's
/// struct, header values and reference counts (measured order of magnitude, rounded up).
const ENTRY_OVERHEAD: u64 = 512;

/// Approximate bytes a cached token and its identity hold.
fn entry_bytes(token: &str, id: &Identity) -> u64 {
    (token.len() + id.approximate_bytes()) as u64 + ENTRY_OVERHEAD
}

/// Verifies bearer tokens against the configured issuers.
pub struct Verifier {
    issuers: Vec<IssuerVerifier>,
    by_iss: HashMap<Arc<str>, usize>,
    /// The issuer opaque tokens are introspected at: the first with introspection.
    opaque_issuer: Option<usize>,
    /// Claims copied into upstream headers.
    claim_names: Vec<Arc<str>>,
    /// Keyed by the whole token: a lookup hashes its signature's end ([`TokenKey`]) and
    /// compares it byte for byte, so a token only ever finds its own entry.
    cache: Option<BoundedCache<TokenKey, Arc<Cached>>>,
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
        let opaque_issuer = issuers.iter().position(|i| i.introspector.is_some());
        Verifier {
            issuers,
            by_iss,
            opaque_issuer,
            claim_names,
            cache,
            metrics,
        }
    }

    /// The configured issuers.
    pub fn issuers(&self) -> &[IssuerVerifier] {
        &self.issuers
    }

    /// The configured name of the issuer whose `iss` is `iss`.
    pub fn issuer_label(&self, iss: &str) -> Option<&str> {
        let index = *self.by_iss.get(iss)?;
        Some(&self.issuers[index].keys.label)
    }

    /// Verifies the JWS `token` without waiting, for a policy whose claim conditions read
    /// no claim: a cached identity when the same token was verified before and its key is
    /// still published, a full verification otherwise. A token signed with a key the set
    /// does not hold yet is refused at once.
    pub fn verify(&self, token: &str) -> Result<Arc<Identity>, Rejection> {
        self.verify_jws(
            token,
            &ConditionClaims::default(),
            crate::ground::clock::unix_now(),
        )
        .map_err(Failure::into_rejection)
    }

    /// Authenticates `token` as the gateway does: a JWS is verified locally (waiting,
    /// bounded, for the refetch its unknown `kid` caused), anything else is introspected at
    /// the first issuer that has introspection. With `introspect_always` the
    /// introspection is uncached (asked every time), and a JWS is also introspected, at
    /// its own issuer. The identity keeps the claims
    /// `conditions` names, for the policy's claim conditions.
    pub async fn authenticate(
        &self,
        token: &str,
        introspect_always: bool,
        conditions: &ConditionClaims,
        now: u64,
    ) -> Result<Arc<Identity>, Rejection> {
        // A token the cache holds verified as a JWS: its shape needs no second look.
        let cached = self.cached(token, conditions, now, Instant::now());
        if cached.is_none() && !crate::auth::token::looks_like_jws(token) {
            // Garbage never costs the authorization server a call.
            crate::auth::token::check_syntax(token)?;
            return match self.opaque_issuer {
                // A route that introspects always asks the server every time, opaque
                // tokens included: a revocation must bite at once, not when the cached
                // answer ages out.
                Some(index) => {
                    self.introspect(index, token, introspect_always, conditions, now)
                        .await
                }
                // No issuer introspects: an opaque token is just malformed.
                None => self
                    .verify_jws(token, conditions, now)
                    .map_err(Failure::into_rejection),
            };
        }
        let verified = match cached {
            Some(identity) => Ok(identity),
            None => self.verify_and_cache(token, conditions, now),
        };
        let identity = match verified {
            Ok(identity) => identity,
            Err(Failure::Rejected(rejection)) => return Err(rejection),
            Err(Failure::KeyPending { mut fetched, wait }) => {
                // A key rotation: the first tokens signed with the new key wait for the
                // refetch they caused instead of being refused while it runs.
                let _span =
                    crate::ops::trace::InternalSpan::start(crate::ops::trace::names::KEY_WAIT);
                let _ = Box::pin(tokio::time::timeout(wait, fetched.changed())).await;
                self.verify_jws(token, conditions, now)
                    .map_err(Failure::into_rejection)?
            }
        };
        if introspect_always {
            let index = self.by_iss[&identity.issuer];
            // A route that demands introspection from an issuer that has none fails
            // closed: the configuration check warns about it.
            if self.issuers[index].introspector.is_none() {
                return Err(Rejection::IntrospectionUnavailable);
            }
            self.introspect(index, token, true, conditions, now).await?;
        }
        Ok(identity)
    }

    /// Asks issuer `index`'s introspection endpoint about `token`.
    async fn introspect(
        &self,
        index: usize,
        token: &str,
        fresh: bool,
        conditions: &ConditionClaims,
        now: u64,
    ) -> Result<Arc<Identity>, Rejection> {
        let issuer = &self.issuers[index];
        let introspector = issuer
            .introspector
            .as_ref()
            .ok_or(Rejection::IntrospectionUnavailable)?;
        let build = |answer: &Claims, exp: u64| {
            let expected = claims::Expected {
                issuer: &issuer.issuer,
                audiences: &issuer.audiences,
                leeway: issuer.leeway,
            };
            claims::check(answer, &expected, now).map_err(Rejection::InvalidToken)?;
            // Cached answers keep the claims the policy read when they were made; after
            // a reload that reads others, a condition on them fails closed until the
            // answer ages out (`cache_max_seconds`).
            self.identity(issuer, answer, exp, conditions, now)
        };
        introspector.introspect(token, fresh, &build).await
    }

    fn verify_jws(
        &self,
        token: &str,
        conditions: &ConditionClaims,
        now: u64,
    ) -> Result<Arc<Identity>, Failure> {
        match self.cached(token, conditions, now, Instant::now()) {
            Some(identity) => Ok(identity),
            None => self.verify_and_cache(token, conditions, now),
        }
    }

    /// The introspection cache's answer for an opaque `token`, when it holds a good one
    /// (see [`Introspector::cached`]); `None` for a JWS or when the answer must be waited
    /// for.
    pub(crate) fn cached_opaque(
        &self,
        token: &str,
        now: u64,
    ) -> Option<Result<Arc<Identity>, Rejection>> {
        let index = self.opaque_issuer?;
        if crate::auth::token::looks_like_jws(token) {
            return None;
        }
        self.issuers[index]
            .introspector
            .as_ref()?
            .cached(token, now)
    }

    /// The identity the verified-token cache holds for `token` while it is still good: before
    /// its expiry, its key still published, made for the claims the policy reads now. A
    /// stale entry is dropped. Misses are counted by `Verifier::verify_and_cache`, so that
    /// an opaque token looked up here first is not counted as one.
    pub(crate) fn cached(
        &self,
        token: &str,
        conditions: &ConditionClaims,
        now: u64,
        arrived: Instant,
    ) -> Option<Arc<Identity>> {
        let cache = self.cache.as_ref()?;
        // Shared, not cloned: one reference count instead of the entry's three.
        let hit = cache.get(&TokenLookup(token))?;
        // After a reload that reads other claims, the entry lacks them: verify again.
        if now <= hit.valid_until
            && hit.conditions == *conditions
            && self.issuers[hit.issuer].keys.holds(&hit.key, arrived)
        {
            self.metrics.token_cache_hit();
            return Some(hit.identity.clone());
        }
        cache.remove(&TokenLookup(token));
        None
    }

    /// A full verification of the JWS `token`, kept in the cache when it passes.
    fn verify_and_cache(
        &self,
        token: &str,
        conditions: &ConditionClaims,
        now: u64,
    ) -> Result<Arc<Identity>, Failure> {
        let Some(cache) = &self.cache else {
            return self
                .verify_uncached(token, conditions, now)
                .map(|c| c.identity);
        };
        self.metrics.token_cache_miss();
        let span = crate::ops::trace::InternalSpan::start(crate::ops::trace::names::VERIFY);
        let verified = self.verify_uncached(token, conditions, now);
        if let (Some(span), Err(Failure::Rejected(rejection))) = (&span, &verified) {
            span.fail(rejection.reason().as_str());
        }
        let verified = verified?;
        let identity = verified.identity.clone();
        cache.insert(TokenKey::new(token), Arc::new(verified));
        Ok(identity)
    }

    fn verify_uncached(
        &self,
        token: &str,
        conditions: &ConditionClaims,
        now: u64,
    ) -> Result<Cached, Failure> {
        crate::auth::token::check_syntax(token)?;
        let invalid = Rejection::InvalidToken;
        let header = crate::auth::jws::decode_header(token).map_err(|e| {
            invalid(match e.kind() {
                ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                    TokenError::DisallowedAlgorithm
                }
                // jsonwebtoken reads `alg` as an enum: `none` and names it does not know
                // fail as JSON, yet they are an algorithm refused, not a malformed token.
                ErrorKind::Json(_) if names_unknown_algorithm(token) => {
                    TokenError::DisallowedAlgorithm
                }
                _ => TokenError::Malformed,
            })
        })?;
        if header.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_BYTES) {
            // Before any lookup or memo: a key id is short, and a long one costs memory.
            return Err(invalid(TokenError::Malformed).into());
        }
        if header.crit.is_some() {
            // We implement no JWS extension, so any listed one must be refused.
            return Err(invalid(TokenError::UnsupportedCrit).into());
        }
        if let Some(typ) = &header.typ
            && !ACCEPTED_TYPES.iter().any(|t| typ.eq_ignore_ascii_case(t))
        {
            return Err(invalid(TokenError::BadType).into());
        }
        // The issuer names whose keys and settings apply; the signature check that follows
        // is what makes this claim, and the others, trustworthy.
        let claims = claims::decode(token).ok_or(invalid(TokenError::BadClaims))?;
        let iss = match claims.get("iss") {
            Some(Value::String(iss)) => iss.as_str(),
            _ => return Err(invalid(TokenError::BadClaims).into()),
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
                    // Subscribed before asking, so a refetch that ends in between is seen.
                    let fetched = issuer.keys.fetches();
                    return Err(if issuer.keys.unknown_kid(kid) {
                        Failure::KeyPending {
                            fetched,
                            wait: issuer.keys.unknown_kid_wait(),
                        }
                    } else {
                        invalid(TokenError::UnknownKey).into()
                    });
                }
            },
            None => set
                .without_kid(header.alg)
                .ok_or(invalid(TokenError::UnknownKey))?,
        };
        // The algorithm must be one the key and the allowlist permit: the header only picks
        // among those, it never widens them.
        if !key.algorithms.contains(&header.alg) {
            return Err(invalid(TokenError::DisallowedAlgorithm).into());
        }
        key.signature.verify(token, header.alg).map_err(invalid)?;
        let expected = claims::Expected {
            issuer: &issuer.issuer,
            audiences: &issuer.audiences,
            leeway: issuer.leeway,
        };
        let exp = claims::check(&claims, &expected, now).map_err(invalid)?;
        let identity = self.identity(issuer, &claims, exp, conditions, now)?;
        Ok(Cached {
            bytes: entry_bytes(token, &identity),
            identity: Arc::new(identity),
            issuer: index,
            key: key.clone(),
            valid_until: exp.saturating_add(issuer.leeway),
            conditions: conditions.clone(),
        })
    }

    /// The identity verified claims (of a JWT, or of an introspection answer) make.
    fn identity(
        &self,
        issuer: &IssuerVerifier,
        claims: &Claims,
        exp: u64,
        conditions: &ConditionClaims,
        now: u64,
    ) -> Result<Identity, Rejection> {
        let named = NamedClaims::read(claims, now, issuer.leeway)?;
        let mut mapped = Vec::with_capacity(self.claim_names.len());
        for name in &self.claim_names {
            if let Some(value) = claims.get(&**name).and_then(claim_text) {
                mapped.push((name.clone(), value));
            }
        }
        let confirmation =
            crate::auth::cnf::from_claims(claims).map_err(Rejection::InvalidToken)?;
        // Everything forwarded must be a valid header value; a token that smuggles control
        // characters into a claim is refused rather than forwarded mangled.
        Identity::new(
            named.subject,
            issuer.issuer.clone(),
            named.client_id,
            collect_scopes(claims, &issuer.scope_claims),
            mapped,
            exp,
        )
        .map(|identity| {
            identity
                .with_authentication(named.acr, named.auth_time)
                .with_conditions(conditions.pick(claims))
                .with_confirmation(confirmation)
        })
        .map_err(|_| Rejection::InvalidToken(TokenError::BadClaims))
    }
}

/// Whether the token's header is a JSON object whose `alg` is a string naming no
/// algorithm jsonwebtoken knows (`none`, `ES256K`, …). Only asked of refused headers.
fn names_unknown_algorithm(token: &str) -> bool {
    use base64::Engine as _;
    let head = token.split('.').next().unwrap_or_default();
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head) else {
        return false;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(header)) => match header.get("alg") {
            Some(Value::String(alg)) => crate::auth::jws::algorithm_named(alg).is_none(),
            _ => false,
        },
        _ => false,
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
