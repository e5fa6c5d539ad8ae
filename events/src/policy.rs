//! Changes of the running federation's policy (`policy-federation`): a configuration reloaded
//! without a restart (SIGHUP, or `POST /admin/reload`) records what changed, and a reload that
//! was refused records why, so history shows when the screening policy, the rate limits or an
//! agent's settings changed and who asked.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::domain_events;
use crate::id::StreamId;

/// A configuration was reloaded and applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyReloaded {
    /// Who asked: `sighup`, or the principal of `POST /admin/reload`.
    pub by: String,
    /// What changed and was applied, one line each (`screening.block-threshold: 0.7 → 0.5`).
    pub changes: Vec<String>,
    /// What changed but takes a restart (an agent added or removed, a transport changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applied: Vec<String>,
    /// The blake3 hash of the configuration text now in force.
    pub config_hash: String,
}

/// A reload was refused: the configuration did not load; the one in force stays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyReloadRefused {
    /// Who asked.
    pub by: String,
    /// Why, naming the file and the mistake.
    pub reason: String,
}

domain_events! {
    /// Every event of the policy stream.
    pub enum PolicyEvent: "policy", kinds PolicyEventKind {
        /// Applied.
        Reloaded(PolicyReloaded) = "policy_reloaded" @ 1,
        /// Refused.
        ReloadRefused(PolicyReloadRefused) = "policy_reload_refused" @ 1,
    }
}

/// The federation's policy stream, `policy-federation`.
pub fn policy_stream() -> StreamId {
    StreamId::new("policy-federation").expect("a valid stream id")
}
