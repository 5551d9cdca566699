//! The closed label sets of the metrics that are not outcomes or reasons: how an
//! introspection call ended, and the shared store's operations, results and fallbacks.

/// How one call to an introspection endpoint ended: the `result` label, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntrospectionResult {
    /// `active: true`.
    Active,
    /// Any other answer.
    Inactive,
    /// Timeout, refused connection, non-2xx, not JSON.
    Error,
    /// No endpoint known yet (discovery has not answered).
    NoEndpoint,
}

impl IntrospectionResult {
    /// Every result, for pre-seeding metric series.
    pub const ALL: [IntrospectionResult; 4] = [
        IntrospectionResult::Active,
        IntrospectionResult::Inactive,
        IntrospectionResult::Error,
        IntrospectionResult::NoEndpoint,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            IntrospectionResult::Active => "active",
            IntrospectionResult::Inactive => "inactive",
            IntrospectionResult::Error => "error",
            IntrospectionResult::NoEndpoint => "no_endpoint",
        }
    }
}

/// A shared-store command: the `op` label, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// `SET NX PX`: claim a key once (a DPoP proof).
    Claim,
    /// `GET`.
    Get,
    /// `SET PX`.
    Set,
}

impl StoreOp {
    /// Every operation.
    pub const ALL: [StoreOp; 3] = [StoreOp::Claim, StoreOp::Get, StoreOp::Set];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Claim => "claim",
            StoreOp::Get => "get",
            StoreOp::Set => "set",
        }
    }
}

/// How a shared-store command ended: the `result` label, a closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreResult {
    /// The store answered.
    Ok,
    /// Connection refused or lost, an error reply.
    Error,
    /// No answer within `command_timeout_ms`.
    Timeout,
}

impl StoreResult {
    /// Every result.
    pub const ALL: [StoreResult; 3] = [StoreResult::Ok, StoreResult::Error, StoreResult::Timeout];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreResult::Ok => "ok",
            StoreResult::Error => "error",
            StoreResult::Timeout => "timeout",
        }
    }
}

/// What the gateway did for a request the shared store failed: the `use` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFallback {
    /// A DPoP proof refused with 503 (`on_error: deny`).
    DpopDenied,
    /// A DPoP proof checked by the replica's own replay cache (`on_error: local`).
    DpopLocal,
    /// An introspection answer asked of the authorization server (and not shared).
    IntrospectionCalled,
}

impl StoreFallback {
    /// Every fallback.
    pub const ALL: [StoreFallback; 3] = [
        StoreFallback::DpopDenied,
        StoreFallback::DpopLocal,
        StoreFallback::IntrospectionCalled,
    ];

    /// The label.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreFallback::DpopDenied => "dpop_denied",
            StoreFallback::DpopLocal => "dpop_local",
            StoreFallback::IntrospectionCalled => "introspection_called",
        }
    }
}
