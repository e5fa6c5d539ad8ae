//! # actors
//!
//! The pipeline of DESIGN.md as ractor actors: one actor per phase under a supervisor, each
//! consuming its input events from a durable subscription and appending its outputs, with
//! exactly-once effects on an at-least-once log (derived event ids + optimistic concurrency).
//! Also the agent registry and matching, the built-in agents, and [`Runtime`], which runs it
//! all in one process.
//!
//! # Layout
//! - [`Runtime`] / [`RuntimeOptions`] / [`HostedAgent`] (`runtime`): start and stop a process.
//! - `phase`: what phases share — [`PhaseMsg`] / [`PhaseState`] of the phase actor, the pump
//!   that pulls inputs and acknowledges them after the outputs are appended, the fold of a task
//!   and the deterministic append, the shared cache of folded tasks; [`PHASE_IN_FLIGHT_MAX`],
//!   [`TASK_CACHE_COUNT_MAX`]. Every limit is re-exported here.
//! - `supervisor`: [`SupervisorMsg`] / [`SupervisorState`]; restarts failed phase actors.
//! - `sweeper`: fails tasks left unfinished past their deadline, exactly once, whichever
//!   process sees them first ([`SWEEP_INTERVAL_MS`], [`SWEEP_GRACE_MS`]).
//! - The phases, one file each: `screening` (ingress, and the [`Screener`] seam with
//!   [`StandardScreener`]), `context`, `matching`, `sealing`, `execution`, `retry`,
//!   `verification`, `egress`, `completion`.
//! - `standing`: agents' health and reputation from the read models (the projections), cached
//!   for matching and refreshed every [`STANDING_REFRESH_MS`]; `heartbeat`: a heartbeat on the
//!   log for each hosted agent every [`HEARTBEAT_INTERVAL_MS`].
//! - [`registry`]: the registry view (agents, stats, load), agent registration with
//!   passports, suspension and retirement.
//! - [`agents`]: the [`AgentEndpoint`] transport seam, [`InProcessAgent`], and the built-in
//!   workers `echo` and `command`.
//! - [`client`]: submit, cancel, read and wait for tasks through the log, from any process.
//! - [`pull`]: pull workers — the [`pull::PullBoard`] of offers their polls take, with leases.
//! - `submissions`: signed submissions on NATS ([`SubmitAnswer`]).
//! - [`config`]: the TOML configuration ([`Config`]).
//! - [`Error`]: what can fail.
//!
//! # Examples
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! let log = store::open("sqlite://pantheon.db?mode=rwc").await?;
//! let key = Arc::new(events::KeyPair::load_or_generate("federation.key".as_ref())?);
//! let runtime = actors::Runtime::start(actors::RuntimeOptions::new(log, key)).await?;
//! let task = runtime.submit(events::TaskSpec::new("echo", "say hello")).await?;
//! let state = runtime.wait_final(task, std::time::Duration::from_secs(30)).await?;
//! assert_eq!(state.output, Some(serde_json::json!("say hello")));
//! runtime.shutdown().await;
//! # Ok(()) }
//! ```

pub mod agents;
pub mod client;
mod completion;
pub mod config;
mod context;
mod egress;
mod error;
mod execution;
mod heartbeat;
mod matching;
pub mod metrics;
mod phase;
pub mod pull;
pub mod pull_nats;
pub mod registry;
mod retry;
mod runtime;
mod screening;
mod sealing;
mod standing;
mod submissions;
mod supervisor;
mod sweeper;
mod verification;
pub mod workflows;

pub use agents::{AgentEndpoint, AgentFailure, InProcessAgent, Progress, Worker};
pub use config::Config;
pub use context::{
    CONTEXT_ANSWER_BYTES_MAX, CONTEXT_ITEM_BYTES_MAX, CONTEXT_ITEMS_PER_SOURCE_MAX, CONTEXT_SOURCE_MS_MAX,
    HISTORY_SOURCE, SIMILAR_TASKS_MAX,
};
pub use error::{BoxError, Error, Result};
pub use execution::{
    CANCEL_CHECK_MS, OUTCOME_RETRY_MS_BASE, OUTCOME_RETRY_MS_MAX, PROGRESS_EVENTS_PER_ATTEMPT_MAX,
};
pub use heartbeat::HEARTBEAT_INTERVAL_MS;
pub use matching::{CANDIDATES_RECORDED_MAX, NO_AGENT_WAIT_MS_BASE, NO_AGENT_WAIT_MS_MAX};
pub use metrics::PipelineMetrics;
pub use phase::{
    CONFLICT_RETRY_COUNT_MAX, PHASE_DRAIN_MS_MAX, PHASE_IN_FLIGHT_MAX, PhaseMsg, PhaseState,
    TASK_CACHE_COUNT_MAX,
};
pub use registry::{AGENT_CONFIRM_MS, REGISTRY_REFRESH_MS, Registry};
pub use retry::{RETRY_BACKOFF_MS_BASE, RETRY_BACKOFF_MS_MAX};
pub use runtime::{
    DRAIN_MS_DEFAULT, DRAIN_SETTLE_MS_MAX, HostedAgent, PHASES_GROUP, ReloadReport, Reloader, Runtime,
    RuntimeOptions,
};
pub use screening::{Screener, StandardScreener, Verdict};

/// The start of `bytes` (text an agent or a source wrote: an error answer, stderr) for a reason
/// that is recorded: at most `bytes_max` bytes, trimmed, with `…` when cut, and with secrets
/// and personal data redacted. The text is scrubbed whole and cut after: cut first, a secret
/// across the cut would no longer be recognised and its first part would be recorded. When
/// `bytes` is itself a cut read (`read_cut`), its last word is dropped before scrubbing, for
/// the same reason.
pub(crate) fn scrubbed_excerpt(bytes: &[u8], bytes_max: usize, read_cut: bool) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if read_cut {
        let end = text.rfind(char::is_whitespace).unwrap_or(0);
        text.truncate(end);
    }
    let mut text = security::scrub(&text).unwrap_or(text);
    let cut = read_cut || text.len() > bytes_max;
    cut_utf8(&mut text, bytes_max);
    let text = text.trim();
    if cut { format!("{text}…") } else { text.to_string() }
}

/// Cuts `text` to at most `bytes_max` bytes, at a character boundary.
pub(crate) fn cut_utf8(text: &mut String, bytes_max: usize) {
    if text.len() > bytes_max {
        let mut end = bytes_max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
pub use standing::{
    HEALTH_SCORE_DEGRADED, HEALTH_SCORE_HALF_OPEN, STANDING_READ_MS_MAX, STANDING_REFRESH_MS,
    TRIAL_CLAIM_MS_MAX,
};
pub use submissions::{SUBMIT_QUEUE_GROUP, SubmitAnswer};
pub use supervisor::{
    CHILDREN_STOP_MS_MAX, RESTART_DELAY_MS_BASE, RESTART_DELAY_MS_MAX, SupervisorMsg, SupervisorState,
};
pub use sweeper::{SWEEP_GRACE_MS, SWEEP_INTERVAL_MS, SWEEP_PAGE_COUNT};

#[cfg(test)]
mod tests {
    /// An excerpt never holds the start of a secret its cut went through: scrubbed whole before
    /// the cut, and a cut read loses its last word.
    #[test]
    fn excerpts_are_scrubbed_before_they_are_cut() {
        let key = "AKIA4HZQ7WMR2XVBN6TD";
        let across = format!("{} {key} and more", ".".repeat(40));
        let excerpt = super::scrubbed_excerpt(across.as_bytes(), 50, false);
        assert!(excerpt.ends_with('…') && !excerpt.contains("AKIA4HZQ"), "{excerpt}");
        let read_cut = format!("failed: {}", &key[..14]);
        let excerpt = super::scrubbed_excerpt(read_cut.as_bytes(), 512, true);
        assert_eq!(excerpt, "failed:…");
        assert_eq!(super::scrubbed_excerpt(b"  boom \n", 512, false), "boom");
    }
}
