//! # events
//!
//! Pantheon's vocabulary: every event, every state fold, the signed material, the canonical
//! encoding and the log contract. Pure: no I/O beyond reading and writing key files.
//!
//! # Layout
//! - [`id`]: event, task, agent, workflow and stream ids; event type names.
//! - [`event`]: an event as the log holds it — metadata, payload, version, position.
//! - [`log`]: the log contract ([`EventLog`], [`Subscription`]) every backend implements.
//! - [`domain`]: typed events ([`DomainEvent`]) and how they become log events.
//! - [`task`], [`agent`], [`workflow`]: each stream's events and state fold.
//! - [`envelope`]: sealed task envelopes, passports, signed results, signed submissions.
//! - [`signals`]: heartbeats and quality ratings, outside the task and agent streams.
//! - [`policy`]: configuration reloads applied or refused (`policy-federation`).
//! - [`trace`]: the traceparent of events joined to `tracing` spans (one trace per task).
//! - [`state`]: the [`Aggregate`] fold trait and the typed refusal of illegal transitions.
//! - [`codec`]: canonical MessagePack and JSON.
//! - [`clock`]: injected time ([`Clock`], [`SystemClock`], [`ManualClock`]) for pure deciders.
//! - [`crypto`]: blake3 hashes, ed25519 keys, signatures and typed verification errors.
//! - [`upcast`]: reading old schema versions.
//! - `harness` (feature `test-util`): given/when/then tests of folds.
//!
//! # Limits
//! Every backend refuses, through [`log::validate_batch`] and before writing anything:
//! - an append of no events, or of more than [`APPEND_BATCH_COUNT_MAX`];
//! - an event whose payload (the encoded bytes of [`NewEvent::payload`], nothing else) is over
//!   [`EVENT_PAYLOAD_BYTES_MAX`];
//! - an event whose [`Metadata::emitter`] is empty, over [`EVENT_EMITTER_BYTES_MAX`] bytes,
//!   holds a control character or starts or ends with whitespace;
//! - an event whose [`Metadata::traceparent`] is empty, over [`EVENT_TRACEPARENT_BYTES_MAX`]
//!   bytes or holds anything but visible ASCII.
//!
//! The metadata rules exist because NATS carries the metadata in message headers, which cannot
//! hold line breaks and are trimmed on read; SQL would store anything, so the rules are checked
//! for every backend alike.

pub mod agent;
pub mod clock;
pub mod codec;
pub mod commands;
pub mod crypto;
pub mod domain;
pub mod envelope;
mod error;
pub mod event;
#[cfg(any(test, feature = "test-util"))]
pub mod harness;
pub mod id;
pub mod log;
pub mod policy;
pub mod signals;
pub mod state;
pub mod task;
pub mod trace;
pub mod upcast;
pub mod workflow;

pub use agent::{AgentEvent, AgentEventKind, AgentState, AgentStatus};
pub use clock::{Clock, ManualClock, SystemClock};
pub use crypto::{Hash, KeyPair, PublicKey, Signature, VerifyError};
pub use domain::DomainEvent;
pub use envelope::{
    AgentResult, OutputRedaction, Passport, RedactedSpan, SealedEnvelope, SignedPassport, SignedResult,
    SignedSubmission, TaskEnvelope,
};
pub use error::{Error, Result, error_chain};
pub use event::{
    APPEND_BATCH_COUNT_MAX, EVENT_EMITTER_BYTES_MAX, EVENT_PAYLOAD_BYTES_MAX, EVENT_TRACEPARENT_BYTES_MAX,
    ExpectedVersion, Metadata, NewEvent, Position, RecordedEvent, Version, now_ms,
};
pub use id::{AgentId, EventId, EventType, StreamId, TaskId, WorkflowId};
pub use log::{
    AppendOutcome, Delivery, EventLog, Filter, LogError, StartFrom, SubscribeOptions, Subscription,
    SubscriptionGroup, SubscriptionStats,
};
pub use state::{Aggregate, TransitionError};
pub use task::{TaskEvent, TaskEventKind, TaskSpec, TaskState, TaskStatus};
pub use workflow::{DefinitionEvent, WorkflowEvent, WorkflowEventKind, WorkflowState, WorkflowStatus};
