//! What the token and claim properties share: generated JSON, and a verifier built in the
//! process as the server builds it (`Authenticator::from_settings`), its keys loaded from a
//! JWKS document, so that thousands of generated tokens are checked without a socket.

use std::sync::OnceLock;

use proptest::prelude::*;
use scopegate::auth::Authenticator;
use scopegate::auth::identity::Identity;
use scopegate::config::Settings;
use scopegate::decision::{Rejection, TokenError};
use scopegate::ops::metrics::Metrics;
use serde_json::{Map, Value, json};

use crate::harness::*;

/// The issuer's configuration: RS256 and ES256 only, the default leeway of 30 s.
const CONFIG: &str = "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers:
  - issuer: https://exampleco.test/
    audiences: [https://api.exampleco.com/timesheets]
    jwks_uri: http://127.0.0.1:1/.well-known/jwks.json
    algorithms: [RS256, ES256]
";

/// The configured leeway, in seconds.
pub const LEEWAY: u64 = 30;

/// The fixture keys: the RSA key (`rsa-1`) and the P-256 key (`ec-1`) are in the key set;
/// the Ed25519 key is not.
pub struct Keys {
    pub rsa: TestKey,
    pub ec: TestKey,
    pub ed: TestKey,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa: TestKey::rsa(),
        ec: TestKey::ec(),
        ed: TestKey::ed(),
    })
}

/// The authenticator for [`CONFIG`] with the RSA and EC keys installed.
pub fn authenticator() -> &'static Authenticator {
    static AUTH: OnceLock<Authenticator> = OnceLock::new();
    AUTH.get_or_init(|| {
        let keys = keys();
        let settings = Settings::parse(CONFIG, "c.yaml", std::path::Path::new("."))
            .expect("a valid configuration");
        let (auth, stores) = Authenticator::from_settings(&settings, &Metrics::new());
        let jwks = json!({"keys": [keys.rsa.public(), keys.ec.public()]});
        let installed = stores[0]
            .install_jwks(jwks.to_string().as_bytes())
            .expect("the key set installs");
        assert_eq!(installed, 2);
        auth
    })
}

/// Verifies `token` as the gateway does for a JWS.
pub fn verify(token: &str) -> Result<std::sync::Arc<Identity>, Rejection> {
    authenticator().verifier.verify(token)
}

/// The token error of a refusal that must be a 401 `invalid_token`.
pub fn token_error(result: Result<std::sync::Arc<Identity>, Rejection>) -> Option<TokenError> {
    match result {
        Err(Rejection::InvalidToken(e)) => Some(e),
        _ => None,
    }
}

/// Valid claims for the configured issuer and audience, valid now.
pub fn valid_claims() -> Map<String, Value> {
    let now = now();
    match json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "auth0|alice",
        "client_id": "timesheets-mobile",
        "iat": now,
        "exp": now + 3600,
        "scope": "read:timesheets",
    }) {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// Any JSON value, nested a few levels: every type, numbers of every kind (negative,
/// fractional, beyond `u64`, around now), and the strings the claims checks compare with.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u64..2 * 3600).prop_map(|d| Value::from(now() - 3600 + d)),
        "[ -~]{0,8}".prop_map(Value::String),
        Just(Value::String(ISSUER.into())),
        Just(Value::String(AUDIENCE.into())),
        Just(Value::String("read:timesheets".into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claim names: the registered and gateway-read ones, and others.
pub fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(&REGISTERED[..]).prop_map(str::to_owned),
        prop::sample::select(&["scp", "permissions", "cnf", "jti", "typ"][..])
            .prop_map(str::to_owned),
        "[a-z_]{1,6}",
    ]
}

/// The claims whose type the gateway checks: RFC 7519's, and the ones it forwards or
/// decides on (RFC 9068 `client_id`, OpenID `azp`, RFC 9470 `acr`, `auth_time`).
pub const REGISTERED: [&str; 10] = [
    "exp",
    "nbf",
    "iat",
    "aud",
    "iss",
    "sub",
    "client_id",
    "azp",
    "acr",
    "auth_time",
];

/// Whether `value` is of a type `name` may not have. `null` stands for an absent optional
/// claim; `exp`, `iss` and `aud` are required.
pub fn wrong_type(name: &str, value: &Value) -> bool {
    let date = |v: &Value| v.as_f64().is_some_and(|f| f.is_finite() && f >= 0.0) || v.is_u64();
    match name {
        "exp" => !date(value),
        "nbf" | "iat" | "auth_time" => !(value.is_null() || date(value)),
        "aud" => {
            !(value.is_string()
                || value
                    .as_array()
                    .is_some_and(|items| items.iter().all(Value::is_string)))
        }
        "iss" => !value.is_string(),
        "sub" | "client_id" | "azp" | "acr" => !(value.is_null() || value.is_string()),
        _ => false,
    }
}
