//! The policy file as written: plain serde types that keep every value's position.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A policy file (`policies/*.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Schema version; only `1` exists.
    pub version: Spanned<u32>,
    /// Routes; anything they do not match is denied.
    #[serde(default)]
    pub routes: Vec<Spanned<RouteEntry>>,
}

/// One route as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// Unique id, used in logs and as the metric label.
    pub id: Spanned<String>,
    /// HTTP methods the route covers.
    pub methods: Spanned<Vec<Spanned<String>>>,
    /// Path template: `/timesheets/{id}`, `/files/{*rest}`.
    pub path: Spanned<String>,
    /// Scopes the token must all carry.
    #[serde(default)]
    pub scopes: Option<Spanned<Vec<Spanned<String>>>>,
    /// `true`: no token needed.
    #[serde(default)]
    pub public: Option<Spanned<bool>>,
    /// DPoP on this route: `allowed` or `required` (RFC 9449); the stricter of this and
    /// the token issuer's setting applies. Default: the issuer's.
    #[serde(default)]
    pub dpop: Option<Spanned<crate::auth::dpop::DpopMode>>,
    /// Free text for readers of the policy.
    #[serde(default)]
    pub description: Option<String>,
}
