//! One reading of every path: the policy decides on exactly what the upstream receives.

use crate::harness::*;

#[test]
fn the_upstream_receives_the_normalized_path_that_was_authorized() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    for (sent, forwarded) in [
        ("//timesheets", "/timesheets"),
        ("/timesheets/./7", "/timesheets/7"),
        ("/approvals/../timesheets/7", "/timesheets/7"),
        ("/time%73heets?week=47", "/timesheets?week=47"),
        ("/timesheets/7?x=%2F", "/timesheets/7?x=%2F"),
    ] {
        let r = gw.call("GET", sent, &token);
        assert_eq!(r.status, 200, "{sent}");
        assert_eq!(upstream.last().target, forwarded, "{sent}");
    }
}

#[test]
fn dot_segments_cannot_climb_into_a_route_the_token_may_not_use() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    // Resolves to /approvals/7: decided as that, so denied.
    let r = gw.call("PUT", "/timesheets/../approvals/7", &token);
    assert_eq!(r.status, 403);
    assert_eq!(upstream.count(), 0);
}

#[test]
fn ambiguous_paths_get_400_invalid_request() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets approve:timesheets"));
    for path in [
        "/timesheets%2F7",
        "/timesheets%2f..%2fapprovals",
        "/timesheets%5C7",
        "/timesheets/%2e%2e/approvals",
        "/timesheets/%2E/7",
        "/timesheets%00",
        "/../timesheets",
        "/timesheets/%zz",
    ] {
        let r = gw.call("GET", path, &token);
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(
            r.header("www-authenticate")
                .unwrap()
                .contains("invalid_request"),
            "{path}"
        );
    }
    assert_eq!(upstream.count(), 0);
}
