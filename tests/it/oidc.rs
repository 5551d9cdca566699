//! End to end against a real, certified authorization server: `oidc-provider` (npm) issues
//! JWT or opaque access tokens through Authorization Code + PKCE, and scopegate enforces
//! the Timesheets policy with them (opaque ones by introspection, with the issuer found by
//! discovery). Needs Node.js and `npm ci` in `tests/oidc` (scripts/setup
//! --test does it).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use sha2::Digest;

use crate::harness::*;

const CLIENT: &str = "timesheets-mobile";
const REDIRECT: &str = "com.exampleco.timesheets://callback";

/// The oidc-provider process; it exits when its stdin closes, so it dies with the test.
struct Provider {
    child: Child,
    issuer: String,
    /// Kept open: a closed pipe would kill the server on its next line of output.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Provider {
    /// A provider issuing JWT access tokens.
    fn start() -> Provider {
        Provider::start_with("jwt")
    }

    /// A provider issuing access tokens of `format` (`jwt` or `opaque`).
    fn start_with(format: &str) -> Provider {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").exists(),
            "run `scripts/setup --test` (npm ci in tests/oidc) first"
        );
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("0")
            .current_dir(&dir)
            .env("ACCESS_TOKEN_FORMAT", format)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let issuer = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("oidc-provider did not start: {line:?}"))
            .to_owned();
        Provider {
            child,
            issuer,
            _stdout: stdout,
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the mobile app does: PKCE pair, authorization request, login form, code exchange.
async fn sign_in(issuer: &str, user: &str, password: &str, scope: &str) -> Result<String, String> {
    sign_in_with(issuer, user, password, scope, None)
        .await
        .map(|(token, _)| token)
}

/// [`sign_in`], with a DPoP proof on the code exchange when `dpop` holds one (RFC 9449 §5);
/// returns the access token and its `token_type`.
async fn sign_in_with(
    issuer: &str,
    user: &str,
    password: &str,
    scope: &str,
    dpop: Option<&str>,
) -> Result<(String, String), String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let verifier = b64(&rand::random::<[u8; 32]>());
    let challenge = b64(&sha2::Sha256::digest(verifier.as_bytes()));
    let state = b64(&rand::random::<[u8; 16]>());

    let absolute = |location: &str| {
        if location.starts_with('/') {
            format!("{issuer}{location}")
        } else {
            location.to_owned()
        }
    };
    let keep_cookies = |jar: &mut BTreeMap<String, String>, resp: &reqwest::Response| {
        for value in resp.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    };
    let cookie_header = |jar: &BTreeMap<String, String>| {
        jar.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let location = |resp: &reqwest::Response| {
        resp.headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned())
            .ok_or_else(|| format!("no redirect: {}", resp.status()))
    };

    // 1. Authorization request.
    let resp = http
        .get(format!("{issuer}/auth"))
        .query(&[
            ("client_id", CLIENT),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    keep_cookies(&mut jar, &resp);
    let interaction = absolute(&location(&resp)?);

    // 2. Log in at the provider's form.
    let resp = http
        .post(format!("{interaction}/login"))
        .header("cookie", cookie_header(&jar))
        .form(&[("login", user), ("password", password)])
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if resp.status() != 303 {
        return Err(format!("login refused: {}", resp.status()));
    }
    keep_cookies(&mut jar, &resp);
    let resume = absolute(&location(&resp)?);

    // 3. Resume: the provider redirects to the app with the code.
    let resp = http
        .get(resume)
        .header("cookie", cookie_header(&jar))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let callback = reqwest::Url::parse(&location(&resp)?).map_err(|e| format!("{e:?}"))?;
    let query: BTreeMap<String, String> = callback.query_pairs().into_owned().collect();
    assert_eq!(query.get("state"), Some(&state), "state round-trips");
    let code = query.get("code").ok_or("no code")?;

    // 4. Exchange the code with the verifier.
    let mut exchange = http.post(format!("{issuer}/token"));
    if let Some(proof) = dpop {
        exchange = exchange.header("DPoP", proof);
    }
    let tokens: serde_json::Value = exchange
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let token = tokens["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no access token: {tokens}"))?;
    let token_type = tokens["token_type"].as_str().unwrap_or_default().to_owned();
    Ok((token, token_type))
}

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn tokens_from_oidc_provider_are_enforced_route_by_route() {
    let provider = Provider::start();
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let spec = GatewaySpec {
        jwks_uri: format!("{}/jwks", provider.issuer),
        upstream: upstream.addr,
        policy: &policy,
        issuer: default_issuer_options(),
        extra: "",
    };
    // The harness's issuer is fixed; point it at the provider's by rewriting the config.
    let gw = Gateway::start_with_issuer(&spec, &provider.issuer);
    gw.wait_ready();

    let (alice, bob) = sign_in_alice_and_bob(&provider.issuer);
    let claims = payload(&alice);
    assert_eq!(claims["iss"], provider.issuer.as_str());
    assert_eq!(claims["aud"], AUDIENCE);
    assert!(
        !claims["scope"]
            .as_str()
            .unwrap()
            .contains("approve:timesheets"),
        "{claims}"
    );

    // The provider puts each user's role in the namespaced roles claim.
    assert_eq!(
        payload(&bob)["https://api.exampleco.com/roles"],
        serde_json::json!(["Manager"])
    );

    // Alice is an Employee: read, create, delete; no approvals (her role), no batch upload.
    // Bob is a Manager: his role lets him list approvals; approving needs an MFA sign-in,
    // which this provider does not do, so he is asked to step up (401).
    assert_route_table(&gw, &alice, &bob);
    let r = gw.call("PUT", "/approvals/7", &bob);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"insufficient_user_authentication\""),
        "{r:?}"
    );
    assert_eq!(
        gw.call("GET", "/approvals", &alice).json()["error_description"],
        "The access token's claim https://api.exampleco.com/roles does not allow this request"
    );
    // The backend learns who called from the verified subject, never from the client.
    gw.request(
        "GET",
        "/timesheets",
        &[
            ("Authorization", &format!("Bearer {alice}")),
            ("X-Auth-Subject", "bob"),
        ],
    );
    assert_eq!(upstream.last().header("x-auth-subject"), Some("alice"));
    assert_eq!(upstream.last().header("x-auth-client-id"), Some(CLIENT));

    // An unknown user gets no token at all.
    let refused = rt().block_on(sign_in(
        &provider.issuer,
        "mallory",
        "guess",
        "openid read:timesheets",
    ));
    assert!(refused.is_err());
    // A token from the provider with a tampered scope claim is refused.
    let mut parts: Vec<String> = alice.split('.').map(str::to_owned).collect();
    let mut forged = payload(&alice);
    forged["scope"] = serde_json::json!("approve:timesheets");
    parts[1] = b64(forged.to_string().as_bytes());
    assert_eq!(gw.call("PUT", "/approvals/7", &parts.join(".")).status, 401);
}

/// Alice (Employee) and Bob (Manager) sign in asking for every API scope.
fn sign_in_alice_and_bob(issuer: &str) -> (String, String) {
    let all = "openid read:timesheets create:timesheets delete:timesheets approve:timesheets";
    let alice = rt()
        .block_on(sign_in(issuer, "alice", "alice-pw", all))
        .unwrap();
    let bob = rt()
        .block_on(sign_in(issuer, "bob", "bob-pw", all))
        .unwrap();
    (alice, bob)
}

/// Every route of [`EXPECT`] answers alice's and bob's tokens as the table says.
fn assert_route_table(gw: &Gateway, alice: &str, bob: &str) {
    for (method, path, for_alice, for_bob) in EXPECT {
        assert_eq!(
            gw.call(method, path, alice).status,
            for_alice,
            "alice {method} {path}"
        );
        assert_eq!(
            gw.call(method, path, bob).status,
            for_bob,
            "bob {method} {path}"
        );
    }
}

/// The route table both token kinds are held to: (method, path, alice, bob).
const EXPECT: [(&str, &str, u16, u16); 7] = [
    ("GET", "/timesheets", 200, 200),
    ("POST", "/timesheets", 200, 200),
    ("GET", "/timesheets/7", 200, 200),
    ("DELETE", "/timesheets/7", 200, 200),
    ("GET", "/approvals", 403, 200),
    ("PUT", "/approvals/7", 403, 401),
    ("POST", "/timesheets/upload", 403, 403),
];

#[test]
fn opaque_tokens_from_oidc_provider_are_introspected_and_refused_after_revocation() {
    let provider = Provider::start_with("opaque");
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("introspection-secret");
    std::fs::write(&secret, "scopegate-introspection-secret\n").unwrap();
    // Only the issuer's URL: its key set and introspection endpoint come from discovery.
    let mut spec = GatewaySpec {
        jwks_uri: String::new(),
        upstream: upstream.addr,
        policy: &policy,
        issuer: default_issuer_options(),
        extra: "",
    };
    spec.issuer_option(
        "introspection",
        json!({
            "client_id": "scopegate",
            "client_secret_file": secret.display().to_string(),
            "cache_max_seconds": 1,
        }),
    );
    let gw = Gateway::start_with_issuer(&spec, &provider.issuer);
    gw.wait_ready();

    let (alice, bob) = sign_in_alice_and_bob(&provider.issuer);
    assert!(!alice.contains('.'), "an opaque token, not a JWT: {alice}");
    assert_route_table(&gw, &alice, &bob);
    assert_eq!(upstream.last().header("x-auth-subject"), Some("bob"));
    assert_eq!(upstream.last().header("x-auth-client-id"), Some(CLIENT));

    // The app signs out: the provider revokes the token (RFC 7009). Within the cache
    // maximum (1 s here) the gateway stops accepting it.
    let revoked = rt().block_on(async {
        reqwest::Client::new()
            .post(format!("{}/token/revocation", provider.issuer))
            .form(&[("token", alice.as_str()), ("client_id", CLIENT)])
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(revoked.unwrap(), 200);
    gw.wait_for(
        || gw.call("GET", "/timesheets", &alice).status == 401,
        "the revoked token to be refused",
    );
    assert_eq!(gw.call("GET", "/timesheets", &bob).status, 200);
}

#[test]
fn dpop_bound_tokens_from_oidc_provider_pass_only_with_a_fresh_proof_by_their_key() {
    use crate::dpop::{Holder, PUBLIC_URL, assert_dpop_error, dpop_call, proof_claims};
    let provider = Provider::start();
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let extra = format!("dpop:\n  public_url: {PUBLIC_URL}\n");
    let mut spec = GatewaySpec {
        jwks_uri: format!("{}/jwks", provider.issuer),
        upstream: upstream.addr,
        policy: &policy,
        issuer: default_issuer_options(),
        extra: &extra,
    };
    spec.issuer_option("dpop", json!("allowed"));
    let gw = Gateway::start_with_issuer(&spec, &provider.issuer);
    gw.wait_ready();

    // PKCE sign-in with a DPoP key: the proof goes with the code exchange.
    let app = Holder::new(TestKey::ec());
    let token_proof = serde_json::json!({
        "jti": b64(&rand::random::<[u8; 16]>()),
        "htm": "POST",
        "htu": format!("{}/token", provider.issuer),
        "iat": now(),
    });
    let (token, token_type) = rt()
        .block_on(sign_in_with(
            &provider.issuer,
            "alice",
            "alice-pw",
            "openid read:timesheets",
            Some(&app.sign(&token_proof)),
        ))
        .unwrap();
    assert_eq!(token_type, "DPoP");
    assert_eq!(payload(&token)["cnf"]["jkt"], app.jkt.as_str());

    // A valid proof: allowed, and the backend learns the key.
    let proof = app.proof("GET", "/timesheets", &token);
    let r = dpop_call(&gw, "GET", "/timesheets", &token, &proof);
    assert_eq!(r.status, 200, "{r:?}\n{}", gw.log());
    assert_eq!(
        upstream.last().header("x-auth-key-thumbprint"),
        Some(app.jkt.as_str())
    );

    // Refused: without a proof (as a bearer token, and with the DPoP scheme), with another
    // key's proof, replayed, for another method, URL or token, and stale.
    assert_dpop_error(&gw.call("GET", "/timesheets", &token), "invalid_token");
    let none = gw.request(
        "GET",
        "/timesheets",
        &[("Authorization", &format!("DPoP {token}"))],
    );
    assert_dpop_error(&none, "invalid_dpop_proof");
    let thief = Holder::new(TestKey::ed());
    let mut stale = proof_claims("GET", "/timesheets", &token);
    stale["iat"] = serde_json::json!(now() - 3600);
    for proof in [
        thief.proof("GET", "/timesheets", &token),
        proof.clone(),
        app.proof("POST", "/timesheets", &token),
        app.proof("GET", "/timesheets/7", &token),
        app.proof("GET", "/timesheets", "another token"),
        app.sign(&stale),
    ] {
        assert_dpop_error(
            &dpop_call(&gw, "GET", "/timesheets", &token, &proof),
            "invalid_dpop_proof",
        );
    }
}
