//! DPoP (RFC 9449) through the real gateway: a token bound to the mobile app's key passes
//! only with a fresh proof by that key, for this request; a stolen token, a replayed or
//! mismatched proof is refused with the DPoP challenge; server nonces work across
//! replicas that share nothing but a secret file.

use jsonwebtoken::Header;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use serde_json::{Value, json};

use crate::harness::*;

pub const PUBLIC_URL: &str = "https://api.exampleco.test";

/// The mobile app's DPoP key: a proof signer.
pub struct Holder {
    pub key: TestKey,
    pub jkt: String,
}

impl Holder {
    pub fn new(key: TestKey) -> Holder {
        let mut jwk = key.jwk.clone();
        jwk.common.key_id = None;
        let jkt = jwk.thumbprint(ThumbprintHash::SHA256).unwrap();
        Holder { key, jkt }
    }

    fn public_jwk(&self) -> Jwk {
        let mut jwk = self.key.jwk.clone();
        jwk.common.key_id = None;
        jwk
    }

    /// A proof with these claims.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.key.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.public_jwk());
        self.key.sign_with(header, claims)
    }

    /// A fresh proof for `method path` and `token`.
    pub fn proof(&self, method: &str, path: &str, token: &str) -> String {
        self.sign(&proof_claims(method, path, token))
    }
}

static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub fn proof_claims(method: &str, path: &str, token: &str) -> Value {
    let n = JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    json!({
        "jti": format!("proof-{}-{n}", std::process::id()),
        "htm": method,
        "htu": format!("{PUBLIC_URL}{path}"),
        "iat": now(),
        "ath": ath(token),
    })
}

pub fn ath(token: &str) -> String {
    use sha2::Digest as _;
    b64(&sha2::Sha256::digest(token.as_bytes()))
}

/// An access token for `scope` bound to `holder`'s key.
fn bound_token(holder: &Holder, scope: &str) -> String {
    let mut c = claims(scope);
    c["cnf"] = json!({"jkt": holder.jkt});
    TestKey::rsa().sign(&c)
}

pub fn dpop_call(gw: &Gateway, method: &str, path: &str, token: &str, proof: &str) -> RawResponse {
    gw.request(
        method,
        path,
        &[("Authorization", &format!("DPoP {token}")), ("DPoP", proof)],
    )
}

pub fn challenges(r: &RawResponse) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The one challenge, which must be DPoP's with `error`.
pub fn assert_dpop_error(r: &RawResponse, error: &str) {
    assert_eq!(r.status, 401, "{r:?}");
    let c = challenges(r);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].starts_with("DPoP realm=\"scopegate\", algs=\""),
        "{c:?}"
    );
    assert!(c[0].contains(&format!("error=\"{error}\"")), "{c:?}");
    assert_eq!(r.json()["error"], error);
}

fn start(issuer_mode: &str, extra: &str, policy: &str) -> (Gateway, JwksServer, Upstream) {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();

    let extra = format!("dpop:\n  public_url: {PUBLIC_URL}\n{extra}");
    let mut spec = GatewaySpec::new(&jwks, &upstream, policy);
    spec.issuer_option("dpop", json!(issuer_mode));
    spec.extra = &extra;
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    (gw, jwks, upstream)
}

fn deny_metric(reason: &str) -> String {
    format!(
        r#"scopegate_requests_total{{decision="deny",reason="{reason}",route="list-timesheets"}}"#
    )
}

#[test]
fn a_bound_token_passes_only_with_a_fresh_proof_by_its_key() {
    let (gw, _jwks, upstream) = start("allowed", "", &timesheets_policy());
    let app = Holder::new(TestKey::ec());
    let thief = Holder::new(TestKey::ed());
    let token = bound_token(&app, "read:timesheets");

    let proof = app.proof("GET", "/timesheets", &token);
    let ok = dpop_call(&gw, "GET", "/timesheets", &token, &proof);
    assert_eq!(ok.status, 200, "{ok:?}\n{}", gw.log());
    let seen = upstream.last();
    assert_eq!(seen.header("x-auth-key-thumbprint"), Some(app.jkt.as_str()));
    assert_eq!(seen.header("x-auth-subject"), Some("auth0|alice"));

    // The same proof again: a replay.
    let replayed = dpop_call(&gw, "GET", "/timesheets", &token, &proof);
    assert_dpop_error(&replayed, "invalid_dpop_proof");
    assert!(replayed.body.contains("already used"), "{}", replayed.body);
    gw.wait_metric(&deny_metric("dpop_replayed"), 1.0);

    // The stolen token, without the key: as a bearer token, with no proof, with the
    // thief's own proof.
    let stolen = gw.call("GET", "/timesheets", &token);
    assert_dpop_error(&stolen, "invalid_token");
    gw.wait_metric(&deny_metric("dpop_bound_as_bearer"), 1.0);
    let no_proof = gw.request(
        "GET",
        "/timesheets",
        &[("Authorization", &format!("DPoP {token}"))],
    );
    assert_dpop_error(&no_proof, "invalid_dpop_proof");
    gw.wait_metric(&deny_metric("dpop_proof_missing"), 1.0);
    let thiefs = thief.proof("GET", "/timesheets", &token);
    assert_dpop_error(
        &dpop_call(&gw, "GET", "/timesheets", &token, &thiefs),
        "invalid_dpop_proof",
    );
    gw.wait_metric(&deny_metric("dpop_key_mismatch"), 1.0);

    // Proofs by the right key for another request, another token or another time.
    let other_token = bound_token(&app, "read:timesheets approve:timesheets");
    let mut stale = proof_claims("GET", "/timesheets", &token);
    stale["iat"] = json!(now() - 600);
    let mut future = proof_claims("GET", "/timesheets", &token);
    future["iat"] = json!(now() + 600);
    let wrong = [
        ("htm", app.proof("POST", "/timesheets", &token)),
        ("htu path", app.proof("GET", "/approvals", &token)),
        ("ath", app.proof("GET", "/timesheets", &other_token)),
        ("stale iat", app.sign(&stale)),
        ("future iat", app.sign(&future)),
        ("htu host", {
            let mut c = proof_claims("GET", "/timesheets", &token);
            c["htu"] = json!("https://evil.example/timesheets");
            app.sign(&c)
        }),
        ("htu scheme", {
            let mut c = proof_claims("GET", "/timesheets", &token);
            c["htu"] = json!("http://api.exampleco.test/timesheets");
            app.sign(&c)
        }),
    ];
    for (what, proof) in &wrong {
        let r = dpop_call(&gw, "GET", "/timesheets", &token, proof);
        assert_dpop_error(&r, "invalid_dpop_proof");
        assert!(
            !r.body.contains(&token),
            "{what}: the token is never echoed"
        );
    }
    gw.wait_metric(&deny_metric("invalid_dpop_proof"), wrong.len() as f64);

    // Two proofs at once.
    let r = gw.request(
        "GET",
        "/timesheets",
        &[
            ("Authorization", &format!("DPoP {token}")),
            ("DPoP", &app.proof("GET", "/timesheets", &token)),
            ("DPoP", &app.proof("GET", "/timesheets", &token)),
        ],
    );
    assert_dpop_error(&r, "invalid_dpop_proof");

    // The query is not part of htu; a fresh proof still passes after all of the above.
    let path = "/timesheets?page=2";
    let again = dpop_call(
        &gw,
        "GET",
        path,
        &token,
        &app.proof("GET", "/timesheets", &token),
    );
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(upstream.last().target, path);
}

#[test]
fn a_bound_tokens_cache_hit_is_counted_once_per_request() {
    // A cached bound token is found without waiting, and its proof checked in a future
    // that takes up what was found: the lookup is not made, nor counted, twice.
    let (gw, _jwks, _upstream) = start("allowed", "", &timesheets_policy());
    let app = Holder::new(TestKey::ec());
    let token = bound_token(&app, "read:timesheets");
    for _ in 0..3 {
        let proof = app.proof("GET", "/timesheets", &token);
        assert_eq!(
            dpop_call(&gw, "GET", "/timesheets", &token, &proof).status,
            200
        );
    }
    gw.wait_metric(
        r#"scopegate_requests_total{decision="allow",reason="authorized",route="list-timesheets"}"#,
        3.0,
    );
    let m = |s: &str| gw.metric(s);
    assert_eq!(
        m(r#"scopegate_token_cache_requests_total{result="miss"}"#),
        1.0
    );
    assert_eq!(
        m(r#"scopegate_token_cache_requests_total{result="hit"}"#),
        2.0
    );
}

#[test]
fn where_dpop_is_allowed_bearer_tokens_still_pass_and_challenges_offer_both() {
    let (gw, _jwks, upstream) = start("allowed", "", &timesheets_policy());
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let r = gw.request(
        "GET",
        "/timesheets",
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("X-Auth-Key-Thumbprint", "spoofed"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(upstream.last().header("x-auth-key-thumbprint"), None);

    let missing = gw.request("GET", "/timesheets", &[]);
    assert_eq!(missing.status, 401);
    assert_eq!(
        challenges(&missing),
        [
            r#"Bearer realm="scopegate""#,
            r#"DPoP realm="scopegate", algs="ES256 ES384 Ed25519 EdDSA PS256 RS256""#
        ]
    );
    // An unbound token with the DPoP scheme is not a DPoP-bound token.
    let app = Holder::new(TestKey::ec());
    let r = dpop_call(
        &gw,
        "GET",
        "/timesheets",
        &token,
        &app.proof("GET", "/timesheets", &token),
    );
    assert_dpop_error(&r, "invalid_dpop_proof");
}

#[test]
fn an_ed25519_proof_under_its_fully_specified_name_passes_and_is_advertised() {
    let (gw, _jwks, upstream) = start("allowed", "", &timesheets_policy());
    let app = Holder::new(TestKey::ed());
    let token = bound_token(&app, "read:timesheets");
    // As current JOSE libraries sign it: `alg: Ed25519` (RFC 9864), not `EdDSA`.
    let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": app.public_jwk()});
    let proof = app
        .key
        .sign_raw(&header, &proof_claims("GET", "/timesheets", &token));
    let r = dpop_call(&gw, "GET", "/timesheets", &token, &proof);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log());
    assert_eq!(
        upstream.last().header("x-auth-key-thumbprint"),
        Some(app.jkt.as_str())
    );
    // The deprecated name still passes.
    let r = dpop_call(
        &gw,
        "GET",
        "/timesheets",
        &token,
        &app.proof("GET", "/timesheets", &token),
    );
    assert_eq!(r.status, 200);
    // The name on another kind of key is refused.
    let ec = Holder::new(TestKey::ec());
    let ec_token = bound_token(&ec, "read:timesheets");
    let header = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": ec.public_jwk()});
    let forged = ec
        .key
        .sign_raw(&header, &proof_claims("GET", "/timesheets", &ec_token));
    assert_dpop_error(
        &dpop_call(&gw, "GET", "/timesheets", &ec_token, &forged),
        "invalid_dpop_proof",
    );
    // Configured by that name alone, EdDSA is accepted and advertised under both.
    let (gw, _jwks, _upstream) = start(
        "allowed",
        "  algorithms: [ES256, Ed25519]\n",
        &timesheets_policy(),
    );
    assert_eq!(
        challenges(&gw.request("GET", "/timesheets", &[]))[1],
        r#"DPoP realm="scopegate", algs="ES256 Ed25519 EdDSA""#
    );
    let proof = app.key.sign_raw(
        &header_for(&app),
        &proof_claims("GET", "/timesheets", &token),
    );
    assert_eq!(
        dpop_call(&gw, "GET", "/timesheets", &token, &proof).status,
        200
    );
}

fn header_for(holder: &Holder) -> Value {
    json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": holder.public_jwk()})
}

#[test]
fn where_dpop_is_required_plain_bearer_tokens_are_refused() {
    // Required by the route, for an issuer that leaves DPoP off.
    let policy = timesheets_policy().replace(
        "    path: /timesheets\n    scopes: [read:timesheets]\n",
        "    path: /timesheets\n    scopes: [read:timesheets]\n    dpop: required\n",
    );
    assert_ne!(policy, timesheets_policy());
    let (gw, _jwks, _upstream) = start("off", "", &policy);
    let bearer = TestKey::rsa().sign(&claims("read:timesheets"));
    let r = gw.call("GET", "/timesheets", &bearer);
    assert_dpop_error(&r, "invalid_token");
    gw.wait_metric(&deny_metric("dpop_required"), 1.0);
    // Only DPoP is offered there; other routes are as before.
    let missing = gw.request("GET", "/timesheets", &[]);
    assert_eq!(
        challenges(&missing),
        [r#"DPoP realm="scopegate", algs="ES256 ES384 Ed25519 EdDSA PS256 RS256""#]
    );
    assert_eq!(gw.call("GET", "/timesheets/7", &bearer).status, 200);
    assert_eq!(
        challenges(&gw.request("GET", "/timesheets/7", &[])),
        [r#"Bearer realm="scopegate""#]
    );
    let app = Holder::new(TestKey::ec());
    let token = bound_token(&app, "read:timesheets");
    let proof = app.proof("GET", "/timesheets", &token);
    assert_eq!(
        dpop_call(&gw, "GET", "/timesheets", &token, &proof).status,
        200
    );

    // Required by the issuer: every route.
    let (gw, _jwks, _upstream) = start("required", "", &timesheets_policy());
    assert_dpop_error(&gw.call("GET", "/timesheets/7", &bearer), "invalid_token");
    let proof = app.proof("GET", "/timesheets/7", &token);
    assert_eq!(
        dpop_call(&gw, "GET", "/timesheets/7", &token, &proof).status,
        200
    );
    // A scope the token lacks is still a 403, in the DPoP challenge.
    let proof = app.proof("GET", "/approvals", &token);
    let r = dpop_call(&gw, "GET", "/approvals", &token, &proof);
    assert_eq!(r.status, 403);
    assert_eq!(challenges(&r).len(), 1);
    assert!(challenges(&r)[0].starts_with("DPoP "), "{r:?}");
    assert!(
        challenges(&r)[0].contains(r#"error="insufficient_scope""#),
        "{r:?}"
    );
}

/// The nonce of window `counter`, as README documents it.
fn nonce_for(secret: &[u8], counter: u64) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let mut message = b"scopegate dpop nonce v1\0".to_vec();
    message.extend_from_slice(&counter.to_be_bytes());
    b64(aws_lc_rs::hmac::sign(&key, &message).as_ref())
}

#[test]
fn nonces_issued_by_one_replica_are_accepted_by_another_until_their_window_passes() {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret_file = secret_dir.path().join("dpop-nonce.secret");
    let secret = b"a shared secret of at least thirty-two bytes";
    std::fs::write(&secret_file, secret).unwrap();
    let extra = format!(
        "  nonce:\n    secret_file: {}\n    window_seconds: 300\n",
        secret_file.display()
    );
    let (a, _jwks_a, _up_a) = start("allowed", &extra, &timesheets_policy());
    let (b, _jwks_b, _up_b) = start("allowed", &extra, &timesheets_policy());
    let app = Holder::new(TestKey::ec());
    let token = bound_token(&app, "read:timesheets");

    // Without a nonce, replica A says which to use.
    let first = dpop_call(
        &a,
        "GET",
        "/timesheets",
        &token,
        &app.proof("GET", "/timesheets", &token),
    );
    assert_dpop_error(&first, "use_dpop_nonce");
    let nonce = first
        .header("dpop-nonce")
        .expect("a DPoP-Nonce header")
        .to_owned();
    a.wait_metric(&deny_metric("use_dpop_nonce"), 1.0);

    // Replica B, a separate process sharing only the secret file, accepts it.
    let mut claims = proof_claims("GET", "/timesheets", &token);
    claims["nonce"] = json!(nonce);
    let r = dpop_call(&b, "GET", "/timesheets", &token, &app.sign(&claims));
    assert_eq!(r.status, 200, "{r:?}\n{}", b.log());

    // A nonce from two windows ago is stale: refused with a fresh one to use.
    let old = nonce_for(secret, now() / 300 - 2);
    let mut claims = proof_claims("GET", "/timesheets", &token);
    claims["nonce"] = json!(old);
    let r = dpop_call(&b, "GET", "/timesheets", &token, &app.sign(&claims));
    assert_dpop_error(&r, "use_dpop_nonce");
    let fresh = r.header("dpop-nonce").unwrap();
    assert_ne!(fresh, old);
    // The previous window's nonce still passes; another secret's never does.
    for (nonce, status) in [
        (nonce_for(secret, now() / 300 - 1), 200),
        (
            nonce_for(b"another deployment's secret, 32+ bytes", now() / 300),
            401,
        ),
    ] {
        let mut claims = proof_claims("GET", "/timesheets", &token);
        claims["nonce"] = json!(nonce);
        let r = dpop_call(&a, "GET", "/timesheets", &token, &app.sign(&claims));
        assert_eq!(r.status, status, "{r:?}");
    }
}

#[test]
fn dpop_configuration_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("scopegate.yaml");
    std::fs::write(dir.path().join("p.yaml"), "version: 1\nroutes: []\n").unwrap();
    std::fs::write(dir.path().join("short.secret"), "too short").unwrap();
    std::fs::write(
        &config,
        "version: 1
upstream: http://127.0.0.1:1
policy: p.yaml
issuers:
  - {issuer: i, audiences: [a], jwks_uri: http://127.0.0.1:1/jwks, dpop: required}
dpop:
  algorithms: [ES256, HS256]
  nonce: {secret_file: short.secret}
",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scopegate"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    for expected in [
        "issuers[0].dpop: DPoP needs dpop.public_url",
        "dpop.algorithms: name at least one, and only asymmetric ones",
        "dpop.nonce.secret_file:",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
}
