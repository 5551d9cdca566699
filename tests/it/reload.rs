//! Policy hot reload: ConfigMap symlink swaps, editors, broken edits, SIGHUP, and requests
//! in flight during a reload.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use crate::harness::*;

const ALLOW: &str = "version: 1
routes:
  - id: list-timesheets
    methods: [GET]
    path: /timesheets
    scopes: [read:timesheets]
";
const DENY: &str = "version: 1
routes:
  - id: health
    methods: [GET]
    path: /healthz
    public: true
";
const BROKEN: &str = "version: 1
routes:
  - id: list-timesheets
    methods: [GETT]
    path: /timesheets
    scopes: [read:timesheets]
";

/// Publishes `content` the way the kubelet updates a ConfigMap volume: a new timestamped
/// folder, a new `..data` symlink renamed over the old one; `policy.yaml` itself is a
/// symlink through `..data` and never changes.
fn kubelet_publish(dir: &Path, version: u32, content: &str) {
    let folder = format!("..2026_11_25_{version:02}");
    std::fs::create_dir(dir.join(&folder)).unwrap();
    std::fs::write(dir.join(&folder).join("policy.yaml"), content).unwrap();
    symlink(&folder, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if !dir.join("policy.yaml").is_symlink() {
        let _ = std::fs::remove_file(dir.join("policy.yaml"));
        symlink("..data/policy.yaml", dir.join("policy.yaml")).unwrap();
    }
}

fn start(policy: &str) -> (Gateway, JwksServer, Upstream) {
    let jwks = JwksServer::start(&[&TestKey::rsa()]);
    let upstream = Upstream::start();
    let gw = Gateway::start(&GatewaySpec::new(&jwks, &upstream, policy));
    gw.wait_ready();
    (gw, jwks, upstream)
}

#[test]
fn a_configmap_update_is_picked_up_and_a_broken_one_never_replaces_the_good_policy() {
    let (gw, _jwks, _upstream) = start(ALLOW);
    let dir = gw.policy_path().parent().unwrap().to_owned();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let status = || gw.call("GET", "/timesheets", &token).status;
    let failures = r#"scopegate_policy_reloads_total{result="failure"}"#;

    // The mounted layout replaces the plain file, with the same content.
    std::fs::remove_file(gw.policy_path()).unwrap();
    kubelet_publish(&dir, 1, ALLOW);
    assert_eq!(status(), 200);

    kubelet_publish(&dir, 2, DENY);
    gw.wait_for(|| status() == 403, "the edit that denies");
    assert_eq!(gw.metric("scopegate_policy_routes"), 1.0);

    kubelet_publish(&dir, 3, BROKEN);
    gw.wait_for(|| gw.metric(failures) == 1.0, "the reload error to count");
    assert_eq!(status(), 403, "the last good policy keeps serving");
    let log = gw.log();
    assert!(
        log.contains("policy.yaml:4:15: routes[0].methods[0]"),
        "{log}"
    );

    kubelet_publish(&dir, 4, ALLOW);
    gw.wait_for(|| status() == 200, "the fixed policy");
    assert_eq!(gw.metric(failures), 1.0);
    assert!(gw.metric("scopegate_policy_last_reload_success_timestamp_seconds") > 0.0);
}

#[test]
fn editors_that_rename_over_the_file_or_write_in_place_are_both_seen() {
    let (gw, _jwks, _upstream) = start(ALLOW);
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let path = gw.policy_path();
    // Rename over (vim, most editors).
    let tmp = path.with_extension("yaml.swp");
    std::fs::write(&tmp, DENY).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    gw.wait_for(
        || gw.call("GET", "/timesheets", &token).status == 403,
        "rename-over",
    );
    // In place (truncate and write).
    std::fs::write(&path, ALLOW).unwrap();
    gw.wait_for(
        || gw.call("GET", "/timesheets", &token).status == 200,
        "in-place write",
    );
}

#[test]
fn sighup_reloads_and_the_process_lives_on() {
    let (mut gw, _jwks, _upstream) = start(ALLOW);
    gw.signal("HUP");
    gw.wait_for(
        || gw.log().contains("SIGHUP: reloading the policy"),
        "the SIGHUP log line",
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(gw.alive(), "SIGHUP must not kill scopegate");
    assert_eq!(
        gw.request("GET", "/healthz", &[]).status,
        403,
        "ALLOW has no health route"
    );
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
}

#[test]
fn a_reload_in_the_middle_of_a_stream_of_requests_loses_none() {
    let (gw, _jwks, upstream) = start(ALLOW);
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<u16> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                let (token, stop, addr) = (&token, &stop, gw.addr);
                s.spawn(move || {
                    let mut conn = Connection::open(addr).unwrap();
                    let mut out = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let r = conn
                            .send(&format!("GET /timesheets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"))
                            .expect("no connection is dropped");
                        out.push(r.status);
                    }
                    out
                })
            })
            .collect();
        // Ten reloads, each a different file that allows the same request.
        for i in 0..10 {
            std::fs::write(gw.policy_path(), format!("# revision {i}\n{ALLOW}")).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    assert!(results.len() > 100, "{} requests", results.len());
    assert!(
        results.iter().all(|s| *s == 200),
        "{:?}",
        results.iter().filter(|s| **s != 200).count()
    );
    assert_eq!(upstream.count(), results.len());
    assert!(gw.metric(r#"scopegate_policy_reloads_total{result="success"}"#) >= 5.0);
}
