//! The world the stories run in: a JWKS server the test controls, an echo upstream that
//! reports what it received, tokens minted from fixture keys, and the real `scopegate`
//! binary on free loopback ports.
//!
//! | file | job |
//! |---|---|
//! | `keys` | fixture keys and the tokens they sign |
//! | `jwks` | the JWKS server: serves, rotates, fails |
//! | `upstream` | the echo upstream: reports what it received, crashes and recovers |
//! | `gateway` | the real `scopegate` process, started from a [`GatewaySpec`] |
//! | `client` | a raw HTTP/1.1 client |

#![allow(dead_code)]

mod client;
mod gateway;
mod jwks;
mod keys;
mod upstream;

pub use client::*;
pub use gateway::*;
pub use jwks::*;
pub use keys::*;
pub use upstream::*;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
pub use serde_json::{Value, json};

pub const ISSUER: &str = "https://exampleco.test/";
pub const AUDIENCE: &str = "https://api.exampleco.com/timesheets";
pub const EMAIL_CLAIM: &str = "https://api.exampleco.com/email";

/// A runtime shared by every test's in-process servers.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        scopegate::install_crypto_provider();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

/// `N` ports nobody listens on right now, all different: each is held until all are chosen
/// (one at a time, the system can hand out a port just released twice in a row).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().expect("a bound address").port())
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
