//! The ground floor: what every layer shares and no layer owns. Nothing here imports any
//! other folder of the crate. The pure request readers keep their rule types beside them
//! (`PathRules`, `QueryRules`): the configuration compiles into them.
//!
//! | file | job |
//! |---|---|
//! | [`rejection`] | every refusal: status, challenge kind, reason label (one exhaustive mapping) |
//! | [`answer`] | a refusal written out: challenges, nonce, body |
//! | [`reason`] | the closed `decision` and `reason` labels of metrics and logs |
//! | [`fault`] | the closed label of an upstream failure |
//! | [`path`] | path normalization and its refusals (one reading of a path for all) |
//! | [`query`] | query parameter rules: refused, removed, and names as backends read them |
//! | [`located`] | `file:line:column` errors for configuration, policy, decision tests, OpenAPI |
//! | [`secret`] | secret bytes whose `Debug` and `Display` redact |
//! | [`alg`] | JOSE algorithm names and families |
//! | [`clock`] | the wall clock, read once per request |
//! | [`url`] | the rule for every URL fetched: https, loopback, or an explicit opt-in |

pub mod alg;
pub mod answer;
pub mod clock;
pub mod fault;
pub mod located;
pub mod path;
pub mod query;
pub mod reason;
pub mod rejection;
pub mod secret;
pub mod url;

pub use answer::{Answer, ChallengeContext};
pub use fault::UpstreamFault;
pub use located::{Located, Pos};
pub use reason::{Outcome, Reason};
pub use rejection::{DpopOffer, ProofError, Rejection, TokenError};
pub use secret::Secret;
