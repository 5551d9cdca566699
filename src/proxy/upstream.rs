//! The upstream's side of a request: how long the gateway waits for it, and what the client
//! gets when it fails (502 or 504, with the JSON body of every other refusal).

use pingora::prelude::{ErrorSource, ErrorType, HttpPeer};

use crate::config::UpstreamTimeouts;
use crate::ground::UpstreamFault;
use crate::ground::rejection::Rejection;

/// Applies the upstream timeouts to a peer.
pub fn apply_timeouts(timeouts: &UpstreamTimeouts, peer: &mut HttpPeer) {
    let o = &mut peer.options;
    o.connection_timeout = Some(timeouts.connect);
    o.total_connection_timeout = Some(timeouts.connect);
    o.read_timeout = Some(timeouts.read);
    o.write_timeout = Some(timeouts.write);
    o.idle_timeout = Some(timeouts.idle);
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
