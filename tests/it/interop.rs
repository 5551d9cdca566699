//! A real OAuth client library against the demo's authorization server and a real
//! gateway: `oauth4webapi` (npm; openid-client 6 is built on it) discovers everything from
//! the API's URL through RFC 9728, signs in with Authorization Code + PKCE, calls with an
//! Ed25519 DPoP proof and retries with the gateway's nonce, follows a step-up challenge,
//! and revokes an opaque token that the gateway then refuses at once. The script is
//! `tests/oidc/interop.mjs`; it needs Node.js and `npm ci` in `tests/oidc`.

use std::process::Command;

use scopegate::demo::authz::AuthServer;
use scopegate::demo::authz::directory::{
    DEMO_ONE_TIME_CODE, MOBILE_CLIENT_ID, MOBILE_REDIRECT_URI, RESOURCE_SERVER_CLIENT_ID,
    RESOURCE_SERVER_CLIENT_SECRET,
};

use crate::harness::*;

#[test]
fn a_real_client_library_discovers_signs_in_proves_steps_up_and_is_refused_once_revoked() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    assert!(
        dir.join("node_modules/oauth4webapi").exists(),
        "run `scripts/setup --test` (npm ci in tests/oidc) first"
    );
    let auth = rt()
        .block_on(AuthServer::spawn(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            0,
        ))))
        .expect("the demo authorization server starts");
    let secrets = tempfile::tempdir().unwrap();
    let client_secret = secrets.path().join("introspection-secret");
    std::fs::write(&client_secret, RESOURCE_SERVER_CLIENT_SECRET).unwrap();
    let nonce_secret = secrets.path().join("dpop-nonce-secret");
    std::fs::write(&nonce_secret, "a-dpop-nonce-secret-of-at-least-32-bytes").unwrap();

    // A reading route that asks the authorization server every time: a revocation bites
    // on the next call.
    let policy = timesheets_policy().replace(
        "    path: /timesheets/{id}\n    scopes: [read:timesheets]\n",
        "    path: /timesheets/{id}\n    scopes: [read:timesheets]\n    introspect: always\n",
    );
    assert_ne!(policy, timesheets_policy());
    let upstream = Upstream::start();
    let jwks = JwksServer::unstarted(&[]);
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    spec.jwks_uri = auth.jwks_uri();
    spec.issuer_option("dpop", json!("allowed")).issuer_option(
        "introspection",
        json!({
            "endpoint": auth.introspection_endpoint(),
            "client_id": RESOURCE_SERVER_CLIENT_ID,
            "client_secret_file": client_secret.display().to_string(),
        }),
    );
    let extra = format!(
        "dpop:\n  public_url: \"{{gateway}}\"\n  nonce:\n    secret_file: \"{}\"\nprotected_resource:\n  resource: \"{{gateway}}\"\n",
        nonce_secret.display()
    );
    spec.extra = &extra;
    let gw = Gateway::start_with_issuer(&spec, &auth.issuer());
    gw.wait_ready();

    let out = Command::new("node")
        .arg("interop.mjs")
        .current_dir(&dir)
        .env("API", format!("http://{}", gw.addr))
        .env("CLIENT_ID", MOBILE_CLIENT_ID)
        .env("REDIRECT_URI", MOBILE_REDIRECT_URI)
        .env("OTP", DEMO_ONE_TIME_CODE)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "interop.mjs failed\nstdout:\n{stdout}\nstderr:\n{stderr}\ngateway log:\n{}",
        gw.log()
    );
    for step in [
        "strict-resource-discovery",
        "prefix-resource-discovery",
        "authorization-server-discovery",
        "pkce-sign-in",
        "dpop-nonce-retry",
        "ed25519-proof",
        "step-up",
        "revocation",
    ] {
        assert!(
            stdout.contains(&format!("STEP {step} ok")),
            "{step} missing:\n{stdout}"
        );
    }
    // What the gateway saw of it, by its own counters.
    gw.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="use_dpop_nonce",route="list-timesheets"}"#,
        1.0,
    );
    gw.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="insufficient_user_authentication",route="approve-timesheet"}"#,
        1.0,
    );
    gw.wait_metric(
        r#"scopegate_requests_total{decision="deny",reason="token_inactive",route="read-timesheet"}"#,
        1.0,
    );
}
