//! The closed label of an upstream failure, shared by the proxy (which classifies pingora's
//! errors) and the metrics (which count them).

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
