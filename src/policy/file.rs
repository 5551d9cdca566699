//! The policy file as written: plain serde types that keep every value's position.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A list whose items keep their positions.
pub type SpannedList<T> = Spanned<Vec<Spanned<T>>>;

/// A policy file (`policies/*.yaml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Schema version; only `1` exists.
    pub version: Spanned<u32>,
    /// Every route in dry-run mode (decide, log and count, but forward), unless a route
    /// says `dry_run: false`. Default: `false`.
    #[serde(default)]
    pub dry_run: Option<Spanned<bool>>,
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
    pub methods: SpannedList<String>,
    /// Path template: `/timesheets/{id}`, `/files/{*rest}`.
    pub path: Spanned<String>,
    /// Scopes the token must all carry. Default: none.
    #[serde(default)]
    pub scopes: Option<SpannedList<String>>,
    /// Claim conditions the token must all meet, besides `scopes`. Default: none.
    #[serde(default)]
    pub claims: Option<SpannedList<ClaimEntry>>,
    /// Requirement sets of which one is enough (OR of ANDs), instead of `scopes` and
    /// `claims`. Default: none.
    #[serde(default)]
    pub any_of: Option<SpannedList<AlternativeEntry>>,
    /// How recently and how strongly the user must have signed in (RFC 9470). Default:
    /// no requirement.
    #[serde(default)]
    pub authentication: Option<Spanned<AuthenticationEntry>>,
    /// Decide, log and count, but forward. Default: the policy's `dry_run`.
    #[serde(default)]
    pub dry_run: Option<Spanned<bool>>,
    /// `true`: no token needed. Default: `false`.
    #[serde(default)]
    pub public: Option<Spanned<bool>>,
    /// DPoP on this route: `allowed` or `required` (RFC 9449); the stricter of this and
    /// the token issuer's setting applies. Default: the issuer's.
    #[serde(default)]
    pub dpop: Option<Spanned<crate::config::DpopMode>>,
    /// Free text for readers of the policy. Default: none.
    #[serde(default)]
    pub description: Option<String>,
    /// `always`: introspect the token on every request, JWTs too, uncached (revocation
    /// bites at once). Default: only opaque tokens are introspected.
    #[serde(default)]
    pub introspect: Option<Spanned<IntrospectFile>>,
}

/// The `introspect` key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntrospectFile {
    /// Every request's token is introspected.
    Always,
}

/// One requirement set of `any_of`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlternativeEntry {
    /// Scopes the token must all carry. Default: none.
    #[serde(default)]
    pub scopes: Option<SpannedList<String>>,
    /// Claim conditions the token must all meet. Default: none.
    #[serde(default)]
    pub claims: Option<SpannedList<ClaimEntry>>,
}

/// One claim condition: the claim, and exactly one test.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimEntry {
    /// The claim: a name taken as written, dots and all (`https://exampleco.com/roles`),
    /// or a list of names walking into nested objects (`[realm_access, roles]`).
    pub claim: Spanned<ClaimName>,
    /// The claim is a string equal to this one.
    #[serde(default)]
    pub equals: Option<Spanned<String>>,
    /// The claim (an array of strings, or a string read as a one-item array) holds at
    /// least one of these.
    #[serde(default)]
    pub contains_any: Option<SpannedList<String>>,
    /// The claim (an array of strings, or a string read as a one-item array) holds every
    /// one of these.
    #[serde(default)]
    pub contains_all: Option<SpannedList<String>>,
}

/// A claim's name as written.
#[derive(Debug)]
pub enum ClaimName {
    /// One top-level claim, named exactly (dots are part of the name).
    Name(String),
    /// A path into nested objects, one name per level.
    Path(Vec<String>),
}

/// By hand rather than `untagged`, so that anything else is refused with a message that
/// says what is expected.
impl<'de> Deserialize<'de> for ClaimName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> serde::de::Visitor<'de> for Names {
            type Value = ClaimName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a claim name, or a list of names for a nested claim ([realm_access, roles])",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClaimName, E> {
                Ok(ClaimName::Name(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ClaimName, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(ClaimName::Path(names))
            }
        }
        deserializer.deserialize_any(Names)
    }
}

/// A route's authentication requirement (RFC 9470).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationEntry {
    /// The token's `acr` must be one of these. Default: any `acr`, or none.
    #[serde(default)]
    pub acr: Option<SpannedList<String>>,
    /// The user must have signed in at most this many seconds ago (`auth_time`).
    /// Default: any age.
    #[serde(default)]
    pub max_age: Option<Spanned<u64>>,
}
