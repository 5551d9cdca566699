//! Shutdown and upgrade: requests in flight finish, and none are dropped.

use std::time::Duration;

use crate::harness::*;

#[test]
fn sigterm_lets_requests_in_flight_finish_then_exits() {
    let (mut gw, _jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let addr = gw.addr;
    let slow = std::thread::spawn(move || {
        raw(
            addr,
            &format!(
                "GET /timesheets?delay_ms=1500 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
            ),
        )
    });
    // The request is in flight once the upstream has it (and waits out its delay).
    gw.wait_for(
        || upstream.arrived() == 1,
        "the slow request at the upstream",
    );
    gw.signal("TERM");
    let r = slow
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(r.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while gw.alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!gw.alive(), "scopegate exits after draining:\n{}", gw.log());
}

#[test]
fn a_graceful_upgrade_hands_the_listeners_over_without_dropping_a_request() {
    let (gw, jwks, upstream) = Gateway::standard();
    let token = TestKey::rsa().sign(&claims("read:timesheets"));
    let stop = std::sync::atomic::AtomicBool::new(false);
    let statuses: Vec<Result<u16, String>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..3)
            .map(|_| {
                let (token, stop, addr) = (&token, &stop, gw.addr);
                s.spawn(move || {
                    let mut out = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // A new connection each time: connections to the old process are
                        // closed after their request once it drains.
                        let r = raw(addr, &format!("GET /timesheets?delay_ms=20 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"));
                        out.push(r.map(|r| r.status).map_err(|e| e.to_string()));
                    }
                    out
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // A slow JWKS: the new process must not take connections before its keys are in,
        // or its share of them would get 503 while the old process could serve them.
        jwks.set_mode(JwksMode::Slow(800));
        // The new binary asks the old one for its sockets, then the old one is told to go.
        let mut new = gw.spawn_upgrade();
        std::thread::sleep(Duration::from_millis(1000));
        gw.signal("QUIT");
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let out: Vec<_> = clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        assert!(
            new.try_wait().unwrap().is_none(),
            "the new process serves:\n{}",
            gw.log()
        );
        // It answers on the same ports.
        assert_eq!(gw.call("GET", "/timesheets", &token).status, 200);
        assert_eq!(gw.admin_get("/readyz").0, 200);
        let _ = new.kill();
        let _ = new.wait();
        out
    });
    let failed: Vec<_> = statuses.iter().filter(|s| **s != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}\n{}",
        failed.len(),
        statuses.len(),
        &failed[..failed.len().min(5)],
        gw.log()
    );
    assert!(statuses.len() > 20);
    assert_eq!(upstream.count(), statuses.len() + 1);
}
