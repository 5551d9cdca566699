//! Decision tests written next to a policy (`timesheets.test.yaml`), run by `scopegate test`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::explain::explain_for;
use crate::auth::identity::Identity;
use crate::decision::{Outcome, Reason, Rejection};
use crate::ground::path::PathRules;
use crate::ground::{Located, Pos};

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
    /// Scopes of the token; absent (with `claims`) means no token at all.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// Claims of the token: scopes from `scope`, `scp` or `permissions`, roles, groups,
    /// `acr`, `auth_time`, … With `scopes` too, those become its `scope` claim.
    #[serde(default)]
    claims: Option<serde_json::Map<String, serde_json::Value>>,
    /// The token's `acr`.
    #[serde(default)]
    acr: Option<String>,
    /// How many seconds ago the user signed in (`auth_time` = now − this).
    #[serde(default)]
    auth_age: Option<u64>,
    /// `allow`, `deny` or `dry_run_deny`.
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

/// One decision test, read and checked.
#[derive(Debug, Clone)]
pub struct DecisionCase {
    /// `file:line:column: name`, for messages.
    pub label: String,
    /// The method.
    pub method: String,
    /// The path (and query) as sent.
    pub path: String,
    /// The caller's token as the decision sees it; `None` when no token is presented.
    pub caller: Option<Caller>,
    /// Forwarded or answered.
    pub expect: Outcome,
    /// The reason label expected, if the case names one.
    pub reason: Option<Reason>,
    /// The route id expected, if the case names one.
    pub route: Option<String>,
}

/// A case's token: its claims, and the age of its sign-in, turned into an identity when
/// the case runs (so `auth_age` is measured from then).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Seconds since the sign-in.
    pub auth_age: Option<u64>,
}

impl Caller {
    /// The identity a verified token with these claims would have now, or the gateway's
    /// refusal of such a token.
    pub fn identity(&self) -> Result<Identity, Rejection> {
        Identity::offline_from_claims(&self.identity_claims())
    }

    /// The claims a token for this case carries now: the case's, with `auth_time` set
    /// from `auth_age`.
    pub fn identity_claims(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut claims = self.claims.clone();
        if let Some(age) = self.auth_age {
            let now = crate::ground::clock::unix_now();
            claims.insert("auth_time".into(), now.saturating_sub(age).into());
        }
        claims
    }
}

/// A decision-test file: the policy it tests and its cases.
#[derive(Debug)]
pub struct CaseSet {
    /// The policy file under test.
    pub policy: PathBuf,
    /// Every case, in file order.
    pub cases: Vec<DecisionCase>,
}

/// Reads a decision-test file; every problem in it at once, with `file:line:column`.
pub fn read_case_file(file: &Path) -> Result<CaseSet, Vec<Located>> {
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| vec![Located::whole(&shown, format!("cannot read the file: {e}"))])?;
    let parsed: CaseFile =
        serde_saphyr::from_str(&text).map_err(|e| vec![Located::parse(&shown, &e)])?;
    if parsed.version != 1 {
        return Err(vec![Located::whole(&shown, "version: expected 1")]);
    }
    let policy = match &parsed.policy {
        Some(p) => file.parent().unwrap_or(Path::new(".")).join(p),
        None => {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            file.with_file_name(name.replace(".test.", "."))
        }
    };
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for case in &parsed.cases {
        let at = Pos::of(case);
        let c = &case.value;
        let name = c.name.clone().unwrap_or_else(|| c.request.clone());
        let label = Located::at(&shown, at, name.clone()).to_string();
        let problem = |what: String| Located::at(&shown, at, format!("{name}: {what}"));
        let Some((method, path)) = c.request.split_once(' ') else {
            problems.push(problem("request must be \"METHOD /path\"".into()));
            continue;
        };
        let caller = match caller(c) {
            Ok(caller) => caller,
            Err(what) => {
                problems.push(problem(what));
                continue;
            }
        };
        let expect = match Outcome::parse(&c.expect) {
            Some(o @ (Outcome::Allow | Outcome::Deny | Outcome::DryRunDeny)) => o,
            Some(Outcome::Error | Outcome::Served) | None => {
                problems.push(problem(format!(
                    "expect must be allow, deny or dry_run_deny, not \"{}\"",
                    c.expect
                )));
                continue;
            }
        };
        let reason = match c.reason.as_deref().map(|r| (r, Reason::parse(r))) {
            None => None,
            Some((_, Some(reason))) => Some(reason),
            Some((other, None)) => {
                problems.push(problem(format!("\"{other}\" is not a reason label")));
                continue;
            }
        };
        cases.push(DecisionCase {
            label,
            method: method.to_owned(),
            path: path.trim().to_owned(),
            caller,
            expect,
            reason,
            route: c.route.clone(),
        });
    }
    if problems.is_empty() {
        Ok(CaseSet { policy, cases })
    } else {
        Err(problems)
    }
}

/// The token a case describes, or what is wrong with it.
fn caller(c: &Case) -> Result<Option<Caller>, String> {
    let mut claims = match (&c.scopes, &c.claims) {
        (None, None) => {
            if c.acr.is_some() || c.auth_age.is_some() {
                return Err("acr and auth_age describe a token: give scopes or claims".into());
            }
            return Ok(None);
        }
        (None, Some(claims)) => claims.clone(),
        (Some(_), Some(claims)) if claims.contains_key("scope") => {
            return Err("give scopes or a scope claim, not both".into());
        }
        (Some(_), claims) => claims.clone().unwrap_or_default(),
    };
    if let Some(scopes) = &c.scopes {
        claims.insert("scope".into(), scopes.join(" ").into());
    }
    if let Some(acr) = &c.acr {
        claims.insert("acr".into(), acr.clone().into());
    }
    if c.auth_age.is_some() && claims.contains_key("auth_time") {
        return Err("give auth_age or an auth_time claim, not both".into());
    }
    Ok(Some(Caller {
        claims,
        auth_age: c.auth_age,
    }))
}

impl DecisionCase {
    /// What is wrong with an outcome for this case; empty when it is what the case expects.
    pub fn mismatches(&self, outcome: Outcome, reason: Reason, route: Option<&str>) -> Vec<String> {
        let mut wrong = Vec::new();
        if outcome != self.expect {
            wrong.push(format!(
                "expected {}, got {outcome} ({reason})",
                self.expect
            ));
        }
        if let Some(expected) = self.reason
            && expected != reason
        {
            wrong.push(format!("expected reason {expected}, got {reason}"));
        }
        if let Some(expected) = &self.route
            && Some(expected.as_str()) != route
        {
            wrong.push(format!(
                "expected route {expected}, got {}",
                route.unwrap_or("none")
            ));
        }
        wrong
    }
}

/// Runs every case in `file` against the policy it names.
pub fn run_case_file(file: &Path) -> CaseReport {
    run_case_file_against(file, None, &PathRules::default())
}

/// Runs every case in `file` against `policy`, or, when `None`, the policy it names (to
/// prove that another policy, such as one drawn from OpenAPI, decides the same), reading
/// paths with `rules` (the gateway configuration's `paths`).
pub fn run_case_file_against(file: &Path, policy: Option<&Path>, rules: &PathRules) -> CaseReport {
    let mut report = CaseReport::default();
    let set = match read_case_file(file) {
        Ok(set) => set,
        Err(problems) => {
            report.failures = problems.iter().map(ToString::to_string).collect();
            return report;
        }
    };
    let policy = match crate::policy::load(policy.unwrap_or(&set.policy)) {
        Ok(p) => p,
        Err(errors) => {
            report
                .failures
                .extend(errors.iter().map(ToString::to_string));
            return report;
        }
    };
    for case in &set.cases {
        let caller = case.caller.as_ref().map(Caller::identity);
        let e = explain_for(&policy, rules, &case.method, &case.path, caller);
        let wrong = case.mismatches(e.outcome, e.reason, e.route.as_deref());
        if wrong.is_empty() {
            report.passed += 1;
        } else {
            report
                .failures
                .push(format!("{}: {}", case.label, wrong.join("; ")));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_decision_tests_pass() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        for (file, at_least) in [("timesheets.test.yaml", 25), ("reports.test.yaml", 10)] {
            let report = run_case_file(&dir.join(file));
            assert!(report.failures.is_empty(), "{file}: {:#?}", report.failures);
            assert!(report.passed >= at_least, "{file}");
        }
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
