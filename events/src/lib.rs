//! # events
//!
//! Pantheon's vocabulary. Pure: no I/O beyond reading and writing key files.
//!
//! # Layout
//! - [`id`]: event, task, agent, workflow and stream ids; event type names.
//! - [`event`]: an event as the log holds it — metadata, payload, version, position.
//! - [`log`]: the log contract ([`EventLog`], [`Subscription`]) every backend implements.
//! - [`codec`]: canonical MessagePack and JSON.
//! - [`crypto`]: blake3 hashes, ed25519 keys, signatures and typed verification errors.
//! - [`state`]: the [`Aggregate`] fold trait and the typed refusal of illegal transitions.

pub mod codec;
pub mod crypto;
mod error;
pub mod event;
pub mod id;
pub mod log;
pub mod state;

pub use crypto::{Hash, KeyPair, PublicKey, Signature, VerifyError};
pub use error::{Error, Result};
pub use event::{
    APPEND_BATCH_COUNT_MAX, EVENT_PAYLOAD_BYTES_MAX, ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent,
    Version, now_ms,
};
pub use id::{AgentId, EventId, EventType, StreamId, TaskId, WorkflowId};
pub use log::{
    AppendOutcome, Delivery, EventLog, Filter, LogError, StartFrom, SubscribeOptions, Subscription,
};
pub use state::{Aggregate, TransitionError};
