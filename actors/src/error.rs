//! The crate's error type.

use events::LogError;

/// An opaque cause, boxed so the error does not name other crates' types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong in the pipeline, sorted by who must act: the operator's configuration,
/// the log backend, or a bug in the pipeline itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration file is unreadable or invalid.
    #[error("configuration {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Encoding, decoding, signing or a refused transition in the vocabulary.
    #[error(transparent)]
    Events(#[from] events::Error),
    /// A handler met more concurrent writers on one task than it retries for.
    #[error("gave up on task stream {stream_id} after {attempts} conflicting appends")]
    ConflictRetriesExhausted {
        /// The task stream.
        stream_id: String,
        /// How many times it re-read and re-decided.
        attempts: u32,
    },
    /// An actor could not be started or stopped.
    #[error("actor {name}: {reason}")]
    Actor {
        /// The actor.
        name: String,
        /// What happened.
        reason: String,
    },
    /// The agent was retired: its id is never registered again.
    #[error("agent {0} is retired; give it another id")]
    AgentRetired(String),
    /// An operator's change that changes nothing (the agent is in that state already).
    #[error("{0}")]
    AgentUnchanged(String),
    /// Waiting for something took longer than allowed.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Something the caller named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The NATS connection (submissions) failed.
    #[error("nats: {0}")]
    Nats(#[source] BoxError),
    /// A workflow command failed.
    #[error("workflow: {0}")]
    Workflow(String),
    /// The read models (health, reputation) could not be read.
    #[error("read models: {0}")]
    ReadModel(#[from] projections::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
