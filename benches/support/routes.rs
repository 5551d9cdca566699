//! Synthetic policies for the policy bench and the footprint example: realistic route
//! shapes (static segments, `{id}` parameters, a catch-all, several methods), a fixed mix of
//! request paths that hit and miss, and a naive matcher to compare the radix tree against.
//!
//! Shared by `benches/policy.rs` and `examples/footprint.rs` through `#[path]`.

#![allow(dead_code)]

use std::fmt::Write as _;

/// Resource names; a block of ten routes is generated per (group, resource).
const RESOURCES: [&str; 10] = [
    "timesheets",
    "approvals",
    "projects",
    "invoices",
    "expenses",
    "contracts",
    "documents",
    "teams",
    "users",
    "reports",
];

/// Routes per block (see [`policy_yaml`]).
pub const BLOCK: usize = 10;

fn block_names(b: usize) -> (usize, &'static str) {
    (b / RESOURCES.len(), RESOURCES[b % RESOURCES.len()])
}

/// One route: methods, template, id, scope.
pub struct RouteSpec {
    pub id: String,
    pub methods: &'static [&'static str],
    pub path: String,
    pub scope: String,
}

/// `n` routes (a multiple of [`BLOCK`]), all under `/api/`, so the first segment does not
/// separate them: the realistic, harder case for both matchers.
pub fn routes(n: usize) -> Vec<RouteSpec> {
    assert!(
        n.is_multiple_of(BLOCK) && n > 0,
        "route count must be a multiple of {BLOCK}"
    );
    let mut out = Vec::with_capacity(n);
    for b in 0..n / BLOCK {
        let (g, r) = block_names(b);
        let base = format!("/api/g{g}/{r}");
        let read = format!("read:{r}");
        let write = format!("write:{r}");
        let mut push =
            |suffix: &str, methods: &'static [&'static str], path: String, scope: &str| {
                out.push(RouteSpec {
                    id: format!("{r}-g{g}-{suffix}"),
                    methods,
                    path,
                    scope: scope.to_owned(),
                })
            };
        push("list", &["GET"], base.clone(), &read);
        push("create", &["POST"], base.clone(), &write);
        push("read", &["GET", "HEAD"], format!("{base}/{{id}}"), &read);
        push(
            "update",
            &["PUT", "PATCH"],
            format!("{base}/{{id}}"),
            &write,
        );
        push(
            "delete",
            &["DELETE"],
            format!("{base}/{{id}}"),
            &format!("delete:{r}"),
        );
        push("history", &["GET"], format!("{base}/{{id}}/history"), &read);
        push(
            "comments",
            &["GET"],
            format!("{base}/{{id}}/comments"),
            &read,
        );
        push(
            "comment",
            &["GET"],
            format!("{base}/{{id}}/comments/{{comment_id}}"),
            &read,
        );
        push("batch", &["POST"], format!("{base}/batch"), &write);
        push(
            "files",
            &["GET"],
            format!("{base}/{{id}}/files/{{*path}}"),
            &read,
        );
    }
    out
}

/// The routes as a policy file.
pub fn policy_yaml(routes: &[RouteSpec]) -> String {
    let mut y = String::from("version: 1\nroutes:\n");
    for r in routes {
        let _ = writeln!(
            y,
            "  - id: {}\n    methods: [{}]\n    path: \"{}\"\n    scopes: [\"{}\"]",
            r.id,
            r.methods.join(", "),
            r.path,
            r.scope
        );
    }
    y
}

/// 64 requests spread over the whole table: 5 of every 8 hit a route, 3 miss (unknown
/// trailing segment, a method the path does not allow, an unknown resource).
pub fn requests(n_routes: usize) -> Vec<(&'static str, String)> {
    let blocks = n_routes / BLOCK;
    (0..64)
        .map(|k| {
            let (g, r) = block_names((k * 7919) % blocks);
            let base = format!("/api/g{g}/{r}");
            match k % 8 {
                0 => ("GET", format!("{base}/4711")),
                1 => ("GET", base),
                2 => ("PUT", format!("{base}/4711")),
                3 => ("GET", format!("{base}/4711/comments/12")),
                4 => ("GET", format!("{base}/4711/files/2024/q3/report.pdf")),
                5 => ("GET", format!("{base}/4711/unknown")),
                6 => ("POST", format!("{base}/4711")),
                _ => ("GET", format!("/api/g{g}/nosuch/4711")),
            }
        })
        .collect()
}

/// A segment of a template, for the naive matcher.
enum Seg {
    Static(String),
    Param,
    CatchAll,
}

/// The obvious implementation: every route in file order, each compared segment by
/// segment. Routes never overlap (the compiler refuses overlaps), so the first match is
/// the only one.
pub struct NaiveRouter {
    routes: Vec<(Vec<&'static str>, Vec<Seg>, usize)>,
}

impl NaiveRouter {
    pub fn new(routes: &[RouteSpec]) -> NaiveRouter {
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let segs = r.path[1..]
                    .split('/')
                    .map(|s| {
                        if s.starts_with("{*") {
                            Seg::CatchAll
                        } else if s.starts_with('{') {
                            Seg::Param
                        } else {
                            Seg::Static(s.to_owned())
                        }
                    })
                    .collect();
                (r.methods.to_vec(), segs, i)
            })
            .collect();
        NaiveRouter { routes }
    }

    /// Index of the route for `method` and `path`, if any.
    pub fn route(&self, method: &str, path: &str) -> Option<usize> {
        'routes: for (methods, segs, index) in &self.routes {
            if !methods.contains(&method) {
                continue;
            }
            let mut parts = path[1..].split('/');
            for seg in segs {
                match (seg, parts.next()) {
                    (Seg::CatchAll, Some(p)) if !p.is_empty() => return Some(*index),
                    (Seg::Static(s), Some(p)) if s == p => {}
                    (Seg::Param, Some(p)) if !p.is_empty() => {}
                    _ => continue 'routes,
                }
            }
            if parts.next().is_none() {
                return Some(*index);
            }
        }
        None
    }
}
