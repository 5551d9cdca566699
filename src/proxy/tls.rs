//! The TLS listener's certificate: loaded at start-up and re-read when the files change
//! (a renewed Kubernetes Secret swaps its mounted files), without a restart; and its
//! handshake ([`TlsHandshake`]), bounded from the accept.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{
    ClientCertVerifier, ClientHello, CryptoProvider, ResolvesServerCert, RootCertStore,
    WebPkiClientVerifier,
};
use sha2::{Digest, Sha256};

use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::protocols::tls::TlsStream;
use pingora::protocols::{IO, Stream};

use crate::ops::metrics::Metrics;
use crate::ops::watch::FolderWatch;

/// Serves the current certificate to every handshake; swapped when the files change.
pub struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
    cert: PathBuf,
    key: PathBuf,
    hash: std::sync::Mutex<Vec<u8>>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the PEM certificate chain and private key; an error names the file.
    pub fn load(cert: &Path, key: &Path) -> Result<ReloadingCert, String> {
        pingora::tls::install_default_crypto_provider();
        let (certified, hash) = read(cert, key)?;
        Ok(ReloadingCert {
            current: ArcSwap::from_pointee(certified),
            cert: cert.to_owned(),
            key: key.to_owned(),
            hash: std::sync::Mutex::new(hash),
        })
    }

    /// Re-reads the files; swaps the certificate when they changed and are valid.
    /// Returns whether a new certificate went live.
    pub fn reload(&self) -> Result<bool, String> {
        let (certified, hash) = read(&self.cert, &self.key)?;
        let mut current = self.hash.lock().unwrap_or_else(|e| e.into_inner());
        if *current == hash {
            return Ok(false);
        }
        self.current.store(Arc::new(certified));
        *current = hash;
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn read(cert: &Path, key: &Path) -> Result<(CertifiedKey, Vec<u8>), String> {
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let (chain, private) = pingora::tls::load_certs_and_key_files(&cert_s, &key_s)
        .map_err(|e| format!("{cert_s} / {key_s}: {e}"))?
        .ok_or_else(|| format!("{cert_s} / {key_s}: no certificate or no private key found"))?;
    let provider = CryptoProvider::get_default()
        .ok_or("no TLS crypto provider installed")?
        .clone();
    let mut hasher = Sha256::new();
    for c in &chain {
        hasher.update(c.as_ref());
    }
    hasher.update(private.secret_der());
    let certified = CertifiedKey::from_der(chain, private, &provider)
        .map_err(|e| format!("{cert_s} / {key_s}: {e}"))?;
    Ok((certified, hasher.finalize().to_vec()))
}

/// The listener's client certificate check (RFC 8705 §2.1, PKI): a certificate is asked
/// for but optional, and one that is sent must chain to an authority in `ca_file`.
/// Requests without one reach the policy as usual; only certificate-bound tokens need it.
pub fn client_verifier(ca_file: &Path) -> Result<Arc<dyn ClientCertVerifier>, String> {
    pingora::tls::install_default_crypto_provider();
    let shown = ca_file.display();
    let mut roots = RootCertStore::empty();
    pingora::tls::load_ca_file_into_store(ca_file, &mut roots)
        .map_err(|e| format!("{shown}: {e}"))?;
    if roots.is_empty() {
        return Err(format!("{shown}: no certificate found"));
    }
    WebPkiClientVerifier::builder(Arc::new(roots))
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("{shown}: {e}"))
}

/// Watches the certificate's folder (and polls) and reloads the certificate.
pub struct CertWatcher {
    cert: Arc<ReloadingCert>,
}

impl CertWatcher {
    /// A watcher for `cert`.
    pub fn new(cert: Arc<ReloadingCert>) -> CertWatcher {
        CertWatcher { cert }
    }

    fn reload(&self) {
        match self.cert.reload() {
            Ok(true) => {
                tracing::info!(cert = %self.cert.cert.display(), "TLS certificate reloaded")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; the previous certificate keeps serving")
            }
        }
    }
}

#[async_trait]
impl BackgroundService for CertWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut watch = FolderWatch::new(&self.cert.cert);
        loop {
            tokio::select! {
                () = watch.changed() => self.reload(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// The TLS listener's handshake, done by the gateway rather than pingora's accept loop, so
/// that a connection holds its `max_connections` permit and its header clock from the
/// accept on, and a client that never finishes the handshake (or never sends a
/// ClientHello) is cut off after `handshake_timeout_seconds` rather than pingora's fixed
/// 60 s. The listener itself is a plain TCP one; its connections are told apart by the
/// local address they were accepted on.
pub struct TlsHandshake {
    acceptor: Acceptor,
    address: SocketAddr,
    timeout: Duration,
    metrics: Metrics,
}

impl TlsHandshake {
    /// Handshakes with `settings` for connections accepted on `address`, each within
    /// `timeout`.
    pub fn new(
        settings: TlsSettings,
        address: SocketAddr,
        timeout: Duration,
        metrics: Metrics,
    ) -> TlsHandshake {
        TlsHandshake {
            acceptor: settings.build(),
            address,
            timeout,
            metrics,
        }
    }

    /// Whether `stream` was accepted on the TLS listener's address.
    pub fn serves(&self, stream: &Stream) -> bool {
        let local = stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).copied());
        local.is_some_and(|local| same_listener(self.address, local))
    }

    /// The TLS stream over `raw`, or `None` (the connection is dropped) when the handshake
    /// fails or takes longer than the timeout.
    pub async fn accept<S: IO + 'static>(&self, raw: S) -> Option<TlsStream<S>> {
        match tokio::time::timeout(self.timeout, self.acceptor.tls_handshake(raw)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                self.metrics.tls_handshake_timed_out();
                None
            }
        }
    }
}

/// Whether a connection accepted at `local` came from the listener bound to `listener`:
/// the same port, and the same address unless the listener takes every address.
fn same_listener(listener: SocketAddr, local: SocketAddr) -> bool {
    let unmapped = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    listener.port() == local.port()
        && (listener.ip().is_unspecified() || unmapped(listener.ip()) == unmapped(local.ip()))
}

#[cfg(test)]
mod listener_tests {
    use super::*;

    #[test]
    fn connections_are_told_apart_by_the_address_they_were_accepted_on() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(same_listener(at("0.0.0.0:8443"), at("10.0.0.7:8443")));
        assert!(same_listener(
            at("[::]:8443"),
            at("[::ffff:127.0.0.1]:8443")
        ));
        assert!(same_listener(
            at("127.0.0.1:8443"),
            at("[::ffff:127.0.0.1]:8443")
        ));
        assert!(!same_listener(at("0.0.0.0:8443"), at("10.0.0.7:8080")));
        assert!(!same_listener(at("127.0.0.2:8080"), at("127.0.0.1:8080")));
    }
}
