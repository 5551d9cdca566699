//! The verified caller: what the gateway learned from a token it accepted.

use std::sync::Arc;

/// A verified token's identity, shared between the token cache and requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sub`, when present.
    pub subject: Option<String>,
    /// `iss`, as configured.
    pub issuer: Arc<str>,
    /// `client_id` (RFC 9068) or, failing that, `azp`.
    pub client_id: Option<String>,
    /// The union of the issuer's scope claims, sorted and deduplicated.
    pub scopes: Vec<String>,
    /// Values of the claims mapped to upstream headers, in mapping order.
    pub claims: Vec<(Arc<str>, String)>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

impl Identity {
    /// Whether the token carries `scope`, compared exactly.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes
            .binary_search_by(|s| s.as_str().cmp(scope))
            .is_ok()
    }

    /// The scopes as one space-separated string (the `scope` claim's format).
    pub fn scope_string(&self) -> String {
        self.scopes.join(" ")
    }
}

/// Collects scopes from a claims object: `scope` (space-delimited string), `scp` (string
/// or array) and `permissions` (array), or whichever claims the issuer names.
pub fn collect_scopes(
    claims: &serde_json::Map<String, serde_json::Value>,
    scope_claims: &[String],
) -> Vec<String> {
    let mut scopes = Vec::new();
    for name in scope_claims {
        match claims.get(name) {
            Some(serde_json::Value::String(s)) => {
                scopes.extend(s.split_ascii_whitespace().map(str::to_owned))
            }
            Some(serde_json::Value::Array(items)) => scopes.extend(
                items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
                    .map(str::to_owned),
            ),
            _ => {}
        }
    }
    scopes.sort_unstable();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn scopes_are_the_union_of_the_configured_claims() {
        let c = claims(serde_json::json!({
            "scope": "read:timesheets create:timesheets",
            "scp": ["delete:timesheets"],
            "permissions": ["read:timesheets", "approve:timesheets"],
        }));
        let names = ["scope", "scp", "permissions"].map(String::from);
        assert_eq!(
            collect_scopes(&c, &names),
            [
                "approve:timesheets",
                "create:timesheets",
                "delete:timesheets",
                "read:timesheets"
            ]
        );
        assert_eq!(collect_scopes(&c, &["scp".into()]), ["delete:timesheets"]);
    }

    #[test]
    fn scope_match_is_exact() {
        let id = Identity {
            subject: None,
            issuer: "i".into(),
            client_id: None,
            scopes: vec!["read:timesheets_extra".into()],
            claims: vec![],
            expires_at: 0,
        };
        assert!(!id.has_scope("read:timesheets"));
        assert!(id.has_scope("read:timesheets_extra"));
    }
}
