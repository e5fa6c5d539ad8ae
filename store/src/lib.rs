//! # store
//!
//! The SQL event store: the log contract of [`events::EventLog`] on SQLite (the embedded
//! default, one file) and on PostgreSQL, through sqlx runtime queries (the build needs no
//! database). Both pass the shared conformance suite (`testkit::conformance`).
//!
//! # Layout
//! - [`open`] / [`SqlLog::open`]: pick the backend from a URL (`sqlite://path?mode=rwc`,
//!   `postgres://…`), connect, and apply the embedded migrations (`migrations/sqlite`,
//!   `migrations/postgres`).
//! - [`SqliteLog`]: one file in WAL mode, `synchronous=FULL`, one writer task that commits
//!   every queued append (and acknowledgement) in one transaction — one fsync per group, each
//!   caller answered after the commit; subscribers are woken in-process.
//! - [`PostgresLog`]: appends serialised by a transaction-scoped advisory lock so positions
//!   become visible in order; subscribers are woken by `LISTEN/NOTIFY`.
//! - `import.rs`: [`ImportOutcome`] / [`ImportError`], the result of [`SqlLog::import`], the
//!   archiver's idempotent copy of an event recorded elsewhere (JetStream), unique on stream
//!   and version, in any order; the copy keeps the event's source position (its JetStream
//!   sequence) in the current *generation* of source positions, and [`SqlLog::read_imported`]
//!   reads imported events back by it. [`SqlLog::retire_source_positions`] starts a new
//!   generation when the source numbers its events again; [`SqlLog::version_gaps`] finds the
//!   versions an import has not filled (yet).
//! - [`Error`]: what can fail when opening a store; log operations fail with
//!   [`events::LogError`].
//!
//! # Semantics beyond the trait's
//! - Event ids are unique across the whole log (as `Nats-Msg-Id` is across a JetStream
//!   stream): a batch whose first event id is recorded anywhere is a duplicate (the earlier
//!   outcome is returned, nothing is written); a later event of a batch whose id is recorded
//!   already refuses the batch with [`events::LogError::DuplicateEventId`].
//! - Subscriptions filter in the process (the log is read in pages of 256 and matched), keep
//!   at most [`SUBSCRIPTION_PENDING_COUNT_MAX`] unacknowledged events, and store their
//!   checkpoint on acknowledgement. One consumer per subscription name at a time. On SQLite
//!   they take new events from the writer's ring of recent events
//!   ([`SUBSCRIPTION_RING_COUNT_MAX`], [`SUBSCRIPTION_RING_BYTES_MAX`]) rather than the file,
//!   and read the file at least every [`SUBSCRIPTION_RING_TRUST_MS`] they are asking for more.
//! - Reads return at most [`READ_COUNT_MAX`] events per call.
//!
//! # Examples
//! ```no_run
//! # async fn example() -> Result<(), store::Error> {
//! let log = store::open("sqlite://pantheon.db?mode=rwc").await?;
//! let version = log.stream_version(&"task-1".parse().expect("valid id")).await;
//! # let _ = version;
//! # Ok(())
//! # }
//! ```

mod error;
mod import;
mod postgres;
mod record;
mod sqlite;
mod subscription;

use std::sync::Arc;

use async_trait::async_trait;
use events::{
    AppendOutcome, EventLog, ExpectedVersion, LogError, NewEvent, Position, RecordedEvent, StreamId,
    SubscribeOptions, Subscription, SubscriptionGroup, Version,
};

pub use error::{Error, Result};
pub use import::{ImportError, ImportOutcome, RetiredSourcePositions, VersionGap};
pub use postgres::{POSTGRES_CONNECTION_COUNT_MAX, PostgresLog};
pub use sqlite::{
    SQLITE_BUSY_TIMEOUT_MS, SQLITE_READ_CONNECTION_COUNT_MAX, SQLITE_WRITE_GROUP_COUNT_MAX,
    SQLITE_WRITE_QUEUE_COUNT_MAX, SqliteLog,
};
pub use subscription::{
    SUBSCRIPTION_PENDING_COUNT_MAX, SUBSCRIPTION_POLL_MS, SUBSCRIPTION_RING_BYTES_MAX,
    SUBSCRIPTION_RING_COUNT_MAX, SUBSCRIPTION_RING_TRUST_MS,
};

/// The most events one `read_stream` / `read_all` call returns, whatever limit the caller
/// asks for: it bounds the memory one call can take (1,000 events of at most 512 KiB).
pub const READ_COUNT_MAX: usize = 1_000;

/// How often a subscriber of an SQLite log looks for appends made by other processes
/// ([`events::EventLog::cross_process_poll`]): an append wakes only its own process's
/// subscribers, and `pantheon submit` is another process.
pub const SQLITE_CROSS_PROCESS_POLL_MS: u64 = 50;

/// The SQL log on whichever backend the URL names.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SqlLog {
    /// An SQLite file.
    Sqlite(SqliteLog),
    /// A PostgreSQL database.
    Postgres(PostgresLog),
}

impl SqlLog {
    /// Connects to the store the URL names and applies its migrations: `sqlite://path` (add
    /// `?mode=rwc` to create the file) or `postgres://…` / `postgresql://…`.
    pub async fn open(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteLog::open(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(PostgresLog::open(url).await?))
        } else {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            Err(Error::UnsupportedUrl { scheme: scheme.to_string() })
        }
    }

    /// Copies an event recorded in another log (JetStream) into this one, keyed by its stream
    /// and version: importing the same event again writes nothing. Events may come in any
    /// order: a stream's versions may have gaps here until the missing ones are imported
    /// ([`Self::version_gaps`] finds those that stay), and positions here follow the order of
    /// the imports, so a reader by position (`read_all`, a subscription) may meet a stream's
    /// versions out of order: read by source position ([`Self::read_imported`]) for the
    /// source's order. Another event already at that stream
    /// and version is [`ImportError::VersionTaken`]; an event id archived elsewhere is
    /// [`ImportError::EventIdTaken`].
    ///
    /// The event's position in the source (`event.position`, the JetStream stream sequence)
    /// is kept as its *source position* (none when it is 0), in the current generation, for
    /// [`Self::read_imported`]. A source position holds one event per generation: another
    /// event from a taken one (the source numbered its events again) is
    /// [`ImportError::SourcePositionTaken`] until [`Self::retire_source_positions`]. An event
    /// imported again that is archived without a source position in the current generation
    /// (imported before positions were kept, or before a retirement) takes this one.
    pub async fn import(&self, event: &RecordedEvent) -> Result<ImportOutcome, ImportError> {
        match self {
            Self::Sqlite(log) => log.import(event).await,
            Self::Postgres(log) => log.import(event).await,
        }
    }

    /// Reads imported events by the position they had in the source: those of the current
    /// generation whose source position is in `from..before`, in source order, at most
    /// `limit` (and [`READ_COUNT_MAX`]). Each event's `position` is its source position, not
    /// its position here, so the answer continues a read of the source seamlessly. Events
    /// appended here, imported before source positions were kept (migration 0002), or
    /// imported under an earlier generation are never returned.
    pub async fn read_imported(
        &self,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_generation(None, from, before, limit).await
    }

    /// Like [`Self::read_imported`], in the source positions of `generation` (`None`: the
    /// current one).
    pub async fn read_generation(
        &self,
        generation: Option<u64>,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        match self {
            Self::Sqlite(log) => log.read_generation(generation, from, before, limit).await,
            Self::Postgres(log) => log.read_generation(generation, from, before, limit).await,
        }
    }

    /// The current generation of source positions: 0 until the first
    /// [`Self::retire_source_positions`].
    pub async fn source_generation(&self) -> Result<u64, LogError> {
        match self {
            Self::Sqlite(log) => log.source_generation().await,
            Self::Postgres(log) => log.source_generation().await,
        }
    }

    /// Starts a new generation of source positions, for a source that numbers its events from
    /// the start again (a JetStream stream deleted and created again): the events imported so
    /// far keep their source positions, in the generation they were imported under (readable
    /// with [`Self::read_generation`]), and no longer take a source position from a new
    /// import. Nothing is deleted. Serialised with imports: an import either finished before
    /// (old generation) or starts after (new one).
    pub async fn retire_source_positions(&self) -> Result<RetiredSourcePositions, LogError> {
        match self {
            Self::Sqlite(log) => log.retire_source_positions().await,
            Self::Postgres(log) => log.retire_source_positions().await,
        }
    }

    /// The events without a source position (appended here, or imported before source
    /// positions were kept) from position `from` here on, in this log's order, at most `limit`
    /// (and [`READ_COUNT_MAX`]), with their positions here.
    pub async fn read_unsourced(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        match self {
            Self::Sqlite(log) => log.read_unsourced(from, limit).await,
            Self::Postgres(log) => log.read_unsourced(from, limit).await,
        }
    }

    /// The gaps in the streams' versions, at most `limit` (and [`READ_COUNT_MAX`]), by stream
    /// and version: every version of a stream below its last should be here, so each gap is
    /// an event not imported (yet). Reads every stream's versions: for checks, not for the
    /// hot path.
    pub async fn version_gaps(&self, limit: usize) -> Result<Vec<VersionGap>, LogError> {
        match self {
            Self::Sqlite(log) => log.version_gaps(limit).await,
            Self::Postgres(log) => log.version_gaps(limit).await,
        }
    }

    /// The log as the object every consumer holds.
    pub fn into_dyn(self) -> Arc<dyn EventLog> {
        match self {
            Self::Sqlite(log) => Arc::new(log),
            Self::Postgres(log) => Arc::new(log),
        }
    }
}

/// Opens the store the URL names (see [`SqlLog::open`]) as an `Arc<dyn EventLog>`.
pub async fn open(url: &str) -> Result<Arc<dyn EventLog>> {
    Ok(SqlLog::open(url).await?.into_dyn())
}

#[async_trait]
impl EventLog for SqlLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        match self {
            Self::Sqlite(log) => log.append(stream_id, expected, events).await,
            Self::Postgres(log) => log.append(stream_id, expected, events).await,
        }
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        match self {
            Self::Sqlite(log) => log.read_stream(stream_id, from, limit).await,
            Self::Postgres(log) => log.read_stream(stream_id, from, limit).await,
        }
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        match self {
            Self::Sqlite(log) => log.read_all(from, limit).await,
            Self::Postgres(log) => log.read_all(from, limit).await,
        }
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<Version, LogError> {
        match self {
            Self::Sqlite(log) => log.stream_version(stream_id).await,
            Self::Postgres(log) => log.stream_version(stream_id).await,
        }
    }

    async fn subscribe(
        &self,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, LogError> {
        match self {
            Self::Sqlite(log) => log.subscribe(name, options).await,
            Self::Postgres(log) => log.subscribe(name, options).await,
        }
    }

    async fn subscribe_group(
        &self,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Option<Arc<dyn SubscriptionGroup>>, LogError> {
        match self {
            Self::Sqlite(log) => log.subscribe_group(name, members).await,
            Self::Postgres(log) => log.subscribe_group(name, members).await,
        }
    }

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        match self {
            Self::Sqlite(log) => log.delete_subscription(name).await,
            Self::Postgres(log) => log.delete_subscription(name).await,
        }
    }

    async fn subscription_stats(&self) -> Result<Vec<events::SubscriptionStats>, LogError> {
        match self {
            Self::Sqlite(log) => log.subscription_stats().await,
            Self::Postgres(log) => log.subscription_stats().await,
        }
    }

    fn next_is_cancel_safe(&self) -> bool {
        match self {
            Self::Sqlite(log) => log.next_is_cancel_safe(),
            Self::Postgres(log) => log.next_is_cancel_safe(),
        }
    }

    fn cross_process_poll(&self) -> Option<std::time::Duration> {
        match self {
            Self::Sqlite(log) => log.cross_process_poll(),
            Self::Postgres(log) => log.cross_process_poll(),
        }
    }
}
