//! The upstream's side of a request: how long the gateway waits for it, and what the client
//! gets when it fails (502 or 504, with the JSON body of every other refusal).

use std::time::Duration;

use pingora::prelude::{ErrorSource, ErrorType, HttpPeer};

use crate::decision::rejection::Rejection;

/// How long the gateway waits on the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    /// To establish a connection (TCP, and TLS for an `https` upstream).
    pub connect: Duration,
    /// For each read of the answer: a silent upstream is given up after this.
    pub read: Duration,
    /// For each write of the request.
    pub write: Duration,
    /// A pooled (kept-alive) connection unused for this long is closed.
    pub idle: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        }
    }
}

impl UpstreamTimeouts {
    /// Applies the timeouts to a peer.
    pub fn apply(&self, peer: &mut HttpPeer) {
        let o = &mut peer.options;
        o.connection_timeout = Some(self.connect);
        o.total_connection_timeout = Some(self.connect);
        o.read_timeout = Some(self.read);
        o.write_timeout = Some(self.write);
        o.idle_timeout = Some(self.idle);
    }
}

/// The metric `kind` label of an upstream failure; a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFault {
    /// No connection: refused, unreachable, TLS handshake failed or timed out.
    Connect,
    /// Connected, but the upstream did not read or answer in time.
    Timeout,
    /// The upstream closed or reset the connection.
    Reset,
    /// The upstream's answer was not valid HTTP.
    Protocol,
}

impl UpstreamFault {
    /// Every kind, for pre-seeding metric series.
    pub const ALL: [UpstreamFault; 4] = [
        UpstreamFault::Connect,
        UpstreamFault::Timeout,
        UpstreamFault::Reset,
        UpstreamFault::Protocol,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamFault::Connect => "connect",
            UpstreamFault::Timeout => "timeout",
            UpstreamFault::Reset => "reset",
            UpstreamFault::Protocol => "protocol",
        }
    }
}

/// An upstream error's kind and the answer it gets; `None` for errors of the client or of
/// the gateway itself.
pub fn classify(source: &ErrorSource, kind: &ErrorType) -> Option<(UpstreamFault, Rejection)> {
    if *source != ErrorSource::Upstream {
        return None;
    }
    use ErrorType as E;
    Some(match kind {
        E::ConnectTimedout | E::TLSHandshakeTimedout => {
            (UpstreamFault::Connect, Rejection::GatewayTimeout)
        }
        E::ConnectRefused
        | E::ConnectNoRoute
        | E::TLSWantX509Lookup
        | E::TLSHandshakeFailure
        | E::InvalidCert
        | E::HandshakeError
        | E::ConnectError
        | E::BindError
        | E::SocketError
        | E::ConnectProxyFailure => (UpstreamFault::Connect, Rejection::BadGateway),
        E::ReadTimedout | E::WriteTimedout => (UpstreamFault::Timeout, Rejection::GatewayTimeout),
        E::ReadError | E::WriteError | E::ConnectionClosed => {
            (UpstreamFault::Reset, Rejection::BadGateway)
        }
        _ => (UpstreamFault::Protocol, Rejection::BadGateway),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_faults_get_502_or_504_and_others_are_not_upstream_faults() {
        let up = ErrorSource::Upstream;
        let status = |k| classify(&up, &k).map(|(f, r)| (f, r.status()));
        assert_eq!(
            status(ErrorType::ReadTimedout),
            Some((UpstreamFault::Timeout, 504))
        );
        assert_eq!(
            status(ErrorType::ConnectRefused),
            Some((UpstreamFault::Connect, 502))
        );
        assert_eq!(
            status(ErrorType::ConnectionClosed),
            Some((UpstreamFault::Reset, 502))
        );
        assert_eq!(
            status(ErrorType::InvalidHTTPHeader),
            Some((UpstreamFault::Protocol, 502))
        );
        assert!(classify(&ErrorSource::Downstream, &ErrorType::ReadTimedout).is_none());
    }
}
