//! `scopegate test` and the gateway decide alike: every case of the shipped decision tests
//! runs through the offline decision and through the real gateway on a socket, and both
//! must give the same route, decision, reason and status.

use std::path::Path;

use scopegate::decision::Outcome;
use scopegate::decision::cases::read_case_file;
use scopegate::decision::explain::explain_for;
use scopegate::ground::path::PathRules;

use crate::harness::*;

#[test]
fn every_shipped_decision_test_gets_the_same_answer_from_the_gateway_and_offline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = read_case_file(&root.join("policies/timesheets.test.yaml")).expect("cases parse");
    let policy = scopegate::policy::load(&set.policy).expect("the policy compiles");
    assert!(set.cases.len() >= 20, "{} cases", set.cases.len());

    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    for case in &set.cases {
        let offline = explain_for(
            &policy,
            &PathRules::default(),
            &case.method,
            &case.path,
            case.caller.as_ref().map(|c| c.identity()),
        );
        assert!(
            case.mismatches(offline.outcome, offline.reason, offline.route.as_deref())
                .is_empty(),
            "{}: the offline decision disagrees with the case",
            case.label
        );

        let series = format!(
            "scopegate_requests_total{{decision=\"{}\",reason=\"{}\",route=\"{}\"}}",
            offline.outcome,
            offline.reason,
            offline.route.as_deref().unwrap_or("none")
        );
        let counted = gw.metric(&series);
        let forwarded = upstream.count();
        let response = match &case.caller {
            Some(caller) => {
                // A real token with the case's claims (scopes, roles, acr, auth_time).
                let mut token = claims("");
                let map = token.as_object_mut().unwrap();
                map.remove("scope");
                map.extend(caller.identity_claims());
                gw.call(&case.method, &case.path, &rsa.sign(&token))
            }
            None => gw.request(&case.method, &case.path, &[]),
        };
        assert_eq!(
            response.status, offline.status,
            "{}: the gateway answered {}, offline says {}",
            case.label, response.status, offline.status
        );
        // The gateway counts the request under exactly the labels the offline decision gave.
        gw.wait_metric(&series, counted + 1.0);
        // A dry run forwards what it would refuse.
        let allowed = matches!(offline.outcome, Outcome::Allow | Outcome::DryRunDeny);
        assert_eq!(
            upstream.count(),
            forwarded + usize::from(allowed),
            "{}: forwarded when it should not be, or the reverse",
            case.label
        );
    }
}
