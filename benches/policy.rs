//! Policy matching cost against the number of routes: the compiled policy (one radix tree
//! per method, `matchit`) beside a naive linear scan over the same templates.
//!
//! Each iteration routes the same 64 requests (5/8 hits, 3/8 misses) spread over the whole
//! table; criterion reports time per iteration (64 lookups) and, with
//! `Throughput::Elements`, lookups/s. The setup checks that both matchers pick the same
//! route for every request, and prints how long each policy took to compile.
//!
//! `requirement/*` is the check of one identity against a route, after matching and
//! verification: a scope-only route beside one with three conditions besides its scope (a
//! role, a tenant in a nested claim, a step-up rule), for the same caller.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/routes.rs"]
mod routes;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn policy_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_match");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for n in SIZES {
        let specs = routes::routes(n);
        let yaml = routes::policy_yaml(&specs);
        let started = Instant::now();
        let policy = scopegate::policy::compile(yaml.as_bytes(), "bench.yaml")
            .unwrap_or_else(|e| panic!("generated policy compiles: {:?}", &e[..e.len().min(3)]));
        eprintln!(
            "policy_match: {n} routes, {} KiB of YAML, compiled in {:.1} ms",
            yaml.len() / 1024,
            started.elapsed().as_secs_f64() * 1e3
        );
        let naive = routes::NaiveRouter::new(&specs);
        let requests = routes::requests(n);
        let mut hits = 0;
        for (method, path) in &requests {
            let radix = policy.route(method, path).map(|r| r.id.to_string());
            let linear = naive.route(method, path).map(|i| specs[i].id.clone());
            assert_eq!(radix, linear, "{method} {path}");
            hits += usize::from(radix.is_some());
        }
        assert_eq!(hits, 40, "5 of every 8 requests hit");

        group.throughput(Throughput::Elements(requests.len() as u64));
        group.bench_with_input(BenchmarkId::new("radix", n), &requests, |b, reqs| {
            b.iter(|| route_all(&policy, reqs))
        });
        // The same 64 paths as at 10 routes (all in the first block of routes), against this
        // table: separates the cost of a larger tree from that of requests spread over it.
        let block0 = routes::requests(routes::BLOCK);
        group.bench_with_input(
            BenchmarkId::new("radix_first_block_only", n),
            &block0,
            |b, reqs| b.iter(|| route_all(&policy, reqs)),
        );
        group.bench_with_input(BenchmarkId::new("naive_linear", n), &requests, |b, reqs| {
            b.iter(|| {
                let mut found = 0usize;
                for (method, path) in reqs {
                    found += usize::from(naive.route(black_box(method), black_box(path)).is_some());
                }
                found
            })
        });
    }
    group.finish();
}

/// Routes every request; returns how many matched, so the lookups cannot be optimized away.
fn route_all(policy: &scopegate::policy::Policy, requests: &[(&str, String)]) -> usize {
    requests
        .iter()
        .filter(|(method, path)| policy.route(black_box(method), black_box(path)).is_some())
        .count()
}

const REQUIREMENTS: &str = r#"version: 1
routes:
  - {id: scope-only, methods: [GET], path: "/timesheets/{id}", scopes: [read:timesheets]}
  - id: three-conditions
    methods: [GET]
    path: "/reports/{id}"
    scopes: [read:timesheets]
    claims:
      - {claim: https://api.exampleco.com/roles, contains_any: [Manager]}
      - {claim: [org, id], equals: exampleco}
    authentication: {acr: [mfa], max_age: 86400}
"#;

fn requirement(c: &mut Criterion) {
    let policy = scopegate::policy::compile(REQUIREMENTS.as_bytes(), "bench.yaml")
        .expect("bench policy compiles");
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "scope": "openid profile read:timesheets create:timesheets",
        "https://api.exampleco.com/roles": ["Employee", "Manager"],
        "org": {"id": "exampleco", "region": "eu"},
        "acr": "mfa",
        "auth_time": now,
    });
    let all = claims.as_object().expect("an object");
    let identity = scopegate::auth::identity::Identity::offline_from_claims(all)
        .expect("well-typed claims")
        // What a verified identity keeps: the claims the conditions read.
        .with_conditions(policy.condition_claims().pick(all));
    let mut group = c.benchmark_group("requirement");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    for (name, path) in [
        ("scope_only", "/timesheets/7"),
        ("three_conditions", "/reports/7"),
    ] {
        let route = policy.route("GET", path).expect("route");
        assert_eq!(route.decide(&identity, now), Ok(()), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| route.decide(black_box(&identity), black_box(now)).is_ok())
        });
    }
    group.finish();
}

criterion_group!(benches, policy_match, requirement);
criterion_main!(benches);
