//! Token introspection (RFC 7662): an opaque token (or a JWT on a route that asks for it)
//! is checked by asking the authorization server, and the answer cached.
//!
//! - The cache is keyed by the whole token (a lookup compares it byte for byte) and
//!   bounded in bytes. An active answer is kept until the token's `exp` or
//!   `cache_max`, whichever comes first, so a revocation takes effect within `cache_max`;
//!   an inactive one for `inactive_cache`.
//! - Concurrent requests with the same uncached token make one call: the first holds the
//!   cache's placeholder, the others wait for its answer (single-flight).
//! - The authorization server down, slow or answering garbage: cached answers keep
//!   working; an uncached token gets 503 with `Retry-After` after at most the timeout.
//!   Nothing unverified is forwarded.
//! - With a shared store, a replica that misses its own cache reads the store before
//!   calling, and writes what a call taught it, for as long as it would cache it itself:
//!   one call per token per cache period for the whole fleet. Entries are keyed by a hash
//!   of the issuer and token and encrypted under a key derived from the token
//!   ([`crate::auth::store::sealed`]). A store that fails is passed over: the
//!   authorization server is asked, as without a store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::claims::Claims;
use super::identity::Identity;
use super::jwks::Endpoints;
use super::store::{Store, StoreKey, sealed};
use crate::config::{ClientAuthMethod, IntrospectionSettings};
use crate::ground::clock::unix_now;
use crate::ground::{Rejection, TokenError};
use crate::ops::metrics::{IntrospectionResult, Metrics, StoreFallback};

/// Largest introspection answer read; an answer is a small JSON object.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// An answer as cached.
#[derive(Clone)]
enum Answer {
    /// Active, with the identity it makes, until `until`.
    Active {
        identity: Arc<Identity>,
        until: Instant,
    },
    /// Not active, remembered until `until`.
    Inactive { until: Instant },
}

impl Answer {
    fn until(&self) -> Instant {
        match self {
            Answer::Active { until, .. } | Answer::Inactive { until } => *until,
        }
    }
}

/// Weighs a cache entry in bytes: the token, the identity's strings and a fixed overhead
/// for the entry, its `Arc`s and the table slot.
#[derive(Clone)]
struct ByteWeight;

impl quick_cache::Weighter<String, Answer> for ByteWeight {
    fn weight(&self, token: &String, answer: &Answer) -> u64 {
        let identity = match answer {
            Answer::Active { identity, .. } => identity.approximate_bytes(),
            Answer::Inactive { .. } => 0,
        };
        (token.len() + identity + 160) as u64
    }
}

/// Builds the identity from an active answer's claims; the issuer's own rules (scope
/// claims, mapped claims, audiences) are the verifier's.
pub type IdentityFrom<'a> = &'a (dyn Fn(&Claims, u64) -> Result<Identity, Rejection> + Sync);

/// One issuer's introspection client and cache.
pub struct Introspector {
    label: String,
    issuer: Arc<str>,
    /// The configured endpoint; `None`: the one discovery found.
    endpoint: Option<Arc<String>>,
    discovered: Arc<Endpoints>,
    settings: IntrospectionSettings,
    client: reqwest::Client,
    cache: quick_cache::sync::Cache<String, Answer, ByteWeight>,
    metrics: Metrics,
    /// The store replicas share answers through, when configured.
    shared: Option<Store>,
}

/// An answer as the shared store keeps it (encrypted): the authorization server's claims,
/// judged again by each replica with its own rules, and when it stops counting.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedAnswer {
    /// Unix seconds after which the answer is not used.
    until: u64,
    /// The answer's claims; `None` for an inactive (or refused) token.
    claims: Option<Claims>,
}

/// What a call to the endpoint can end in, besides an answer.
enum CallError {
    /// No endpoint known yet (discovery has not answered).
    NoEndpoint,
    /// Timeout, connection refused, non-2xx, not JSON.
    Failed(String),
}

impl Introspector {
    /// The introspector of issuer `issuer` (metric label `label`).
    pub fn new(
        label: &str,
        issuer: Arc<str>,
        settings: &IntrospectionSettings,
        discovered: Arc<Endpoints>,
        metrics: Metrics,
        shared: Option<Store>,
    ) -> Introspector {
        let client = super::fetch::client(settings.timeout);
        let estimated = (settings.cache_max_bytes / 1024).max(64) as usize;
        Introspector {
            label: label.to_owned(),
            issuer,
            endpoint: settings.endpoint.clone().map(Arc::new),
            discovered,
            settings: settings.clone(),
            client,
            cache: quick_cache::sync::Cache::with_weighter(
                estimated,
                settings.cache_max_bytes,
                ByteWeight,
            ),
            metrics,
            shared,
        }
    }

    /// The endpoint: the configured one, else the one discovery found (if it has).
    pub fn endpoint(&self) -> Option<Arc<String>> {
        self.endpoint
            .clone()
            .or_else(|| self.discovered.introspection.load_full())
    }

    /// The cached answer for `token`, while it is still good: what
    /// [`Introspector::introspect`] would answer at once. `None` when it would have to
    /// wait (no answer cached, or one past its time). `now` is the request's Unix second.
    pub(crate) fn cached(&self, token: &str, now: u64) -> Option<Result<Arc<Identity>, Rejection>> {
        self.hit(&self.cache.get(token)?, now)
    }

    /// A cached `answer`, counted as a hit and served as of `now`, while it is still good;
    /// `None` once past its time.
    fn hit(&self, answer: &Answer, now: u64) -> Option<Result<Arc<Identity>, Rejection>> {
        if Instant::now() >= answer.until() {
            return None;
        }
        self.metrics.introspection_cache_hit(&self.label);
        Some(served(answer, now))
    }

    /// The identity behind `token`, from the cache or the authorization server. With
    /// `fresh`, the cache is neither read nor written: every call asks the server (routes
    /// with `introspect: always`, where a revocation must bite at once).
    pub async fn introspect(
        &self,
        token: &str,
        fresh: bool,
        identity: IdentityFrom<'_>,
    ) -> Result<Arc<Identity>, Rejection> {
        // The calls to the store and the server are boxed: their futures are large, and
        // unboxed they would make every request's future (moved on each poll's way in) as
        // large, though a cache hit never runs them.
        if fresh {
            let answer = Box::pin(self.call_and_judge(token, identity, false)).await?;
            return served(&answer, unix_now());
        }
        loop {
            match self.cache.get_value_or_guard_async(token).await {
                Ok(answer) => {
                    if let Some(served) = self.hit(&answer, unix_now()) {
                        return served;
                    }
                    // Past its time: drop it, then take the placeholder (or wait for a
                    // request that already did).
                    self.cache.remove(token);
                }
                Err(guard) => {
                    self.metrics.introspection_cache_miss(&self.label);
                    // On failure the guard is dropped unfilled: waiting requests then try
                    // themselves, each bounded by the timeout.
                    let answer = Box::pin(self.fetch(token, identity)).await?;
                    let _ = guard.insert(answer.clone());
                    return served(&answer, unix_now());
                }
            }
        }
    }

    /// The answer for a token the cache does not hold: shared by another replica, else the
    /// authorization server's.
    async fn fetch(&self, token: &str, identity: IdentityFrom<'_>) -> Result<Answer, Rejection> {
        Ok(match self.read_shared(token, identity).await {
            Shared::Found(answer) => answer,
            Shared::Missing => self.call_and_judge(token, identity, true).await?,
            Shared::Failed => self.call_and_judge(token, identity, false).await?,
        })
    }

    fn shared_key(&self, token: &str) -> StoreKey {
        StoreKey::new("introspection", &[self.issuer.as_bytes(), token.as_bytes()])
    }

    /// The answer another replica shared for `token`, judged by this one's rules.
    async fn read_shared(&self, token: &str, identity: IdentityFrom<'_>) -> Shared {
        let Some(store) = &self.shared else {
            return Shared::Failed;
        };
        let key = self.shared_key(token);
        let sealed = match store.get(&key).await {
            Ok(sealed) => sealed,
            Err(e) => {
                self.metrics
                    .store_fallback(StoreFallback::IntrospectionCalled);
                tracing::warn!(issuer = %self.label, error = %e, "shared store failed; asking the authorization server");
                return Shared::Failed;
            }
        };
        let found = sealed
            .and_then(|s| sealed::open(token, key.hash(), &s))
            .and_then(|plain| serde_json::from_slice::<SharedAnswer>(&plain).ok())
            .and_then(|shared| {
                let left = shared.until.checked_sub(unix_now()).filter(|l| *l > 0)?;
                let until = Instant::now() + Duration::from_secs(left);
                match shared.claims {
                    None => Some(Answer::Inactive { until }),
                    Some(claims) => match self.judge(claims, identity) {
                        Ok((identity, _)) => Some(Answer::Active {
                            identity: Arc::new(identity),
                            until,
                        }),
                        Err(Rejection::InvalidToken(_)) => Some(Answer::Inactive { until }),
                        Err(_) => None,
                    },
                }
            });
        self.metrics
            .introspection_shared_lookup(&self.label, found.is_some());
        found.map_or(Shared::Missing, Shared::Found)
    }

    /// Shares what a call taught: `claims` (or inactive) until `until`, unix seconds.
    async fn write_shared(&self, token: &str, claims: Option<Claims>, until: u64) {
        let Some(store) = &self.shared else {
            return;
        };
        let left = until.saturating_sub(unix_now());
        if left == 0 {
            return;
        }
        let key = self.shared_key(token);
        let Ok(plain) = serde_json::to_vec(&SharedAnswer { until, claims }) else {
            return;
        };
        let Some(value) = sealed::seal(token, key.hash(), &plain) else {
            return;
        };
        if let Err(e) = store
            .set_with_ttl(&key, &value, Duration::from_secs(left))
            .await
        {
            tracing::warn!(issuer = %self.label, error = %e, "shared store failed; the answer is kept by this replica only");
        }
    }

    /// Calls the endpoint and turns the answer into a cacheable verdict; with `share`, the
    /// verdict is also written to the shared store.
    async fn call_and_judge(
        &self,
        token: &str,
        identity: IdentityFrom<'_>,
        share: bool,
    ) -> Result<Answer, Rejection> {
        let started = Instant::now();
        let result = self.call(token).await;
        let outcome = match &result {
            Ok(c) if c.get("active") == Some(&Value::Bool(true)) => IntrospectionResult::Active,
            Ok(_) => IntrospectionResult::Inactive,
            Err(CallError::NoEndpoint) => IntrospectionResult::NoEndpoint,
            Err(CallError::Failed(_)) => IntrospectionResult::Error,
        };
        self.metrics
            .introspection_call(&self.label, outcome, started.elapsed());
        let answer = match result {
            Ok(answer) => answer,
            Err(CallError::NoEndpoint) => return Err(Rejection::IntrospectionUnavailable),
            Err(CallError::Failed(why)) => {
                tracing::warn!(issuer = %self.label, error = %why, "introspection failed");
                return Err(Rejection::IntrospectionUnavailable);
            }
        };
        let inactive = || Answer::Inactive {
            until: Instant::now() + self.settings.inactive_cache,
        };
        let inactive_until = unix_now() + self.settings.inactive_cache.as_secs();
        if answer.get("active") != Some(&Value::Bool(true)) {
            if share {
                self.write_shared(token, None, inactive_until).await;
            }
            return Ok(inactive());
        }
        let kept = share.then(|| answer.clone());
        match self.judge(answer, identity) {
            Ok((identity, exp)) => {
                let left = exp.saturating_sub(unix_now());
                let keep = self.settings.cache_max.min(Duration::from_secs(left));
                if share {
                    self.write_shared(token, kept, unix_now() + keep.as_secs())
                        .await;
                }
                Ok(Answer::Active {
                    identity: Arc::new(identity),
                    until: Instant::now() + keep,
                })
            }
            // An answer the gateway refuses (wrong audience, another kind of token) is as
            // good as inactive for this token: remember it briefly, like one.
            Err(Rejection::InvalidToken(_)) => {
                if share {
                    self.write_shared(token, None, inactive_until).await;
                }
                Ok(inactive())
            }
            Err(other) => Err(other),
        }
    }

    /// The checks a JWT's claims get, on the answer's claims.
    fn judge(
        &self,
        mut answer: Claims,
        identity: IdentityFrom<'_>,
    ) -> Result<(Identity, u64), Rejection> {
        // RFC 7662 §2.2: `token_type` is optional; when given, it must be an access
        // token's (a refresh token presented as an access token is refused).
        if let Some(kind) = answer.get("token_type").and_then(Value::as_str)
            && !(kind.eq_ignore_ascii_case("bearer") || kind.eq_ignore_ascii_case("dpop"))
        {
            return Err(Rejection::InvalidToken(TokenError::BadType));
        }
        // The server answers for itself: an answer without `iss` is its own.
        answer
            .entry("iss")
            .or_insert_with(|| Value::String(self.issuer.to_string()));
        let exp = identity_exp(&answer)?;
        let identity = identity(&answer, exp)?;
        Ok((identity, exp))
    }

    async fn call(&self, token: &str) -> Result<Claims, CallError> {
        let endpoint = self.endpoint().ok_or(CallError::NoEndpoint)?;
        let form = [("token", token), ("token_type_hint", "access_token")];
        let request = self
            .client
            .post(endpoint.as_str())
            .header(reqwest::header::ACCEPT, "application/json");
        // Compiled from text, so always UTF-8.
        let secret = self.settings.client_secret.expose_str().unwrap_or_default();
        let request = match self.settings.auth_method {
            ClientAuthMethod::ClientSecretBasic => request
                .basic_auth(
                    form_encode(&self.settings.client_id),
                    Some(form_encode(secret)),
                )
                .form(&form),
            ClientAuthMethod::ClientSecretPost => {
                let mut body = form.to_vec();
                body.push(("client_id", &self.settings.client_id));
                body.push(("client_secret", secret));
                request.form(&body)
            }
        };
        let fetched = super::fetch::bounded(request, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| CallError::Failed(e.to_string()))?;
        serde_json::from_slice(&fetched.body)
            .map_err(|e| CallError::Failed(format!("the answer is not a JSON object: {e}")))
    }
}

/// What the shared store had for a token.
enum Shared {
    /// An answer, judged.
    Found(Answer),
    /// Nothing usable: call, and share what the call says.
    Missing,
    /// No store, or it failed: call, and share nothing.
    Failed,
}

/// The client id and secret in HTTP Basic are form-encoded first (RFC 6749 §2.3.1).
fn form_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, FORM).to_string()
}

/// `application/x-www-form-urlencoded`'s set: everything but unreserved characters.
const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The answer's `exp`, required: without it a cached answer would have no bound but the
/// cache's own, and a stolen token no end.
fn identity_exp(answer: &Claims) -> Result<u64, Rejection> {
    match answer.get("exp") {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.floor() as u64))
            .ok_or(Rejection::InvalidToken(TokenError::BadClaims)),
        _ => Err(Rejection::InvalidToken(TokenError::BadClaims)),
    }
}

fn served(answer: &Answer, now: u64) -> Result<Arc<Identity>, Rejection> {
    match answer {
        Answer::Active { identity, .. } => {
            if identity.expires_at < now {
                return Err(Rejection::InvalidToken(TokenError::Expired));
            }
            Ok(identity.clone())
        }
        Answer::Inactive { .. } => Err(Rejection::InvalidToken(TokenError::Inactive)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_credentials_are_form_encoded_for_basic_auth() {
        assert_eq!(form_encode("gate way:1"), "gate%20way%3A1");
        assert_eq!(form_encode("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn an_answer_without_exp_is_refused() {
        let answer: Claims = serde_json::from_str(r#"{"active":true}"#).unwrap();
        assert!(identity_exp(&answer).is_err());
        let answer: Claims = serde_json::from_str(r#"{"active":true,"exp":12.7}"#).unwrap();
        assert_eq!(identity_exp(&answer).unwrap(), 12);
    }
}
