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

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
