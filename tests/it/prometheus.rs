//! What Prometheus sees. Every metric the alerting rules, the Grafana dashboard and the rule
//! tests name is one scopegate exposes (or a recording rule, or Prometheus' own `up`), and a
//! real Prometheus server scraping a running gateway gets the series operators rely on and
//! evaluates the rules of deploy/prometheus/scopegate-rules.yaml without an error.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::*;

// ---------------------------------------------------------------------------------------
// Stories

#[test]
fn every_metric_the_rules_the_dashboard_and_the_rule_tests_use_is_exposed_or_recorded() {
    let (gw, _jwks, _upstream) = Gateway::standard();
    send_traffic(&gw);
    let (status, body) = gw.admin_get("/metrics");
    assert_eq!(status, 200);
    let exposed = exposed_names(&body);
    let rules = rules();
    let recorded: BTreeSet<String> = rules.records.iter().cloned().collect();

    let mut uses = rules.exprs.clone();
    uses.extend(dashboard_exprs());
    uses.extend(rule_test_exprs());
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (origin, expr) in &uses {
        for name in metric_names(expr) {
            let known = exposed.contains(&name)
                || recorded.contains(&name)
                || PROMETHEUS_OWN.contains(&name.as_str());
            if !known {
                unknown.push(format!("{origin}: {name}"));
            }
            used.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "names neither exposed by scopegate nor recorded by a rule:\n{}\n\nexposed: {exposed:?}",
        unknown.join("\n")
    );
    // Not vacuous: all three sources were read, histograms and recording rules included.
    for name in [
        "scopegate_requests_total",
        "scopegate_auth_duration_seconds_bucket",
        "scopegate_policy_info",
        "decision:scopegate_requests:rate5m",
        "instance:scopegate_policy_reload_failed:2m",
        "up",
    ] {
        assert!(
            used.contains(name),
            "{name} not found in any expression: {used:?}"
        );
    }
    assert!(uses.iter().any(|(o, _)| o.starts_with("deploy/grafana/")));
    assert!(
        uses.iter()
            .any(|(o, _)| o.contains("scopegate-rules.test.yaml"))
    );
}

#[test]
fn promql_metric_names_are_told_apart_from_functions_labels_keywords_and_durations() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"sum by (namespace, job) (rate(scopegate_requests_total{decision="deny", reason=~"a|b"}[5m] offset 1h))
                / on (job) group_left (route) sum without(le)(x:y:rate5m) > bool 0.05 * 1e-3"#
        ),
        ["scopegate_requests_total", "x:y:rate5m"]
    );
    assert_eq!(
        names(
            r#"histogram_quantile(0.9, sum by (le) (a_bucket{job="$job", namespace=~"${namespace}"}[$__rate_interval]))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        names("count(up == 1) unless absent(b) or c and d # comment_metric"),
        ["b", "c", "d", "up"]
    );
    assert_eq!(
        names("max_over_time(deriv(e[1h:5m])[2h:]) @ start() - time() + -Inf"),
        ["e"]
    );
    assert_eq!(
        names("label_values(scopegate_ready{job=\"$job\"}, namespace)"),
        ["scopegate_ready"]
    );
}

#[test]
fn a_real_prometheus_scrapes_the_gateway_and_evaluates_the_rules() {
    let (gw, _jwks, _upstream) = Gateway::standard();
    send_traffic(&gw);
    let prom = Prometheus::start(gw.admin);

    // Requests, by route, decision and reason.
    let requests = prom.eventually("scopegate_requests_total for the traffic sent", || {
        let series = prom.query(r#"scopegate_requests_total{job="scopegate"}"#);
        let by_labels: BTreeMap<(String, String, String), f64> = series
            .iter()
            .map(|s| {
                let l = |n: &str| s.labels.get(n).cloned().unwrap_or_default();
                ((l("route"), l("decision"), l("reason")), s.value)
            })
            .collect();
        let expected = [
            (("list-timesheets", "allow", "authorized"), 2.0),
            (("list-timesheets", "deny", "missing_token"), 1.0),
            (("delete-timesheet", "deny", "insufficient_scope"), 1.0),
            (("health", "allow", "public"), 1.0),
        ];
        let all = expected.iter().all(|((route, decision, reason), n)| {
            let key = (route.to_string(), decision.to_string(), reason.to_string());
            by_labels.get(&key) == Some(n)
        });
        all.then_some(series)
    });
    for series in &requests {
        assert_eq!(series.labels.get("instance"), Some(&gw.admin.to_string()));
        assert_eq!(
            series.labels.len(),
            6,
            "__name__, instance, job, route, decision, reason: {:?}",
            series.labels
        );
    }

    // Keys, policy and readiness.
    prom.eventually("3 JWKS keys for issuer exampleco", || {
        let s = prom.query(r#"scopegate_jwks_keys{job="scopegate", issuer="exampleco"}"#);
        (s.len() == 1 && s[0].value == 3.0).then_some(())
    });
    prom.eventually("8 policy routes", || {
        let s = prom.query(r#"scopegate_policy_routes{job="scopegate"}"#);
        (s.len() == 1 && s[0].value == 9.0).then_some(())
    });
    let info = prom.eventually("scopegate_policy_info", || {
        let s = prom.query(r#"scopegate_policy_info{job="scopegate"}"#);
        (s.len() == 1).then(|| s[0].clone())
    });
    let policy_hash = format!("{:x}", Sha256::digest(timesheets_policy().as_bytes()));
    assert_eq!(
        info.labels.get("hash"),
        Some(&policy_hash),
        "the hash label is the policy file's SHA-256"
    );
    assert_eq!(info.value, 1.0);
    prom.eventually("up and ready", || {
        let up = prom.query(r#"up{job="scopegate"}"#);
        let ready = prom.query(r#"scopegate_ready{job="scopegate"}"#);
        (up.len() == 1 && up[0].value == 1.0 && ready.len() == 1 && ready[0].value == 1.0)
            .then_some(())
    });

    // The recording rules run on the scraped series: denials per reason feed the
    // ScopegateDenialSpike alert.
    prom.eventually("reason:scopegate_requests_denied:rate5m per reason", || {
        let s = prom.query(r#"reason:scopegate_requests_denied:rate5m{job="scopegate"}"#);
        let reasons: BTreeSet<&str> = s
            .iter()
            .filter_map(|s| s.labels.get("reason").map(String::as_str))
            .collect();
        (reasons == BTreeSet::from(["insufficient_scope", "missing_token"])).then_some(())
    });
    prom.eventually("decision:scopegate_requests:rate5m", || {
        let s = prom.query(r#"decision:scopegate_requests:rate5m{job="scopegate"}"#);
        (s.len() == 2).then_some(())
    });

    // Every rule of the file was loaded and evaluates without an error.
    let rules = prom.eventually("every rule evaluated", || {
        let rules = prom.rules();
        rules
            .iter()
            .all(|r| r["health"] != "unknown")
            .then_some(rules)
    });
    let expected = self::rules();
    assert_eq!(
        rules.len(),
        expected.exprs.len(),
        "rules loaded: {:?}",
        rules.iter().map(|r| &r["name"]).collect::<Vec<_>>()
    );
    let failing: Vec<String> = rules
        .iter()
        .filter(|r| r["health"] != "ok")
        .map(|r| format!("{}: {}", r["name"], r["lastError"]))
        .collect();
    assert!(
        failing.is_empty(),
        "rules failing in Prometheus:\n{}",
        failing.join("\n")
    );
    // A healthy, ready gateway raises no alert.
    let firing = prom.query(r#"ALERTS{alertname=~"Scopegate.*", alertstate="firing"}"#);
    assert!(firing.is_empty(), "{firing:?}");
}

// ---------------------------------------------------------------------------------------
// Traffic and names

/// One request of each kind the stories count: 2 allowed, a 401, a 403 and a public one.
fn send_traffic(gw: &Gateway) {
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
    assert_eq!(gw.request("GET", "/timesheets", &[]).status, 401);
    assert_eq!(gw.call("DELETE", "/timesheets/7", &token).status, 403);
    assert_eq!(gw.request("GET", "/healthz", &[]).status, 200);
}

/// Prometheus' own series, which rules may use.
const PROMETHEUS_OWN: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
];

/// Series names in a text exposition: every sample's name, and a histogram's or summary's
/// `_bucket`, `_sum` and `_count` from its `# TYPE` line (a histogram with no observation
/// yet has no samples).
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            let suffixes: &[&str] = match kind {
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["_sum", "_count"],
                _ => &[],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Metric names in a PromQL expression: identifiers that are not a function or aggregation
/// (followed by `(`), a keyword, a label name (inside `{}`, or in the list after `by`,
/// `without`, `on`, `ignoring`, `group_left`, `group_right`), a duration, a number, a string
/// or a Grafana variable (`$job`, `${job}`). Grafana's `label_values(selector, label)` gives
/// its selector's name.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
    ];
    const LABEL_LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let expr = match expr.trim().strip_prefix("label_values(") {
        Some(args) => args.rsplit_once(',').map_or(args, |(selector, _)| selector),
        None => expr,
    };
    let c: Vec<char> = expr.chars().collect();
    let ident = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            q @ ('"' | '\'' | '`') => i = skip_string(&c, i, q),
            '{' => i = skip_until(&c, i, '}'),
            '[' => i = skip_until(&c, i, ']'),
            '#' => {
                i = c[i..]
                    .iter()
                    .position(|&ch| ch == '\n')
                    .map_or(c.len(), |p| i + p)
            }
            '$' => {
                i += 1;
                if c.get(i) == Some(&'{') {
                    i = skip_until(&c, i, '}');
                } else {
                    while i < c.len() && ident(c[i]) {
                        i += 1;
                    }
                }
            }
            ch if ch.is_ascii_digit()
                || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                // Numbers (0.05, 1e-3, 0x1f) and durations (5m, 1h30m).
                let exponent_sign =
                    |j: usize| matches!(c[j], '+' | '-') && matches!(c[j - 1], 'e' | 'E');
                while i < c.len()
                    && ((ident(c[i]) && c[i] != ':') || c[i] == '.' || exponent_sign(i))
                {
                    i += 1;
                }
            }
            ch if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' => {
                let start = i;
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let lower = word.to_ascii_lowercase();
                let mut next = i;
                while next < c.len() && c[next].is_whitespace() {
                    next += 1;
                }
                // `sum(…)`, and `sum by (…) (…)` / `sum without (…) (…)`.
                let following: String = c[next..]
                    .iter()
                    .take_while(|&&ch| ident(ch))
                    .collect::<String>()
                    .to_ascii_lowercase();
                let call = c.get(next) == Some(&'(')
                    || (!LABEL_LISTS.contains(&lower.as_str())
                        && matches!(following.as_str(), "by" | "without"));
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if call {
                        i = skip_until(&c, next, ')');
                    }
                } else if !KEYWORDS.contains(&lower.as_str()) && !call {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Index after the string that starts at `i` with quote `q`.
fn skip_string(c: &[char], mut i: usize, q: char) -> usize {
    i += 1;
    while i < c.len() && c[i] != q {
        i += if c[i] == '\\' && q != '`' { 2 } else { 1 };
    }
    i + 1
}

/// Index after the `close` that ends the bracket opened at `i`, strings skipped.
fn skip_until(c: &[char], mut i: usize, close: char) -> usize {
    i += 1;
    while i < c.len() && c[i] != close {
        i = match c[i] {
            q @ ('"' | '\'' | '`') => skip_string(c, i, q),
            _ => i + 1,
        };
    }
    i + 1
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Rules {
    /// Names of the recording rules.
    records: Vec<String>,
    /// Every rule's expression, with where it is.
    exprs: Vec<(String, String)>,
}

const RULES: &str = "deploy/prometheus/scopegate-rules.yaml";

fn rules() -> Rules {
    let file = yaml(RULES);
    let mut records = Vec::new();
    let mut exprs = Vec::new();
    for group in file["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["record"]
                .as_str()
                .or(rule["alert"].as_str())
                .expect("a named rule");
            if let Some(record) = rule["record"].as_str() {
                records.push(record.to_owned());
            }
            let expr = rule["expr"].as_str().expect("expr");
            exprs.push((format!("{RULES}: {name}"), expr.to_owned()));
        }
    }
    Rules { records, exprs }
}

/// Every `expr` in the dashboard (panel targets, annotations) and the variables' queries.
fn dashboard_exprs() -> Vec<(String, String)> {
    const FILE: &str = "deploy/grafana/scopegate.json";
    fn walk(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    let at = format!("{path}.{k}");
                    match (k.as_str(), v) {
                        ("expr", Value::String(e)) => {
                            out.push((format!("{FILE}: {at}"), e.clone()))
                        }
                        _ => walk(v, &at, out),
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo_file(FILE)).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut out = Vec::new();
    walk(&dashboard, "", &mut out);
    for (i, var) in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(query) = var["query"]["query"].as_str() {
            out.push((
                format!("{FILE}: templating.list[{i}].query.query"),
                query.to_owned(),
            ));
        }
    }
    assert!(
        out.len() > 20,
        "only {} expressions in the dashboard",
        out.len()
    );
    out
}

/// The series and expressions of deploy/prometheus/scopegate-rules.test.yaml.
fn rule_test_exprs() -> Vec<(String, String)> {
    const FILE: &str = "deploy/prometheus/scopegate-rules.test.yaml";
    let file = yaml(FILE);
    let mut out = Vec::new();
    for test in file["tests"].as_array().expect("tests") {
        let at = format!(
            "{FILE}: test {:?}",
            test["name"].as_str().unwrap_or_default()
        );
        for input in test["input_series"].as_array().into_iter().flatten() {
            out.push((at.clone(), input["series"].as_str().unwrap().to_owned()));
        }
        for t in test["promql_expr_test"].as_array().into_iter().flatten() {
            out.push((at.clone(), t["expr"].as_str().unwrap().to_owned()));
            for sample in t["exp_samples"].as_array().into_iter().flatten() {
                if let Some(labels) = sample["labels"].as_str() {
                    out.push((at.clone(), labels.to_owned()));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// A Prometheus server

/// One series of an instant query's result.
#[derive(Clone, Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Debian's `prometheus` on a free loopback port with its own storage, scraping one
/// scopegate admin listener every second as job `scopegate`, with the repository's rules.
struct Prometheus {
    child: Mutex<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: scopegate
    scrape_interval: 1s
    static_configs:
      - targets: [\"{target}\"]
",
            rules = repo_file(RULES).display(),
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run prometheus ({e}): run scripts/setup --test (Debian's prometheus package)")
            });
        let prom = Prometheus {
            child: Mutex::new(child),
            addr,
            dir,
        };
        prom.eventually("/-/ready", || {
            (prom.get("/-/ready")?.status == 200).then_some(())
        });
        prom
    }

    fn get(&self, target: &str) -> Option<RawResponse> {
        raw(
            self.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: prometheus\r\n\r\n"),
        )
        .ok()
    }

    /// An instant query's vector result; empty while Prometheus has nothing (or fails).
    fn query(&self, promql: &str) -> Vec<Sample> {
        let q = percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC);
        let Some(response) = self.get(&format!("/api/v1/query?query={q}")) else {
            return Vec::new();
        };
        let body: Value = serde_json::from_str(&response.body).unwrap_or_default();
        assert_ne!(body["status"], "error", "{promql}: {body}");
        body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Sample {
                labels: serde_json::from_value(s["metric"].clone()).unwrap(),
                value: s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap(),
            })
            .collect()
    }

    /// Every rule of every loaded group, as /api/v1/rules describes it.
    fn rules(&self) -> Vec<Value> {
        let Some(response) = self.get("/api/v1/rules") else {
            return Vec::new();
        };
        let body: Value = serde_json::from_str(&response.body).unwrap_or_default();
        body["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Polls `f` until it gives a value; gives up after 30 s with Prometheus' view of its
    /// targets and its log.
    fn eventually<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(value) = f() {
                return value;
            }
            let exited = !matches!(self.child.lock().unwrap().try_wait(), Ok(None));
            if exited || Instant::now() > deadline {
                let targets = self
                    .get("/api/v1/targets")
                    .map(|r| r.body)
                    .unwrap_or_default();
                panic!(
                    "Prometheus never showed {what}{}\ntargets: {targets}\nlog:\n{}",
                    if exited {
                        " (it exited)"
                    } else {
                        " within 30 s"
                    },
                    std::fs::read_to_string(self.dir.path().join("prometheus.log"))
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}
