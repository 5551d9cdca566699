//! Identity headers: strip every one the client sent, then set the verified ones.
//!
//! A header whose name reads as a stripped one once `_` is taken for `-` (`X_Auth_Subject`)
//! is dropped too: CGI, WSGI, Rack and PHP map both spellings to the same variable
//! (`HTTP_X_AUTH_SUBJECT`), so the backend would read the client's value as the gateway's.
//! `drop_underscore_headers` drops every name with an underscore (nginx's default).

use std::cmp::Ordering;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use crate::auth::identity::Identity;
use crate::config::HeaderSettings;
use crate::decision::Reason;

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

/// Something headers can be listed, removed from and inserted into (pingora's request
/// header in the proxy, `http::HeaderMap` in tests and benches).
pub trait HeaderSink {
    /// The names of the headers present, each once.
    fn names(&self) -> impl Iterator<Item = &HeaderName>;
    /// Removes every value of `name`.
    fn remove(&mut self, name: &HeaderName);
    /// Sets `name` to exactly `value`.
    fn set(&mut self, name: &PlannedName, value: HeaderValue);
    /// Makes room for `additional` more names, so that setting them does not grow the map
    /// (and rehash it) one insert at a time.
    fn reserve(&mut self, additional: usize);
}

impl HeaderSink for http::HeaderMap {
    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.keys()
    }
    fn remove(&mut self, name: &HeaderName) {
        http::HeaderMap::remove(self, name);
    }
    fn set(&mut self, name: &PlannedName, value: HeaderValue) {
        self.insert(name.name.clone(), value);
    }
    fn reserve(&mut self, additional: usize) {
        http::HeaderMap::reserve(self, additional);
    }
}

/// A header name the plan sets: the name, and its bytes as shared `Bytes`, which pingora's
/// case-preserving map takes without copying them again.
#[derive(Debug, Clone)]
pub struct PlannedName {
    /// The name.
    pub name: HeaderName,
    /// The same name as bytes, as written on the wire.
    pub wire: Bytes,
}

impl PlannedName {
    /// Made once, when the server starts: the name's text is kept for the life of the
    /// process, so that the copies every request inserts (and drops with its upstream
    /// request) are plain copies, where a name of shared bytes would take and give back a
    /// reference count each time.
    fn new(name: HeaderName) -> PlannedName {
        let text: &'static str = Box::leak(Box::from(name.as_str()));
        PlannedName {
            name: HeaderName::from_static(text),
            wire: Bytes::from_static(text.as_bytes()),
        }
    }
}

/// The header rewrite, prepared once from the configuration.
#[derive(Debug, Clone)]
pub struct HeaderPlan {
    /// Sorted by length, then bytes ([`by_length`]), for the lookup in `strip_present`.
    strip: Vec<HeaderName>,
    /// Bit `n` set when a stripped name is `n` bytes long (bit 63: 63 bytes or more): a
    /// request's header whose length has no bit is neither stripped nor a lookalike (a
    /// lookalike has its stripped name's length), and is passed over without a search.
    strip_lengths: u64,
    subject: PlannedName,
    issuer: PlannedName,
    scopes: PlannedName,
    client_id: PlannedName,
    key_thumbprint: PlannedName,
    cert_thumbprint: PlannedName,
    dry_run: PlannedName,
    /// Claim name → header name, in the verifier's claim order.
    claims: Vec<(String, PlannedName)>,
    /// Drop every header whose name has an underscore, not only the lookalikes.
    drop_underscore: bool,
}

impl HeaderPlan {
    /// Builds the plan from checked header settings.
    pub fn new(h: &HeaderSettings) -> HeaderPlan {
        let static_name = |s: &str| HeaderName::from_bytes(s.as_bytes()).expect("a valid name");
        let claims: Vec<(String, PlannedName)> = h
            .claims
            .iter()
            .map(|(claim, header)| (claim.clone(), PlannedName::new(header.clone())))
            .collect();
        let mut strip: Vec<HeaderName> = [
            &h.subject,
            &h.issuer,
            &h.scopes,
            &h.client_id,
            &h.key_thumbprint,
            &h.cert_thumbprint,
            &h.dry_run,
        ]
        .into_iter()
        .chain(h.strip.iter())
        .cloned()
        .chain(claims.iter().map(|(_, n)| n.name.clone()))
        .chain(OVERRIDE_HEADERS.iter().map(|s| static_name(s)))
        .collect();
        if !h.forward_authorization {
            strip.push(http::header::AUTHORIZATION);
        }
        strip.sort_by(by_length);
        strip.dedup();
        let strip_lengths = strip.iter().fold(0, |bits, n| bits | length_bit(n));
        HeaderPlan {
            strip,
            strip_lengths,
            subject: PlannedName::new(h.subject.clone()),
            issuer: PlannedName::new(h.issuer.clone()),
            scopes: PlannedName::new(h.scopes.clone()),
            client_id: PlannedName::new(h.client_id.clone()),
            key_thumbprint: PlannedName::new(h.key_thumbprint.clone()),
            cert_thumbprint: PlannedName::new(h.cert_thumbprint.clone()),
            dry_run: PlannedName::new(h.dry_run.clone()),
            claims,
            drop_underscore: h.drop_underscore_headers,
        }
    }

    /// Removes every identity and override header, then sets the verified identity's.
    pub fn apply(&self, headers: &mut impl HeaderSink, identity: Option<&Identity>) {
        self.strip_present(headers);
        let Some(id) = identity else { return };
        // The values were built and checked once, when the token was verified.
        let values = id.header_values();
        let bound = usize::from(id.confirmation.jkt.is_some())
            + usize::from(id.confirmation.x5t_s256.is_some());
        headers.reserve(
            2 + usize::from(values.subject.is_some())
                + usize::from(values.client_id.is_some())
                + bound
                + values.claims.len(),
        );
        if let Some(subject) = &values.subject {
            headers.set(&self.subject, subject.clone());
        }
        headers.set(&self.issuer, values.issuer.clone());
        headers.set(&self.scopes, values.scopes.clone());
        if let Some(client) = &values.client_id {
            headers.set(&self.client_id, client.clone());
        }
        // A bound token got here only with its key's proof or its certificate.
        if let Some(jkt) = &id.confirmation.jkt {
            headers.set(&self.key_thumbprint, jkt.clone());
        }
        if let Some(x5t) = &id.confirmation.x5t_s256 {
            headers.set(&self.cert_thumbprint, x5t.clone());
        }
        for ((claim, _), value) in id.claims.iter().zip(&values.claims) {
            if let Some((_, header)) = self.claims.iter().find(|(c, _)| **c == **claim) {
                headers.set(header, value.clone());
            }
        }
    }

    /// Marks a request a dry-run route forwards although it would refuse it: the dry-run
    /// header (stripped from every client request by [`HeaderPlan::apply`]) names the
    /// refusal's reason, so a backend that trusts the identity headers can tell "allowed"
    /// from "would have been refused".
    pub fn mark_dry_run(&self, headers: &mut impl HeaderSink, reason: Reason) {
        headers.set(&self.dry_run, HeaderValue::from_static(reason.as_str()));
    }

    /// Removes the strip-listed headers the request carries. A request has a handful of
    /// headers and the list a dozen names, and removing an absent name still hashes it and
    /// probes the map, so the present names are looked up in the list instead.
    fn strip_present(&self, headers: &mut impl HeaderSink) {
        if self.strip.len() > 64 {
            // More than the bitmask holds: remove them all (still correct, only slower).
            for name in &self.strip {
                headers.remove(name);
            }
        }
        // One pass over the request's names: each is looked up in the list, and names with
        // an underscore (rare) are kept aside for the lookalike check.
        let mut found = 0u64;
        let mut underscored: Vec<HeaderName> = Vec::new();
        for name in headers.names() {
            let listed_length = self.strip_lengths & length_bit(name) != 0;
            if !listed_length && !self.drop_underscore {
                continue;
            }
            if listed_length
                && self.strip.len() <= 64
                && let Ok(i) = self.strip.binary_search_by(|s| by_length(s, name))
            {
                found |= 1 << i;
            } else if name.as_str().as_bytes().contains(&b'_')
                && (self.drop_underscore || (listed_length && self.lookalike(name)))
            {
                underscored.push(name.clone());
            }
        }
        for name in &underscored {
            headers.remove(name);
        }
        while found != 0 {
            headers.remove(&self.strip[found.trailing_zeros() as usize]);
            found &= found - 1;
        }
    }
}

impl HeaderPlan {
    /// Whether `name` is a stripped name once its underscores are read as dashes.
    fn lookalike(&self, name: &HeaderName) -> bool {
        let dashed = name.as_str().replace('_', "-");
        HeaderName::from_bytes(dashed.as_bytes())
            .is_ok_and(|d| self.strip.binary_search_by(|s| by_length(s, &d)).is_ok())
    }
}

/// `name`'s bit in [`HeaderPlan::strip_lengths`].
fn length_bit(name: &HeaderName) -> u64 {
    1 << name.as_str().len().min(63)
}

/// Orders names by length first: most comparisons end on one integer compare.
fn by_length(a: &HeaderName, b: &HeaderName) -> Ordering {
    let (a, b) = (a.as_str(), b.as_str());
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> HeaderSettings {
        let text = format!(
            "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers: [{{issuer: i, audiences: [a], jwks_uri: http://127.0.0.1:1/jwks}}]
{extra}"
        );
        crate::config::Settings::parse(&text, "c.yaml", std::path::Path::new("."))
            .unwrap()
            .headers
    }

    fn plan(forward_authorization: bool) -> HeaderPlan {
        let mut h = settings(
            "identity_headers:\n  claims: {\"https://api.exampleco.com/email\": X-Auth-Email}\n",
        );
        h.forward_authorization = forward_authorization;
        HeaderPlan::new(&h)
    }

    #[test]
    fn the_dry_run_mark_is_stripped_from_clients_and_set_only_when_asked() {
        let mut h = http::HeaderMap::new();
        h.insert("x-scopegate-dry-run", "authorized".parse().unwrap());
        h.insert("X_Scopegate_Dry_Run", "authorized".parse().unwrap());
        let plan = plan(true);
        plan.apply(&mut h, None);
        assert!(h.get("x-scopegate-dry-run").is_none());
        assert!(h.get("x_scopegate_dry_run").is_none());
        plan.mark_dry_run(&mut h, Reason::InsufficientScope);
        assert_eq!(h["x-scopegate-dry-run"], "insufficient_scope");
        let renamed = HeaderPlan::new(&settings("identity_headers: {dry_run: X-Policy-Dry-Run}\n"));
        let mut h = http::HeaderMap::new();
        h.insert("x-policy-dry-run", "no_route".parse().unwrap());
        renamed.apply(&mut h, None);
        assert!(h.is_empty());
    }

    #[test]
    fn client_sent_identity_headers_are_replaced() {
        let mut h = http::HeaderMap::new();
        h.insert("x-auth-subject", "admin".parse().unwrap());
        h.append("x-auth-subject", "root".parse().unwrap());
        h.insert("x-auth-email", "ceo@exampleco.com".parse().unwrap());
        h.insert("x-http-method-override", "DELETE".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        h.insert("x-auth-key-thumbprint", "spoofed".parse().unwrap());
        h.insert("x-auth-cert-thumbprint", "spoofed".parse().unwrap());
        let id = Identity::new(
            Some("alice".into()),
            "https://tenant/".into(),
            Some("mobile".into()),
            vec!["a".into(), "b".into()],
            vec![(
                "https://api.exampleco.com/email".into(),
                "alice@exampleco.com".into(),
            )],
            0,
        )
        .unwrap()
        .with_confirmation(crate::auth::identity::Confirmation {
            jkt: Some(
                "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
                    .parse()
                    .unwrap(),
            ),
            x5t_s256: None,
        });
        plan(true).apply(&mut h, Some(&id));
        assert_eq!(
            h["x-auth-key-thumbprint"],
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert!(h.get("x-auth-cert-thumbprint").is_none());
        assert_eq!(h.get_all("x-auth-subject").iter().count(), 1);
        assert_eq!(h["x-auth-subject"], "alice");
        assert_eq!(h["x-auth-scopes"], "a b");
        assert_eq!(h["x-auth-client-id"], "mobile");
        assert_eq!(h["x-auth-email"], "alice@exampleco.com");
        assert!(h.get("x-http-method-override").is_none());
        assert!(h.get("authorization").is_some());
    }

    #[test]
    fn every_listed_header_is_stripped_also_past_sixty_four_names() {
        let mut settings = settings("");
        for many in [false, true] {
            let extra = if many { 80 } else { 3 };
            settings.strip = (0..extra)
                .map(|i| HeaderName::from_bytes(format!("x-internal-{i}").as_bytes()).unwrap())
                .collect();
            let plan = HeaderPlan::new(&settings);
            assert_eq!(plan.strip.len() > 64, many);
            let mut h = http::HeaderMap::new();
            for name in [
                "x-internal-0",
                "x-internal-2",
                "x-auth-scopes",
                "x-rewrite-url",
            ] {
                h.append(name, "spoofed".parse().unwrap());
                h.append(name, "twice".parse().unwrap());
            }
            h.insert("accept", "*/*".parse().unwrap());
            plan.apply(&mut h, None);
            assert_eq!(h.keys().collect::<Vec<_>>(), ["accept"], "many: {many}");
        }
    }

    #[test]
    fn underscore_lookalikes_are_dropped_and_all_underscores_on_request() {
        let mut h = http::HeaderMap::new();
        for name in [
            "x_auth_subject",
            "x-auth_scopes",
            "x_http_method_override",
            "x_trace_id",
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "v".parse().unwrap(),
            );
        }
        plan(true).apply(&mut h, None);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x_trace_id"]);
        let mut all = settings("drop_underscore_headers: true\n");
        all.forward_authorization = true;
        HeaderPlan::new(&all).apply(&mut h, None);
        assert!(h.is_empty(), "{h:?}");
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
