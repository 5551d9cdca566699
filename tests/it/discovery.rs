//! Issuer discovery (RFC 8414 / OpenID Connect Discovery): an issuer configured by its URL
//! alone gets its key set and introspection endpoint from its metadata; metadata naming
//! another issuer is refused (mix-up defence) and the gateway stays unready, failing closed.

use serde_json::json;

use crate::authserver::{AuthServer, CLIENT_SECRET, active};
use crate::harness::*;

fn spec_without_key_set<'a>(
    jwks: &JwksServer,
    upstream: &Upstream,
    policy: &'a str,
    introspection: Option<Value>,
) -> GatewaySpec<'a> {
    let mut spec = GatewaySpec::new(jwks, upstream, policy);
    spec.jwks_uri = String::new();
    if let Some(introspection) = introspection {
        spec.issuer_option("introspection", introspection);
    }
    spec
}

#[test]
fn an_issuer_configured_by_its_url_alone_finds_its_keys_and_introspection_endpoint() {
    let key = TestKey::rsa();
    let jwks = JwksServer::start(&[&key]);
    let upstream = Upstream::start();
    let auth = AuthServer::start(&jwks.uri());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, CLIENT_SECRET).unwrap();
    // Neither jwks_uri nor introspection.endpoint: both come from the metadata.
    let policy = timesheets_policy();
    let spec = spec_without_key_set(&jwks, &upstream, &policy, Some(auth.introspection(&secret)));
    let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
    gw.wait_ready();

    let mut claims = claims("read:timesheets");
    claims["iss"] = json!(auth.issuer());
    assert_eq!(
        gw.call("GET", "/timesheets", &key.sign(&claims)).status,
        200
    );
    auth.activate("opaque-1", active(&auth.issuer(), "read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", "opaque-1").status, 200);
    assert_eq!(auth.calls(), 1);
}

#[test]
fn metadata_that_names_another_issuer_is_refused_and_the_gateway_stays_unready() {
    let key = TestKey::rsa();
    let jwks = JwksServer::start(&[&key]);
    let upstream = Upstream::start();
    let auth = AuthServer::start(&jwks.uri());
    auth.set_metadata_issuer("https://evil.example/");
    let policy = timesheets_policy();
    let spec = spec_without_key_set(&jwks, &upstream, &policy, None);
    let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
    gw.wait_for(
        || gw.log().contains("issuer discovery failed"),
        "the refused discovery to be logged",
    );
    assert_eq!(gw.admin_get("/readyz").0, 503);
    assert!(gw.log().contains("evil.example"), "{}", gw.log());
    let mut claims = claims("read:timesheets");
    claims["iss"] = json!(auth.issuer());
    // No keys: fail closed, as at any start before the keys are in.
    assert_eq!(
        gw.call("GET", "/timesheets", &key.sign(&claims)).status,
        503
    );
    assert_eq!(gw.call("GET", "/healthz", "").status, 200);
    assert_eq!(upstream.count(), 1);
}

#[test]
fn metadata_naming_a_plain_http_key_set_on_another_host_is_refused_at_discovery() {
    let key = TestKey::rsa();
    let jwks = JwksServer::start(&[&key]);
    let upstream = Upstream::start();
    // The metadata is read over loopback, but names a key set anyone on the path to
    // another host could swap.
    let auth = AuthServer::start("http://keys.exampleco.test/.well-known/jwks.json");
    let policy = timesheets_policy();
    let spec = spec_without_key_set(&jwks, &upstream, &policy, None);
    let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
    gw.wait_for(
        || gw.log().contains("is plain http to another host"),
        "the refused discovery to be logged",
    );
    assert_eq!(gw.admin_get("/readyz").0, 503);
    let mut claims = claims("read:timesheets");
    claims["iss"] = json!(auth.issuer());
    assert_eq!(
        gw.call("GET", "/timesheets", &key.sign(&claims)).status,
        503
    );
    assert_eq!(upstream.count(), 0);
}
