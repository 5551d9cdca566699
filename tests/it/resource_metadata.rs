//! RFC 9728 protected-resource metadata: served by the gateway from the live policy,
//! named by every 401 challenge, and following policy reloads.

use crate::harness::*;

const RESOURCE: &str = "protected_resource:
  resource: https://api.exampleco.com/timesheets
  resource_name: ExampleCo Timesheets
";

#[test]
fn the_metadata_lists_the_issuer_and_the_policy_scopes_and_challenges_point_at_it() {
    let (gw, _jwks, upstream) = Gateway::with_extra(RESOURCE);

    let r = gw.request(
        "GET",
        "/.well-known/oauth-protected-resource/timesheets",
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc = r.json();
    assert_eq!(doc["resource"], "https://api.exampleco.com/timesheets");
    assert_eq!(doc["authorization_servers"], serde_json::json!([ISSUER]));
    assert_eq!(doc["resource_name"], "ExampleCo Timesheets");
    assert_eq!(
        doc["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!([
            "approve:timesheets",
            "batch:upload",
            "create:timesheets",
            "delete:timesheets",
            "read:timesheets"
        ])
    );
    // Served by the gateway, never forwarded.
    assert_eq!(upstream.count(), 0);
    gw.wait_metric(
        r#"scopegate_requests_total{decision="served",reason="resource_metadata",route="none"}"#,
        1.0,
    );

    let metadata = r#"resource_metadata="https://api.exampleco.com/.well-known/oauth-protected-resource/timesheets""#;
    let missing = gw.request("GET", "/timesheets", &[]);
    assert_eq!(missing.status, 401);
    assert!(
        missing
            .header("www-authenticate")
            .unwrap()
            .contains(metadata),
        "{:?}",
        missing.header("www-authenticate")
    );
    let bad = gw.call("GET", "/timesheets", "not.a.token");
    assert!(bad.header("www-authenticate").unwrap().contains(metadata));
}

#[test]
fn the_metadata_follows_a_policy_reload() {
    let (gw, _jwks, _upstream) = Gateway::with_extra(RESOURCE);
    let scopes = || {
        gw.request(
            "GET",
            "/.well-known/oauth-protected-resource/timesheets",
            &[],
        )
        .json()["scopes_supported"]
            .clone()
    };
    assert!(!scopes().to_string().contains("export:timesheets"));
    let policy = timesheets_policy();
    let edited = format!(
        "{policy}\n  - id: export\n    methods: [GET]\n    path: /export\n    scopes: [export:timesheets]\n"
    );
    std::fs::write(gw.policy_path(), edited).unwrap();
    gw.wait_for(
        || scopes().to_string().contains("export:timesheets"),
        "the reloaded policy's scopes in the metadata",
    );
    // `/export` lies outside the resource's path: the reload warns about it as the
    // start-up did about the policy it started with.
    gw.wait_for(
        || {
            gw.log()
                .lines()
                .any(|l| l.contains("lie outside") && l.contains("\"export\""))
        },
        "a warning naming the reloaded policy's route outside the resource",
    );
    // Other methods than GET and HEAD are not allowed on the document.
    assert_eq!(
        gw.request(
            "POST",
            "/.well-known/oauth-protected-resource/timesheets",
            &[]
        )
        .status,
        405
    );
}

#[test]
fn with_dpop_on_the_metadata_names_its_algorithms_and_whether_it_is_required() {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let policy = timesheets_policy();
    let mut spec = GatewaySpec::new(&jwks, &upstream, &policy);
    let extra = format!(
        "{RESOURCE}dpop:\n  public_url: https://api.exampleco.com\n  algorithms: [ES256, EdDSA]\n"
    );
    spec.extra = &extra;
    spec.issuer_option("dpop", json!("required"));
    let gw = Gateway::start(&spec);
    gw.wait_ready();
    let doc = gw
        .request(
            "GET",
            "/.well-known/oauth-protected-resource/timesheets",
            &[],
        )
        .json();
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "Ed25519", "EdDSA"])
    );
    assert_eq!(doc["dpop_bound_access_tokens_required"], true);
}

#[test]
fn a_resource_path_ending_in_a_slash_keeps_it_in_the_metadata_location() {
    let (gw, _jwks, upstream) = Gateway::with_extra(
        "protected_resource:\n  resource: https://api.exampleco.com/timesheets/\n",
    );
    // RFC 9728 §3.1 removes only a slash right after the host.
    let r = gw.request(
        "GET",
        "/.well-known/oauth-protected-resource/timesheets/",
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["resource"],
        "https://api.exampleco.com/timesheets/"
    );
    assert_eq!(upstream.count(), 0);
    let challenge = gw.request("GET", "/timesheets", &[]);
    assert!(
        challenge.header("www-authenticate").unwrap().contains(
            r#"resource_metadata="https://api.exampleco.com/.well-known/oauth-protected-resource/timesheets/""#
        ),
        "{challenge:?}"
    );
}

/// The `resource_metadata` URL of a challenge.
fn challenge_metadata_url(r: &RawResponse) -> String {
    let challenge = r.header("www-authenticate").unwrap();
    let (_, rest) = challenge.split_once("resource_metadata=\"").unwrap();
    rest.split('"').next().unwrap().to_owned()
}

#[test]
fn every_protected_route_leads_strict_and_prefix_clients_to_one_resource_and_audience() {
    let (gw, _jwks, _upstream) =
        Gateway::with_extra("protected_resource:\n  resource: https://api.exampleco.com\n");
    let origin = "https://api.exampleco.com";
    for (method, path) in [
        ("GET", "/timesheets"),
        ("GET", "/timesheets/7"),
        ("PUT", "/approvals/7"),
        ("POST", "/timesheets/upload"),
    ] {
        let refused = gw.request(method, path, &[]);
        assert_eq!(refused.status, 401);
        let url = challenge_metadata_url(&refused);
        let location = url.strip_prefix(origin).unwrap();
        let doc = gw.request("GET", location, &[]).json();
        let resource = doc["resource"].as_str().unwrap();
        // Strict (RFC 9728 §3.3 as published, oauth4webapi): the document's resource is
        // exactly the identifier its location was built from (§3.1 read backwards).
        let identifier = url.replacen("/.well-known/oauth-protected-resource", "", 1);
        assert_eq!(resource, identifier, "{path}");
        // Prefix (the MCP SDKs): same origin, and the called URL lies under it.
        let called = format!("{origin}{path}");
        assert!(
            called.starts_with(resource.trim_end_matches('/')),
            "{path}: {resource}"
        );
        // One resource for every route: the audience clients ask tokens for.
        assert_eq!(resource, origin);
    }
    // No document names a single URL: a client is never led to a per-URL audience.
    let per_url = gw.request(
        "GET",
        "/.well-known/oauth-protected-resource/approvals/7",
        &[],
    );
    assert_ne!(per_url.status, 200);
}
