//! RFC 9728 protected-resource metadata, served by the gateway itself (never forwarded):
//! a client that knows only the API's URL learns where to sign in and which scopes exist.
//! The scopes come from the live policy, so the document follows reloads.

use bytes::Bytes;

use crate::config::ProtectedResource;
use crate::policy::Policy;

/// The document's fixed parts, and where it is served.
pub struct ResourceMetadata {
    settings: ProtectedResource,
    /// `bearer_methods_supported`: `header`, and `query` when that is allowed.
    bearer_methods: Vec<&'static str>,
    /// `dpop_signing_alg_values_supported`, when DPoP is on (RFC 9449 §5.1 names it for
    /// resource metadata, RFC 9728 §2).
    dpop_algorithms: Vec<String>,
    /// `dpop_bound_access_tokens_required`: every issuer requires DPoP.
    dpop_required: bool,
}

impl ResourceMetadata {
    /// The metadata of `settings`; `query_tokens` when `?access_token=` is accepted;
    /// `dpop_algorithms` the proof algorithms accepted (empty: DPoP off), `dpop_required`
    /// when no plain bearer token is accepted.
    pub fn new(
        settings: &ProtectedResource,
        query_tokens: bool,
        dpop_algorithms: Vec<String>,
        dpop_required: bool,
    ) -> ResourceMetadata {
        let mut bearer_methods = vec!["header"];
        if query_tokens {
            bearer_methods.push("query");
        }
        ResourceMetadata {
            settings: settings.clone(),
            bearer_methods,
            dpop_algorithms,
            dpop_required,
        }
    }

    /// The path the document is served at.
    pub fn path(&self) -> &str {
        &self.settings.path
    }

    /// The document for a policy snapshot.
    pub fn document(&self, policy: &Policy) -> Bytes {
        let s = &self.settings;
        let mut doc = serde_json::json!({
            "resource": s.resource,
            "authorization_servers": s.authorization_servers,
            "scopes_supported": policy.scopes(),
            "bearer_methods_supported": self.bearer_methods,
        });
        if !self.dpop_algorithms.is_empty() {
            doc["dpop_signing_alg_values_supported"] = self.dpop_algorithms.clone().into();
            doc["dpop_bound_access_tokens_required"] = self.dpop_required.into();
        }
        if let Some(name) = &s.resource_name {
            doc["resource_name"] = name.as_str().into();
        }
        if let Some(link) = &s.resource_documentation {
            doc["resource_documentation"] = link.as_str().into();
        }
        Bytes::from(serde_json::to_vec(&doc).expect("a JSON object serializes"))
    }
}
