//! Token verification as a client sees it: every bad token is a 401 with
//! `error="invalid_token"`, and none reaches the upstream.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::harness::*;

fn assert_invalid_token(gw: &Gateway, upstream: &Upstream, token: &str, why: &str) {
    let before = upstream.count();
    let r = gw.call("GET", "/timesheets", token);
    assert_eq!(r.status, 401, "{why}: {r:?}");
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{why}: {challenge}"
    );
    assert_eq!(r.json()["error"], "invalid_token", "{why}");
    assert_eq!(upstream.count(), before, "{why}: reached the upstream");
}

#[test]
fn valid_tokens_of_every_configured_algorithm_pass() {
    let (gw, _jwks, upstream) = Gateway::standard();
    for key in [TestKey::rsa(), TestKey::ec(), TestKey::ed()] {
        let r = gw.call("GET", "/timesheets", &key.sign(&claims("read:timesheets")));
        assert_eq!(r.status, 200, "{:?}: {r:?}", key.alg);
    }
    assert_eq!(upstream.count(), 3);
}

#[test]
fn an_ed25519_token_passes_under_its_fully_specified_name_on_an_ed25519_key_only() {
    let (gw, jwks, upstream) = Gateway::standard();
    let header = |kid: &str| json!({"alg": "Ed25519", "kid": kid, "typ": "at+jwt"});
    let ed = TestKey::ed();
    let token = ed.sign_raw(&header("ed-1"), &claims("read:timesheets"));
    let r = gw.call("GET", "/timesheets", &token);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log());
    // A key set may name it so too.
    let mut public = ed.public();
    public["alg"] = json!("Ed25519");
    public["kid"] = json!("ed-2");
    jwks.set_raw_keys(vec![TestKey::rsa().public(), public]);
    let token = ed.sign_raw(&header("ed-2"), &claims("read:timesheets"));
    gw.wait_for(
        || gw.call("GET", "/timesheets", &token).status == 200,
        "the key named Ed25519 to be loaded",
    );
    // The name cannot take an RSA key's signature for an Ed25519 one.
    let rsa = TestKey::rsa();
    let forged = rsa.sign_raw(&header("rsa-1"), &claims("read:timesheets"));
    let before = upstream.count();
    let r = gw.call("GET", "/timesheets", &forged);
    assert_eq!(r.status, 401);
    assert_eq!(upstream.count(), before);
}

#[test]
fn bad_tokens_get_401_invalid_token_and_never_reach_the_upstream() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let scope = "read:timesheets";
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims(scope);
        f(&mut c);
        rsa.sign(&c)
    };

    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| c["exp"] = json!(now() - 120)),
        "expired",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| c["nbf"] = json!(now() + 600)),
        "not yet valid",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| c["iat"] = json!(now() + 600)),
        "issued in the future",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| c["iss"] = json!("https://evil.test/")),
        "wrong issuer",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| c["aud"] = json!("https://api.exampleco.com/other")),
        "wrong audience",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| c["aud"] = json!(["https://api.exampleco.com/timesheets/"])),
        "audience must match exactly",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        "no exp",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| {
            c.as_object_mut().unwrap().remove("aud");
        }),
        "no aud",
    );
    assert_invalid_token(
        &gw,
        &upstream,
        &with(&|c| c["exp"] = json!("tomorrow")),
        "exp not a number",
    );

    // A valid token with its signature taken from another token.
    let good = rsa.sign(&claims(scope));
    let other = rsa.sign(&claims("create:timesheets"));
    let forged = format!(
        "{}.{}",
        good.rsplit_once('.').unwrap().0,
        other.rsplit_once('.').unwrap().1
    );
    assert_invalid_token(&gw, &upstream, &forged, "bad signature");

    // Signed by a key the JWKS does not publish, under a kid it does publish.
    let mut stranger = TestKey::rsa2();
    stranger.kid = "rsa-1".into();
    assert_invalid_token(
        &gw,
        &upstream,
        &stranger.sign(&claims(scope)),
        "foreign key",
    );

    // Unknown kid.
    assert_invalid_token(
        &gw,
        &upstream,
        &TestKey::rsa2().sign(&claims(scope)),
        "unknown kid",
    );

    // Garbage of every shape.
    for junk in [
        "abc",
        "a.b.c",
        "e30.e30.",
        "....",
        "eyJhbGciOiJSUzI1NiJ9.%%%.x",
    ] {
        let r = gw.call("GET", "/timesheets", junk);
        assert_eq!(r.status / 100, 4, "{junk}: {r:?}");
        assert_ne!(r.status, 403, "{junk}");
    }
    assert_eq!(upstream.count(), 0);
}

#[test]
fn alg_none_is_never_accepted() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let header = b64(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
    let payload = b64(claims("read:timesheets").to_string().as_bytes());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        assert_invalid_token(&gw, &upstream, &token, "alg none");
    }
    // The three-part one is counted as the algorithm it is, not as a malformed token (the
    // two-part one is malformed).
    let series = r#"scopegate_requests_total{decision="deny",reason="disallowed_algorithm",route="list-timesheets"}"#;
    gw.wait_metric(series, 1.0);
}

#[test]
fn a_mistyped_subject_or_client_is_refused_rather_than_forwarded_as_absent() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    for (name, value) in [
        ("sub", json!(["auth0|alice"])),
        ("sub", json!(7)),
        ("client_id", json!({"id": "timesheets-mobile"})),
        ("azp", json!(false)),
        ("acr", json!(2)),
        ("auth_time", json!("yesterday")),
    ] {
        let mut c = claims("read:timesheets");
        c[name] = value;
        assert_invalid_token(&gw, &upstream, &rsa.sign(&c), name);
    }
    // A null stands for an absent claim.
    let mut c = claims("read:timesheets");
    c["sub"] = json!(null);
    let r = gw.call("GET", "/timesheets", &rsa.sign(&c));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(upstream.last().header("x-auth-subject"), None);
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    let (gw, _jwks, upstream) = Gateway::standard();
    // The classic confusion attack: HMAC keyed with the verifier's public key bytes.
    let public_pem = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(fixture("rsa-1.pem"))
        .output()
        .expect("openssl runs")
        .stdout;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let token = jsonwebtoken::encode(
        &header,
        &claims("read:timesheets"),
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    assert_invalid_token(&gw, &upstream, &token, "HS256 with the public key");
    // The same with the modulus as the secret.
    let n = TestKey::rsa().public()["n"].as_str().unwrap().to_owned();
    let token = jsonwebtoken::encode(
        &header,
        &claims("read:timesheets"),
        &EncodingKey::from_secret(n.as_bytes()),
    )
    .unwrap();
    assert_invalid_token(&gw, &upstream, &token, "HS256 with the modulus");
}

#[test]
fn header_algorithm_cannot_switch_the_key_to_another_family() {
    let (gw, _jwks, upstream) = Gateway::standard();
    // An ES256 signature presented under the RSA key's kid.
    let mut ec = TestKey::ec();
    ec.kid = "rsa-1".into();
    assert_invalid_token(
        &gw,
        &upstream,
        &ec.sign(&claims("read:timesheets")),
        "ES256 under an RSA kid",
    );
}

#[test]
fn crit_extensions_and_foreign_token_types_are_rejected() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let c = claims("read:timesheets");

    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-1".into());
    h.crit = Some(vec!["exp-ext".into()]);
    assert_invalid_token(&gw, &upstream, &rsa.sign_with(h, &c), "crit");

    for typ in ["id_token+jwt", "logout+jwt", "secevent+jwt"] {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa-1".into());
        h.typ = Some(typ.into());
        assert_invalid_token(&gw, &upstream, &rsa.sign_with(h, &c), typ);
    }
    for typ in ["JWT", "at+jwt", "application/at+jwt"] {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa-1".into());
        h.typ = Some(typ.into());
        let r = gw.call("GET", "/timesheets", &rsa.sign_with(h, &c));
        assert_eq!(r.status, 200, "{typ}");
    }
}

#[test]
fn scopes_come_from_scope_scp_and_permissions_and_match_exactly() {
    let (gw, _jwks, _upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let mut c = claims("");
    c["scp"] = json!(["read:timesheets"]);
    assert_eq!(
        gw.call("GET", "/timesheets", &rsa.sign(&c)).status,
        200,
        "scp array"
    );
    let mut c = claims("");
    c["scp"] = json!("read:timesheets");
    assert_eq!(
        gw.call("GET", "/timesheets", &rsa.sign(&c)).status,
        200,
        "scp string"
    );
    let mut c = claims("");
    c["permissions"] = json!(["approve:timesheets"]);
    c["https://api.exampleco.com/roles"] = json!(["Manager"]);
    assert_eq!(
        gw.call("GET", "/approvals", &rsa.sign(&c)).status,
        200,
        "permissions"
    );
    let c = claims("read:timesheets_extra read:timesheets:all READ:TIMESHEETS");
    assert_eq!(
        gw.call("GET", "/timesheets", &rsa.sign(&c)).status,
        403,
        "near misses"
    );
}

#[test]
fn a_token_from_an_unknown_issuer_is_401_even_when_signed_by_a_known_key() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let mut c = claims("read:timesheets");
    c["iss"] = json!("https://exampleco.test"); // no trailing slash: a different issuer
    assert_invalid_token(
        &gw,
        &upstream,
        &TestKey::rsa().sign(&c),
        "issuer without slash",
    );
}
