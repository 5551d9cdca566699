//! The Timesheets policy end to end: each route allowed with its scope, denied without it,
//! and anything unlisted denied.

use crate::harness::*;

const TABLE: [(&str, &str, &str); 7] = [
    ("GET", "/timesheets", "read:timesheets"),
    ("POST", "/timesheets", "create:timesheets"),
    ("GET", "/timesheets/7", "read:timesheets"),
    ("DELETE", "/timesheets/7", "delete:timesheets"),
    ("POST", "/timesheets/upload", "batch:upload"),
    ("GET", "/approvals", "approve:timesheets"),
    ("PUT", "/approvals/7", "approve:timesheets"),
];

#[test]
fn every_timesheets_route_is_allowed_with_its_scope_and_denied_without_it() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let all: Vec<&str> = TABLE.iter().map(|t| t.2).collect();
    for (method, path, scope) in TABLE {
        let before = upstream.count();
        // Approvals also need the Manager role and a recent MFA sign-in (tests/it/policy.rs).
        let token_for = |scope: &str| {
            let mut c = claims(scope);
            if path.starts_with("/approvals") {
                c["https://api.exampleco.com/roles"] = serde_json::json!(["Manager"]);
                c["acr"] = serde_json::json!("mfa");
                c["auth_time"] = serde_json::json!(now());
            }
            rsa.sign(&c)
        };
        let r = gw.call(method, path, &token_for(scope));
        assert_eq!(r.status, 200, "{method} {path} with {scope}");
        let seen = upstream.last();
        assert_eq!((seen.method.as_str(), seen.target.as_str()), (method, path));
        assert_eq!(upstream.count(), before + 1);

        // Every other scope of the API, but not this one.
        let others: Vec<&str> = all.iter().copied().filter(|s| *s != scope).collect();
        let r = gw.call(method, path, &token_for(&others.join(" ")));
        assert_eq!(r.status, 403, "{method} {path} without {scope}");
        let challenge = r.header("www-authenticate").unwrap();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!("scope=\"{scope}\"")),
            "{challenge}"
        );
        assert_eq!(
            upstream.count(),
            before + 1,
            "{method} {path} reached the upstream"
        );
    }
}

#[test]
fn unlisted_methods_and_paths_are_denied_by_default() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let everything =
        "read:timesheets create:timesheets delete:timesheets approve:timesheets batch:upload";
    let token = TestKey::rsa().sign(&claims(everything));
    for (method, path) in [
        ("PATCH", "/timesheets/7"),
        ("GET", "/admin"),
        ("DELETE", "/timesheets"),
        ("GET", "/timesheets/7/attachments"),
        ("OPTIONS", "/timesheets"),
    ] {
        let r = gw.call(method, path, &token);
        assert_eq!(r.status, 403, "{method} {path}");
        assert_eq!(r.json()["error"], "access_denied");
    }
    assert_eq!(upstream.count(), 0);
}

#[test]
fn public_routes_need_no_token() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let r = gw.request("GET", "/healthz", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(upstream.last().target, "/healthz");
}
