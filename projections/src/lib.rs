//! # projections
//!
//! Read models fed by the log — what matching, the gateway and operators read: the task view,
//! agent reputation, health and SLOs, and the verifiable audit ledger. Each read model lives
//! in the log's own SQL database (the SQLite file of the embedded default, or PostgreSQL), in
//! tables of its own created by this crate's migrations; with JetStream as the log the
//! projections still read through [`events::EventLog`] and keep their tables in SQL.
//!
//! # Layout
//! - [`Db`]: the database, this crate's migrations (tracked in their own table).
//! - [`Projections`] / [`run_all`]: the machinery — each projection applies batches of events
//!   and its checkpoint in one transaction (exactly once across crashes), rebuilds from
//!   position 0, reports its lag ([`ProjectionStatus`], [`prometheus_metrics`]).
//! - [`tasks`]: the task view with full-text search; [`TaskReader`] answers [`TaskQuery`].
//! - [`reputation`]: reputation per agent and capability; [`ReputationReader`].
//! - [`health`]: health, SLO compliance and burn rates; [`HealthReader`].
//! - [`liveness`]: agents' last heartbeats, kept out of the log, and when a change of them is
//!   recorded ([`LivenessTable`]).
//! - [`standing`]: every agent's health and reputation at one moment ([`Standings`]).
//! - [`audit`]: the hash-chained ledger with signed Merkle tree heads; [`merkle`]: RFC 6962
//!   trees and proofs; [`verify`]: the ledger verifier and offline-checkable proofs.
//! - [`Error`]: what can fail.
//!
//! # Performance
//! `cargo run --release -p projections --example projection_bench -- 1000000 postgres` (2
//! cores, load average ~2; PostgreSQL private server, durable commits, batches of
//! [`BATCH_COUNT_MAX`] events): rebuilds from position 0 of 980,000 events took 6.6 s (tasks,
//! 149,000 events/s), 5.9 s (reputation, 167,000), 7.4 s (health, 132,000) and 8.0 s (audit,
//! 122,000); all four at once 20.9 s (187,000 events/s in total). A full audit verification of
//! the 980,000 entries and 980 signed tree heads read and checked 894,000 entries/s from the
//! database (median of five), 2.37 million entries/s for the hashing alone.
//!
//! # Examples
//! ```no_run
//! # async fn example(log: std::sync::Arc<dyn events::EventLog>) -> projections::Result<()> {
//! let db = projections::Db::connect("sqlite://pantheon.db?mode=rwc").await?;
//! let key = events::KeyPair::generate();
//! let projections = projections::Projections::new(db.clone(), log, key.clone());
//! projections.catch_up_all().await?;
//! let tasks = projections::TaskReader::new(db.clone())
//!     .list(&projections::TaskQuery { search: Some("invoice".into()), ..Default::default() })
//!     .await?;
//! let report = projections::verify_ledger(&db, &key.public_key()).await?;
//! assert!(report.is_intact());
//! # let _ = tasks;
//! # Ok(())
//! # }
//! ```

pub mod audit;
mod db;
mod error;
pub mod health;
pub mod liveness;
pub mod merkle;
mod outcomes;
pub mod reputation;
mod runner;
pub mod runs;
pub mod standing;
pub mod tasks;
pub mod timers;
pub mod verify;

pub use audit::{AuditEntry, SignedTreeHead};
pub use db::{
    Db, MIGRATIONS_TABLE, POSTGRES_CONNECTION_COUNT_MAX, SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_READ_CONNECTION_COUNT_MAX,
};
pub use error::{Error, Result};
pub use health::{AgentHealth, HealthReader, HealthReport, HealthStatus, SloReport, SloWindow};
pub use liveness::{AgentLiveness, LivenessTable};
pub use reputation::{Reputation, ReputationReader};
pub use runner::{
    BATCH_COUNT_MAX, LAG_SCAN_COUNT_MAX, POLL_INTERVAL_MS, ProjectionName, ProjectionStatus, Projections,
    RETRY_DELAY_MS, RunningProjections, prometheus_metrics, run_all,
};
pub use runs::{RUN_QUERY_LIMIT_MAX, RunQuery, RunReader, RunSummary};
pub use standing::Standings;
pub use tasks::{DeadWebhook, TASK_CURSOR_PATTERN, TaskCursor, TaskQuery, TaskReader, TaskSummary};
pub use timers::{TimerTable, WorkflowTimer};
pub use verify::{
    ConsistencyProof, InclusionProof, LedgerProblem, LedgerReport, prove_consistency, prove_inclusion,
    verify_against_log, verify_ledger,
};
