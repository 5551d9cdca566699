//! Many clients at once: the upstream sees each valid request exactly once and no other.

use std::collections::BTreeMap;

use crate::harness::*;

#[test]
fn a_burst_of_mixed_requests_lets_exactly_the_valid_ones_through() {
    let (gw, _jwks, upstream) = Gateway::standard();
    let rsa = TestKey::rsa();
    let valid = rsa.sign(&claims("read:timesheets"));
    let wrong_scope = rsa.sign(&claims("create:timesheets"));
    let mut expired_claims = claims("read:timesheets");
    expired_claims["exp"] = serde_json::json!(now() - 600);
    let expired = rsa.sign(&expired_claims);
    let tokens = [valid.clone(), wrong_scope, expired, "garbage".to_owned()];

    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 260;
    let statuses: Vec<(usize, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let tokens = &tokens;
                let addr = gw.addr;
                s.spawn(move || {
                    let mut conn = Connection::open(addr).unwrap();
                    let mut out = Vec::new();
                    for i in 0..PER_CLIENT {
                        let n = c * PER_CLIENT + i;
                        let token = &tokens[n % tokens.len()];
                        let r = conn
                            .send(&format!(
                                "GET /timesheets/{n} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
                            ))
                            .unwrap();
                        out.push((n, r.status));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(statuses.len(), CLIENTS * PER_CLIENT);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for s in upstream.seen() {
        *seen.entry(s.target).or_default() += 1;
    }
    for (n, status) in statuses {
        let expected = if n % tokens.len() == 0 {
            200
        } else {
            401 + 2 * usize::from(n % tokens.len() == 1) as u16
        };
        assert_eq!(status, expected, "request {n}");
        let count = seen.get(&format!("/timesheets/{n}")).copied().unwrap_or(0);
        assert_eq!(
            count,
            usize::from(n % tokens.len() == 0),
            "request {n} reached the upstream {count} times"
        );
    }
}
