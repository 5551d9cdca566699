//! The policy compiler's tests: every error with its location, every overlap named.

use super::*;

fn errors(yaml: &str) -> Vec<String> {
    compile(yaml.as_bytes(), "p.yaml")
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn unknown_method_is_reported_with_line_column_and_hint() {
    let e = errors(
        "version: 1
routes:
  - id: a
    methods: [GET, FETCH]
    path: /a
    scopes: [read:a]
",
    );
    assert_eq!(
        e,
        [
            "p.yaml:4:20: routes[0].methods[1] (route \"a\"): unknown method \"FETCH\" (expected GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)"
        ]
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let e = errors(
        "version: 2
routes:
  - id: a
    methods: [GET]
    path: a
    scopes: [read:a]
  - id: b
    methods: [POST]
    path: /b
  - id: b
    methods: [PUT]
    path: /c
    public: true
    scopes: [x]
",
    );
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(e[0].starts_with("p.yaml:1:10: version"), "{}", e[0]);
}

#[test]
fn new_keys_report_their_own_positions() {
    let e = errors(
        "version: 1
routes:
  - id: a
    methods: [GET]
    path: /a
    claims:
      - claim: roles
        equals: x
        contains_any: [y]
      - claim: []
        contains_all: []
    authentication:
      acr: [\"multi factor\"]
  - id: b
    methods: [GET]
    path: /b
    scopes: [s]
    any_of:
      - scopes: [t]
  - id: c
    methods: [GET]
    path: /c
    any_of:
      - {}
      - scopes: [\"bad scope\"]
    authentication: {}
",
    );
    assert_eq!(
        e,
        [
            "p.yaml:7:9: routes[0].claims[0] (route \"a\"): give exactly one of equals, contains_any or contains_all",
            "p.yaml:10:16: routes[0].claims[1].claim (route \"a\"): name the claim: \"https://exampleco.com/roles\", or [realm_access, roles] for a nested one",
            "p.yaml:11:23: routes[0].claims[1].contains_all (route \"a\"): list at least one value",
            "p.yaml:13:13: routes[0].authentication.acr[0] (route \"a\"): \"multi factor\" is not an acr value (no spaces)",
            "p.yaml:19:7: routes[1].any_of (route \"b\"): give any_of or scopes/claims, not both (move them into an alternative)",
            "p.yaml:24:9: routes[2].any_of[0] (route \"c\"): name scopes, claims or both",
            "p.yaml:25:18: routes[2].any_of[1].scopes[0] (route \"c\"): \"bad scope\" is not a scope token (RFC 6749 §3.3)",
            "p.yaml:26:21: routes[2].authentication (route \"c\"): say what sign-in the route needs: acr: [...], max_age: <seconds> or both",
        ],
        "{e:#?}"
    );
}

#[test]
fn alternatives_nested_claims_and_dry_run_compile() {
    let p = compile(
        br#"version: 1
dry_run: true
routes:
  - id: read
    methods: [GET]
    path: /t
    any_of:
      - scopes: [read:t]
      - scopes: [admin:t]
        claims:
          - claim: [resource_access, my.client, roles]
            contains_all: [admin]
  - id: tenant
    dry_run: false
    methods: [POST]
    path: /t
    claims:
      - {claim: tid, equals: acme}
"#,
        "p.yaml",
    )
    .unwrap();
    assert_eq!(
        p.scopes().into_iter().collect::<Vec<_>>(),
        ["admin:t", "read:t"]
    );
    assert_eq!(
        p.condition_claims().names().collect::<Vec<_>>(),
        ["resource_access", "tid"]
    );
    assert!(p.dry_run && p.route("GET", "/t").unwrap().dry_run);
    assert!(!p.route("POST", "/t").unwrap().dry_run);
    let Requirement::Token(t) = &p.route("GET", "/t").unwrap().requirement else {
        panic!("a protected route")
    };
    assert_eq!(
        t.any_of[1].claims[0].claim.segments,
        ["resource_access", "my.client", "roles"]
    );
}

#[test]
fn a_public_route_takes_no_claims_or_authentication() {
    let e = errors(
        "version: 1
routes:
  - id: h
    methods: [GET]
    path: /h
    public: true
    claims: [{claim: x, equals: y}]
    authentication: {max_age: 5}
",
    );
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].contains("routes[0].claims") && e[1].contains("routes[0].authentication"),
        "{e:#?}"
    );
}

#[test]
fn overlapping_routes_name_both() {
    let e = errors(
        "version: 1
routes:
  - id: one
    methods: [GET]
    path: /timesheets/{id}
    scopes: [read:timesheets]
  - id: two
    methods: [GET, POST]
    path: /timesheets/upload
    scopes: [batch:upload]
",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("\"two\"") && e[0].contains("\"one\""),
        "{}",
        e[0]
    );
}

/// Three routes per tenant under `/api/t{n}/`, one starting with a parameter, and
/// `extra`: the overlap check walks them segment by segment, not pairwise.
fn tenants(extra: &str) -> Vec<String> {
    let mut y = String::from("version: 1\nroutes:\n");
    for t in 0..200 {
        for (id, path) in [
            ("list", format!("/api/t{t}/items")),
            ("read", format!("/api/t{t}/items/{{id}}")),
            ("files", format!("/api/t{t}/items/{{id}}/files/{{*path}}")),
        ] {
            y.push_str(&format!(
                "  - {{id: {id}-{t}, methods: [GET], path: \"{path}\", scopes: [s]}}\n"
            ));
        }
    }
    y.push_str("  - {id: status, methods: [GET], path: \"/{tenant}/status/{id}\", scopes: [s]}\n");
    y.push_str(extra);
    match compile(y.as_bytes(), "t.yaml") {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn overlaps_are_found_in_large_policies_under_one_prefix() {
    assert_eq!(tenants(""), Vec::<String>::new());
    // A parameter where the others have the tenant: it overlaps every tenant's list
    // route, and the leading-parameter route too (`/api/status/items`).
    let e = tenants("  - {id: clash, methods: [GET], path: \"/api/{t}/items\", scopes: [s]}\n");
    assert_eq!(e.len(), 201, "{}", e[0]);
    assert!(e[0].contains("\"list-0\""), "{}", e[0]);
    assert!(e[200].contains("\"status\""), "{}", e[200]);
    // A static segment under one tenant's parameter.
    let e = tenants("  - {id: new, methods: [GET], path: /api/t150/items/new, scopes: [s]}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("\"read-150\""), "{}", e[0]);
    // Under a catch-all.
    let e =
        tenants("  - {id: deep, methods: [GET], path: /api/t7/items/1/files/a/b, scopes: [s]}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].contains("\"files-7\""), "{}", e[0]);
}

#[test]
fn same_path_different_methods_is_fine() {
    let p = compile(
        br#"version: 1
routes:
  - {id: get, methods: [GET], path: "/t/{id}", scopes: [r]}
  - {id: del, methods: [DELETE], path: "/t/{id}", scopes: [d]}
  - {id: up, methods: [POST], path: /t/upload, scopes: [u]}
  - {id: files, methods: [GET], path: "/files/{*rest}", public: true}
"#,
        "p.yaml",
    )
    .unwrap();
    assert_eq!(&*p.route("DELETE", "/t/9").unwrap().id, "del");
    assert_eq!(&*p.route("POST", "/t/upload").unwrap().id, "up");
    assert_eq!(&*p.route("GET", "/files/a/b/c").unwrap().id, "files");
    assert_eq!(p.hash.len(), 64);
}

#[test]
fn yaml_syntax_errors_carry_a_location() {
    let e = errors("version: 1\nroutes:\n  - id: [\n");
    assert!(e[0].starts_with("p.yaml:"), "{}", e[0]);
    assert!(
        e[0].split(':').nth(1).unwrap().parse::<u32>().is_ok(),
        "{}",
        e[0]
    );
}

#[test]
fn template_overlap_rules() {
    use Segment::*;
    let s = |x: &str| Static(x.into());
    assert!(overlap::overlap(&[s("a"), Param], &[s("a"), s("b")]));
    assert!(!overlap::overlap(&[s("a"), Param], &[s("a")]));
    assert!(overlap::overlap(
        &[s("a"), CatchAll],
        &[s("a"), s("b"), s("c")]
    ));
    assert!(!overlap::overlap(&[s("a"), CatchAll], &[s("a")]));
    assert!(!overlap::overlap(&[s("a")], &[s("b")]));
}
