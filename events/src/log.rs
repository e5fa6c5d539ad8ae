//! The log contract: one trait, implemented by the SQL store (SQLite, PostgreSQL) and by
//! JetStream, and checked by one conformance suite (`testkit::conformance`).
//!
//! # Semantics every implementation keeps
//! - **Streams** hold events at versions 1, 2, 3, … with no gaps; an append carries an
//!   [`ExpectedVersion`] and fails with [`LogError::Conflict`] when the stream does not match, so
//!   of two racing writers exactly one gets each version.
//! - **Batches** are all or nothing as far as the backend allows (SQL: one transaction).
//! - **Idempotence**: appending a batch whose first event id the stream already holds returns
//!   the earlier outcome with `duplicate: true` and writes nothing, whatever the expected
//!   version. A handler that derives event ids deterministically can therefore re-run safely.
//!   Any other use of a recorded id (in another stream, or as a later event of a new batch) is
//!   [`LogError::DuplicateEventId`].
//! - **Positions** are global and increase with each recorded event (they may skip numbers).
//! - **Subscriptions** are durable and named: they deliver matching events in position order,
//!   at least once, and a subscription opened again under the same name resumes after the last
//!   position below which everything was acknowledged. An event that is not acknowledged is
//!   delivered again (after [`Subscription::nack`], or when the subscription is reopened).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{ExpectedVersion, NewEvent, Position, RecordedEvent, Version};
use crate::id::{EventId, EventType, StreamId};

/// The longest subscription name.
pub const SUBSCRIPTION_NAME_BYTES_MAX: usize = 64;

/// An opaque backend failure, boxed so the contract does not name any backend's types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong with the log, sorted by who must act: the caller's input, a concurrency
/// conflict, or the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The stream did not match the expected version: another writer got there first.
    #[error("conflict on stream {stream_id}: expected {expected}, the stream is at version {actual}")]
    Conflict {
        /// The stream appended to.
        stream_id: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's actual last version (0 for none).
        actual: Version,
    },
    /// An append carried no events.
    #[error("an append needs at least one event")]
    EmptyBatch,
    /// An append carried more events than allowed.
    #[error("an append may carry at most {max} events, this one has {count}")]
    BatchTooLarge {
        /// Events in the batch.
        count: usize,
        /// The limit ([`crate::APPEND_BATCH_COUNT_MAX`]).
        max: usize,
    },
    /// One event's payload is over the size limit.
    #[error("event {event_id} has a {bytes}-byte payload; the limit is {max} bytes")]
    EventTooLarge {
        /// The event.
        event_id: EventId,
        /// Its payload size.
        bytes: usize,
        /// The limit ([`crate::EVENT_PAYLOAD_BYTES_MAX`]).
        max: usize,
    },
    /// One event's metadata is not storable by every backend: an emitter or traceparent that is
    /// empty, over its limit ([`crate::EVENT_EMITTER_BYTES_MAX`],
    /// [`crate::EVENT_TRACEPARENT_BYTES_MAX`]), or holding characters a NATS header cannot carry.
    #[error("event {event_id} has an invalid {field}: {reason}")]
    InvalidMetadata {
        /// The event.
        event_id: EventId,
        /// The metadata field refused: `emitter` or `traceparent`.
        field: &'static str,
        /// What is wrong with it (the value itself is left out: it may be long or unprintable).
        reason: String,
    },
    /// The same event id appears twice in one batch.
    #[error("event id {event_id} appears more than once in the batch")]
    DuplicateInBatch {
        /// The repeated id.
        event_id: EventId,
    },
    /// An event of the batch other than its first carries an id the log already holds. Only the
    /// first event's id makes a re-append an idempotent no-op; a later repeated id is a mistake.
    #[error(
        "event id {event_id} is already recorded: a batch appended again is recognised by its first event id, in the stream it was appended to; any other reuse of an id is refused"
    )]
    DuplicateEventId {
        /// The id already recorded.
        event_id: EventId,
    },
    /// A subscription name is not usable.
    #[error("invalid subscription name {name:?}: use 1-64 characters of A-Z a-z 0-9 _ -")]
    InvalidSubscriptionName {
        /// The name given.
        name: String,
    },
    /// A subscription filter names something no stream or event can have.
    #[error("invalid subscription filter: {reason}")]
    InvalidFilter {
        /// What is wrong with it.
        reason: String,
    },
    /// The backend holds something that is not a valid event (corruption, or a foreign writer).
    #[error("corrupt record at position {position}: {reason}")]
    Corrupt {
        /// Where.
        position: Position,
        /// What is wrong.
        reason: String,
    },
    /// The log or subscription was closed.
    #[error("the log is closed")]
    Closed,
    /// The backend failed (connection, I/O, server error).
    #[error("log backend failed: {0}")]
    Backend(#[source] BoxError),
}

impl LogError {
    /// Whether the caller's own input caused the error (retrying the same input fails again).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::EmptyBatch
                | Self::BatchTooLarge { .. }
                | Self::EventTooLarge { .. }
                | Self::InvalidMetadata { .. }
                | Self::DuplicateInBatch { .. }
                | Self::DuplicateEventId { .. }
                | Self::InvalidFilter { .. }
                | Self::InvalidSubscriptionName { .. }
        )
    }

    /// Wraps a backend error.
    pub fn backend(error: impl Into<BoxError>) -> Self {
        Self::Backend(error.into())
    }
}

/// The result of a successful append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The version of the first event of the batch.
    pub first_version: Version,
    /// The version of the last event of the batch: the stream's version after the append.
    pub last_version: Version,
    /// The global position of the last event of the batch.
    pub last_position: Position,
    /// True when the batch had been appended before and nothing was written now.
    pub duplicate: bool,
}

/// Which events a subscription receives: all, or those of some stream categories and/or some
/// event types. An empty list means "any".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Filter {
    /// Stream categories (`task`, `agent`, …); empty for all.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Event types; empty for all.
    #[serde(default)]
    pub event_types: Vec<EventType>,
}

impl Filter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Events of one stream category.
    pub fn category(category: impl Into<String>) -> Self {
        Self { categories: vec![category.into()], event_types: Vec::new() }
    }

    /// Adds event types to the filter.
    pub fn with_types(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.event_types.extend(types);
        self
    }

    /// Whether an event of `event_type` on `stream_id` passes.
    pub fn matches(&self, stream_id: &StreamId, event_type: &EventType) -> bool {
        (self.categories.is_empty() || self.categories.iter().any(|c| c == stream_id.category()))
            && (self.event_types.is_empty() || self.event_types.contains(event_type))
    }
}

/// Where a subscription that has never acknowledged anything starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// From the first event in the log.
    #[default]
    Beginning,
    /// From this position (inclusive).
    Position(Position),
    /// Only events recorded after the subscription is created.
    End,
}

/// How to open a subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Which events to deliver.
    pub filter: Filter,
    /// Where a new subscription starts; ignored when the name has a checkpoint already.
    pub start: StartFrom,
}

/// One delivered event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The event.
    pub event: RecordedEvent,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
}

/// A durable, named subscription.
#[async_trait]
pub trait Subscription: Send {
    /// The next matching event, waiting until there is one.
    async fn next(&mut self) -> Result<Delivery, LogError>;

    /// Acknowledges the event at `position`: it will not be delivered again to this name.
    async fn ack(&mut self, position: Position) -> Result<(), LogError>;

    /// Refuses the event at `position` for now: it will be delivered again.
    async fn nack(&mut self, position: Position) -> Result<(), LogError>;
}

/// Subscriptions served together (see [`EventLog::subscribe_group`]).
#[async_trait]
pub trait SubscriptionGroup: Send + Sync {
    /// Opens the member `name`. A member is open once at a time: dropping it gives back what
    /// it held unacknowledged, and it can then be opened again (a restarted consumer).
    async fn member(&self, name: &str) -> Result<Box<dyn Subscription>, LogError>;
}

/// Checks a subscription name.
pub fn validate_subscription_name(name: &str) -> Result<(), LogError> {
    let valid = !name.is_empty()
        && name.len() <= SUBSCRIPTION_NAME_BYTES_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid { Ok(()) } else { Err(LogError::InvalidSubscriptionName { name: name.to_string() }) }
}

/// Checks a subscription group ([`EventLog::subscribe_group`]): its name, at least one member,
/// each member's name and filter, and no member named twice.
pub fn validate_group(name: &str, members: &[(String, SubscribeOptions)]) -> Result<(), LogError> {
    validate_subscription_name(name)?;
    if members.is_empty() {
        return Err(LogError::InvalidFilter { reason: format!("group {name} has no members") });
    }
    for (index, (member, options)) in members.iter().enumerate() {
        validate_subscription_name(member)?;
        validate_filter(&options.filter)?;
        if members[..index].iter().any(|(other, _)| other == member) {
            return Err(LogError::InvalidFilter { reason: format!("member {member} is named twice") });
        }
    }
    Ok(())
}

/// Checks a subscription's filter: every category must be one a stream id can have (lowercase
/// letters a-z), else the subscription would silently match nothing (or, on JetStream, make an
/// unusable subject).
pub fn validate_filter(filter: &Filter) -> Result<(), LogError> {
    for category in &filter.categories {
        if category.is_empty() || !category.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(LogError::InvalidFilter {
                reason: format!("stream category {category:?} is not lowercase letters a-z"),
            });
        }
    }
    Ok(())
}

/// Why an emitter cannot be stored, if it cannot.
fn emitter_problem(emitter: &str) -> Option<String> {
    if emitter.is_empty() {
        return Some("it is empty".into());
    }
    if emitter.len() > crate::EVENT_EMITTER_BYTES_MAX {
        return Some(format!(
            "it is {} bytes; the limit is {}",
            emitter.len(),
            crate::EVENT_EMITTER_BYTES_MAX
        ));
    }
    if let Some((at, c)) = emitter.char_indices().find(|(_, c)| c.is_control()) {
        return Some(format!("it holds the control character {c:?} at byte {at}"));
    }
    if emitter.trim() != emitter {
        return Some("it starts or ends with whitespace".into());
    }
    None
}

/// Whether a traceparent passes the checks of [`validate_batch`]: a phase carries its cause's
/// traceparent on to its outputs only then, so one written by a foreign producer straight
/// into the log cannot make every derived append fail.
pub fn traceparent_is_usable(traceparent: &str) -> bool {
    traceparent_problem(traceparent).is_none()
}

/// Why a traceparent cannot be stored, if it cannot.
fn traceparent_problem(traceparent: &str) -> Option<String> {
    if traceparent.is_empty() {
        return Some("it is empty (leave it out instead)".into());
    }
    if traceparent.len() > crate::EVENT_TRACEPARENT_BYTES_MAX {
        return Some(format!(
            "it is {} bytes; the limit is {}",
            traceparent.len(),
            crate::EVENT_TRACEPARENT_BYTES_MAX
        ));
    }
    if let Some((at, c)) = traceparent.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
        return Some(format!("it holds {c:?} at byte {at}; only visible ASCII (! to ~) is allowed"));
    }
    None
}

/// Checks one event's metadata against the limits every backend shares.
fn validate_metadata(event: &NewEvent) -> Result<(), LogError> {
    let invalid = |field, reason| LogError::InvalidMetadata { event_id: event.id, field, reason };
    if let Some(reason) = emitter_problem(&event.metadata.emitter) {
        return Err(invalid("emitter", reason));
    }
    if let Some(reason) = event.metadata.traceparent.as_deref().and_then(traceparent_problem) {
        return Err(invalid("traceparent", reason));
    }
    Ok(())
}

/// Checks a batch against the limits every backend shares, before anything is written: the
/// number of events ([`crate::APPEND_BATCH_COUNT_MAX`]), each payload's size
/// ([`crate::EVENT_PAYLOAD_BYTES_MAX`]), each event's metadata (the emitter and traceparent
/// rules of [`crate::EVENT_EMITTER_BYTES_MAX`] and [`crate::EVENT_TRACEPARENT_BYTES_MAX`]) and
/// that no id repeats.
pub fn validate_batch(events: &[NewEvent]) -> Result<(), LogError> {
    if events.is_empty() {
        return Err(LogError::EmptyBatch);
    }
    if events.len() > crate::APPEND_BATCH_COUNT_MAX {
        return Err(LogError::BatchTooLarge { count: events.len(), max: crate::APPEND_BATCH_COUNT_MAX });
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    for event in events {
        if event.payload.len() > crate::EVENT_PAYLOAD_BYTES_MAX {
            return Err(LogError::EventTooLarge {
                event_id: event.id,
                bytes: event.payload.len(),
                max: crate::EVENT_PAYLOAD_BYTES_MAX,
            });
        }
        validate_metadata(event)?;
        if !seen.insert(event.id) {
            return Err(LogError::DuplicateInBatch { event_id: event.id });
        }
    }
    Ok(())
}

/// How one durable subscription stands ([`EventLog::subscription_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Its name.
    pub name: String,
    /// What it has yet to acknowledge: on the SQL logs, the events after its checkpoint
    /// (whatever its filter); on JetStream, the matching events not delivered yet and those
    /// delivered but not acknowledged.
    pub pending: u64,
    /// Deliveries made again because an acknowledgement did not come in time (JetStream);
    /// `None` where the backend does not redeliver on a timer.
    pub redelivered: Option<u64>,
}

/// The event log. Every backend implements it; every consumer of the log holds an
/// `Arc<dyn EventLog>`.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `events` to `stream_id` if the stream matches `expected`.
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError>;

    /// Reads up to `limit` events of one stream, from version `from` (inclusive) on.
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// Reads up to `limit` events of all streams, from position `from` (inclusive) on.
    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError>;

    /// The last version of a stream, 0 if it has no events.
    async fn stream_version(&self, stream_id: &StreamId) -> Result<Version, LogError>;

    /// Opens (or creates) the durable subscription `name`.
    async fn subscribe(
        &self,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, LogError>;

    /// Durable subscriptions that one process opens together, whose filters no event passes
    /// twice (the pipeline's phases): a backend may serve them all from one subscription of its
    /// own named `name`, so that each event is delivered once to the process instead of once
    /// per member. Each member is opened with [`SubscriptionGroup::member`] by its name, and
    /// behaves as a subscription: at least once, acknowledged one event at a time — except
    /// that a backend may send an acknowledgement without waiting for its confirmation, so an
    /// event acknowledged just before the process stops (or before the member is dropped and
    /// opened again) may be delivered again.
    ///
    /// `None` when the backend has no such shared form: the members are then ordinary
    /// subscriptions of their own. (JetStream serves the members from one consumer; SQLite
    /// keeps a subscription per member, named as the member, that reads the writer's shared
    /// ring and queues its acknowledgements for the next group commit; PostgreSQL has none.)
    async fn subscribe_group(
        &self,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Option<Arc<dyn SubscriptionGroup>>, LogError> {
        let _ = (name, members);
        Ok(None)
    }

    /// Deletes the durable subscription `name` and its stored position; answers whether it
    /// existed. A subscription opened under the name afterwards starts afresh. Handles still
    /// open on it must be dropped first (what they acknowledge later is not kept).
    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError>;

    /// How the log's durable subscriptions stand now, for metrics (empty by default).
    async fn subscription_stats(&self) -> Result<Vec<SubscriptionStats>, LogError> {
        Ok(Vec::new())
    }

    /// Whether dropping a pending [`Subscription::next`] loses nothing, so that a consumer may
    /// race it against other work (true for the SQL logs, which read the log again; false by
    /// default, and for JetStream, whose pull request may already hold a delivery).
    fn next_is_cancel_safe(&self) -> bool {
        false
    }

    /// How often a subscriber must look again for appends made by other processes, when this
    /// log wakes only the subscribers of the process that appended (SQLite); `None` when a
    /// subscription is woken by every writer (the default).
    fn cross_process_poll(&self) -> Option<std::time::Duration> {
        None
    }
}
