//! Identity headers: strip every one the client sent, then set the verified ones.

use http::{HeaderName, HeaderValue};

use crate::config::Config;
use crate::identity::Identity;

/// Headers that would let a client change the method or path a backend acts on after the
/// decision; they never reach the upstream.
const OVERRIDE_HEADERS: [&str; 6] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "x-original-method",
];

/// Something headers can be removed from and inserted into (pingora's request header in
/// the proxy, `http::HeaderMap` in tests and benches).
pub trait HeaderSink {
    /// Removes every value of `name`.
    fn remove(&mut self, name: &HeaderName);
    /// Sets `name` to exactly `value`.
    fn set(&mut self, name: &HeaderName, value: HeaderValue);
}

impl HeaderSink for http::HeaderMap {
    fn remove(&mut self, name: &HeaderName) {
        http::HeaderMap::remove(self, name);
    }
    fn set(&mut self, name: &HeaderName, value: HeaderValue) {
        self.insert(name.clone(), value);
    }
}

/// The header rewrite, prepared once from the configuration.
#[derive(Debug, Clone)]
pub struct HeaderPlan {
    strip: Vec<HeaderName>,
    subject: HeaderName,
    issuer: HeaderName,
    scopes: HeaderName,
    client_id: HeaderName,
    /// Claim name → header name, in the verifier's claim order.
    claims: Vec<(String, HeaderName)>,
}

impl HeaderPlan {
    /// Builds the plan; header names were checked when the configuration was loaded.
    pub fn from_config(config: &Config) -> HeaderPlan {
        let name = |s: &str| HeaderName::from_bytes(s.as_bytes()).expect("checked at load");
        let h = &config.identity_headers;
        let claims: Vec<(String, HeaderName)> = h
            .claims
            .iter()
            .map(|(claim, header)| (claim.clone(), name(header)))
            .collect();
        let mut strip: Vec<HeaderName> = [&h.subject, &h.issuer, &h.scopes, &h.client_id]
            .into_iter()
            .chain(config.strip_headers.iter())
            .map(|s| name(s))
            .chain(claims.iter().map(|(_, n)| n.clone()))
            .chain(OVERRIDE_HEADERS.iter().map(|s| name(s)))
            .collect();
        if !config.forward_authorization {
            strip.push(http::header::AUTHORIZATION);
        }
        strip.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        strip.dedup();
        HeaderPlan {
            strip,
            subject: name(&h.subject),
            issuer: name(&h.issuer),
            scopes: name(&h.scopes),
            client_id: name(&h.client_id),
            claims,
        }
    }

    /// The claim names whose values the verifier must collect, in header order.
    pub fn claim_names(&self) -> Vec<std::sync::Arc<str>> {
        self.claims.iter().map(|(c, _)| c.as_str().into()).collect()
    }

    /// Removes every identity and override header, then sets the verified identity's.
    pub fn apply(&self, headers: &mut impl HeaderSink, identity: Option<&Identity>) {
        for name in &self.strip {
            headers.remove(name);
        }
        let Some(id) = identity else { return };
        let mut set = |name: &HeaderName, value: &str| {
            // Values were checked by the verifier; a failure here only skips the header.
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.set(name, v);
            }
        };
        if let Some(sub) = &id.subject {
            set(&self.subject, sub);
        }
        set(&self.issuer, &id.issuer);
        set(&self.scopes, &id.scope_string());
        if let Some(client) = &id.client_id {
            set(&self.client_id, client);
        }
        for (claim, value) in &id.claims {
            if let Some((_, header)) = self.claims.iter().find(|(c, _)| **c == **claim) {
                set(header, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(forward_authorization: bool) -> HeaderPlan {
        let mut config = crate::config::Config::parse(
            "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers: [{issuer: i, audiences: [a], jwks_uri: http://127.0.0.1:1/jwks}]
identity_headers:
  claims: {\"https://api.exampleco.com/email\": X-Auth-Email}
",
            "c.yaml",
        )
        .unwrap();
        config.forward_authorization = forward_authorization;
        HeaderPlan::from_config(&config)
    }

    #[test]
    fn client_sent_identity_headers_are_replaced() {
        let mut h = http::HeaderMap::new();
        h.insert("x-auth-subject", "admin".parse().unwrap());
        h.append("x-auth-subject", "root".parse().unwrap());
        h.insert("x-auth-email", "ceo@exampleco.com".parse().unwrap());
        h.insert("x-http-method-override", "DELETE".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        let id = Identity {
            subject: Some("alice".into()),
            issuer: "https://tenant/".into(),
            client_id: Some("mobile".into()),
            scopes: vec!["a".into(), "b".into()],
            claims: vec![(
                "https://api.exampleco.com/email".into(),
                "alice@exampleco.com".into(),
            )],
            expires_at: 0,
        };
        plan(true).apply(&mut h, Some(&id));
        assert_eq!(h.get_all("x-auth-subject").iter().count(), 1);
        assert_eq!(h["x-auth-subject"], "alice");
        assert_eq!(h["x-auth-scopes"], "a b");
        assert_eq!(h["x-auth-client-id"], "mobile");
        assert_eq!(h["x-auth-email"], "alice@exampleco.com");
        assert!(h.get("x-http-method-override").is_none());
        assert!(h.get("authorization").is_some());
    }

    #[test]
    fn public_requests_carry_no_identity_and_authorization_can_be_dropped() {
        let mut h = http::HeaderMap::new();
        h.insert("x-auth-subject", "admin".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        plan(false).apply(&mut h, None);
        assert!(h.is_empty(), "{h:?}");
    }
}
