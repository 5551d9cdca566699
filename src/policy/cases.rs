//! Decision tests written next to a policy (`timesheets.test.yaml`), run by `scopegate test`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::explain::explain;
use crate::yaml::Pos;

/// A decision-test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    version: u32,
    /// The policy under test, relative to this file. Default: this file's name without
    /// `.test` (`timesheets.test.yaml` → `timesheets.yaml`).
    #[serde(default)]
    policy: Option<PathBuf>,
    cases: Vec<Spanned<Case>>,
}

/// One expectation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// Free text shown on failure.
    #[serde(default)]
    name: Option<String>,
    /// `METHOD /path`.
    request: String,
    /// Scopes of the token; absent means no token at all.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// Claims of the token, as an alternative to `scopes` (scope, scp, permissions).
    #[serde(default)]
    claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// `allow` or `deny`.
    expect: String,
    /// The reason label expected, e.g. `insufficient_scope`.
    #[serde(default)]
    reason: Option<String>,
    /// The route id expected to match.
    #[serde(default)]
    route: Option<String>,
}

/// The result of one file.
#[derive(Debug, Default)]
pub struct CaseReport {
    /// Cases run.
    pub passed: usize,
    /// `file:line:column: message` for each failure or problem.
    pub failures: Vec<String>,
}

/// Runs every case in `file` against the policy it names.
pub fn run_case_file(file: &Path) -> CaseReport {
    let mut report = CaseReport::default();
    let shown = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            report
                .failures
                .push(format!("{shown}: cannot read the file: {e}"));
            return report;
        }
    };
    let cases: CaseFile = match serde_saphyr::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            report.failures.push(format!(
                "{}: {}",
                crate::yaml::located(&shown, &e),
                crate::yaml::message(&e)
            ));
            return report;
        }
    };
    if cases.version != 1 {
        report
            .failures
            .push(format!("{shown}: version: expected 1"));
        return report;
    }
    let policy_path = match &cases.policy {
        Some(p) => file.parent().unwrap_or(Path::new(".")).join(p),
        None => {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            file.with_file_name(name.replace(".test.", "."))
        }
    };
    let policy = match super::load(&policy_path) {
        Ok(p) => p,
        Err(errors) => {
            report
                .failures
                .extend(errors.iter().map(ToString::to_string));
            return report;
        }
    };
    for case in &cases.cases {
        let at = Pos::of(case);
        let c = &case.value;
        let label = c.name.clone().unwrap_or_else(|| c.request.clone());
        let fail = |msg: String| format!("{shown}:{}:{}: {label}: {msg}", at.line, at.column);
        let Some((method, path)) = c.request.split_once(' ') else {
            report
                .failures
                .push(fail("request must be \"METHOD /path\"".into()));
            continue;
        };
        let scopes = match (&c.scopes, &c.claims) {
            (Some(s), None) => Some(s.clone()),
            (None, Some(claims)) => Some(crate::identity::collect_scopes(
                claims,
                &["scope".into(), "scp".into(), "permissions".into()],
            )),
            (None, None) => None,
            (Some(_), Some(_)) => {
                report
                    .failures
                    .push(fail("give scopes or claims, not both".into()));
                continue;
            }
        };
        let e = explain(&policy, method, path.trim(), scopes.as_deref());
        let mut wrong = Vec::new();
        if !matches!(c.expect.as_str(), "allow" | "deny") {
            wrong.push(format!(
                "expect must be allow or deny, not \"{}\"",
                c.expect
            ));
        } else if e.decision != c.expect {
            wrong.push(format!(
                "expected {}, got {} ({})",
                c.expect, e.decision, e.reason
            ));
        }
        if let Some(reason) = &c.reason
            && reason != e.reason
        {
            wrong.push(format!("expected reason {reason}, got {}", e.reason));
        }
        if let Some(route) = &c.route
            && Some(route) != e.route.as_ref()
        {
            wrong.push(format!(
                "expected route {route}, got {}",
                e.route.as_deref().unwrap_or("none")
            ));
        }
        if wrong.is_empty() {
            report.passed += 1;
        } else {
            report.failures.push(fail(wrong.join("; ")));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_decision_tests_pass() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/timesheets.test.yaml");
        let report = run_case_file(&file);
        assert!(report.failures.is_empty(), "{:#?}", report.failures);
        assert!(report.passed >= 20);
    }

    #[test]
    fn a_failing_case_is_reported_with_its_location() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.yaml"),
            "version: 1\nroutes:\n  - {id: a, methods: [GET], path: /a, scopes: [x]}\n",
        )
        .unwrap();
        let file = dir.path().join("p.test.yaml");
        std::fs::write(
            &file,
            "version: 1\ncases:\n  - request: GET /a\n    scopes: [x]\n    expect: allow\n  - request: GET /a\n    scopes: [y]\n    expect: allow\n",
        )
        .unwrap();
        let report = run_case_file(&file);
        assert_eq!(report.passed, 1);
        assert_eq!(report.failures.len(), 1);
        assert!(
            report.failures[0]
                .contains("p.test.yaml:6:5: GET /a: expected allow, got deny (insufficient_scope)"),
            "{}",
            report.failures[0]
        );
    }
}
