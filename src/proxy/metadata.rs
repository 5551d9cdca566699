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

    /// The routes of `policy` whose paths lie outside the resource identifier's path: a
    /// client that checks the document it reached from a challenge against the URL it
    /// called (prefix or exact, RFC 9728 §3.3) refuses the document on those routes.
    pub fn uncovered_routes<'p>(&self, policy: &'p Policy) -> Vec<&'p str> {
        policy.routes_outside(&self.settings.resource_path)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(resource: &str, path: &str) -> ResourceMetadata {
        let settings = ProtectedResource {
            resource: resource.into(),
            resource_path: path.into(),
            authorization_servers: vec![],
            resource_name: None,
            resource_documentation: None,
            path: String::new(),
            url: String::new(),
        };
        ResourceMetadata::new(&settings, false, vec![], false)
    }

    #[test]
    fn routes_outside_the_resource_path_are_named() {
        let policy = crate::policy::load(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/timesheets.yaml"
        )))
        .unwrap();
        let narrow = metadata("https://api.exampleco.com/timesheets", "/timesheets");
        let uncovered = narrow.uncovered_routes(&policy);
        assert!(uncovered.contains(&"approve-timesheet"), "{uncovered:?}");
        assert!(!uncovered.contains(&"read-timesheet"), "{uncovered:?}");
        // Public routes need no token, so no discovery.
        assert!(!uncovered.contains(&"health"), "{uncovered:?}");
        let origin = metadata("https://api.exampleco.com", "");
        assert!(origin.uncovered_routes(&policy).is_empty());
    }
}
