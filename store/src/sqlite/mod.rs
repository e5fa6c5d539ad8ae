//! The log on an SQLite file.
//!
//! # Durability and concurrency
//! - WAL journal with `synchronous=FULL`: every committed append is fsynced to the WAL before
//!   `append` returns, so an acknowledged event survives a power loss. `NORMAL` would be faster
//!   but may lose the last commits on power failure; the embedded default is the record of
//!   history, so it keeps FULL and amortises the sync instead (group commit, below).
//! - **Group commit.** One writer task per log owns the writes of this process: appends queue
//!   up ([`SQLITE_WRITE_QUEUE_COUNT_MAX`]) while the previous group commits, and the writer
//!   takes everything queued (at most [`SQLITE_WRITE_GROUP_COUNT_MAX`] appends) into ONE
//!   transaction: each append is checked (duplicate, expected version) and inserted on its own,
//!   then one `COMMIT` — one fsync — makes the whole group durable, and only then is each
//!   caller answered. An append refused by its checks writes nothing, and its insert is a
//!   single statement, which SQLite applies entirely or not at all (a unique violation undoes
//!   that statement only), so a conflict or duplicate in one append never touches the others
//!   of its group. Any other failure aborts the whole group: nothing of it is written and every
//!   caller gets the error. Appends later in a group see the earlier ones (same transaction),
//!   so a duplicate or conflict inside one group is found as across groups.
//! - Each write transaction starts with `BEGIN IMMEDIATE`, so a writer in another process
//!   waits on the busy timeout instead of failing halfway through.
//! - Subscription checkpoints are stored by the writer too, in the next group, and the
//!   acknowledgement returns after its commit, like an append.
//! - Readers use their own small pool and see committed data only (WAL snapshots).
//! - After each commit the writer adds the group's events to the log's ring of recent events
//!   (`crate::subscription::Ring`), from which this process's subscriptions take new events
//!   without querying.
//!
//! # Layout
//! - this module: the log's handle ([`SqliteLog`]), opening and migrations, imports of events
//!   recorded elsewhere, and every read (streams, the log, subscriptions' pages).
//! - [`writer`]: the group-commit writer task, which owns the writes of this process (appends
//!   and subscription checkpoints) and commits them in groups.
//! - [`append`]: the statements and checks of one append (versions, recorded ids, inserts,
//!   what a unique violation meant).
//! - [`imported`]: the statements of an out-of-order import (the current generation of source
//!   positions, the insert, which key another event holds).

mod append;
mod imported;
mod writer;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::log::{validate_batch, validate_subscription_name};
use events::{
    AppendOutcome, EventLog, ExpectedVersion, Filter, LogError, NewEvent, Position, RecordedEvent, StreamId,
    SubscribeOptions, Subscription, SubscriptionGroup, Version,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};

use self::append::{STATEMENT_PARAMETER_COUNT_MAX, placeholders, version_of};
use self::imported::{current_generation, insert_imported, taken};
use self::writer::{Write, spawn_writer, write_loop};
use crate::import::{self, Existing, GapRow, VERSION_GAPS_SQL, source_position};
use crate::record::{self, Encoded, Row, backend, from_sql, is_unique_violation, read_limit, to_sql};
use crate::subscription::{Ring, Source, SqlGroup, SqlSubscription, matching_in};
use crate::{Error, ImportError, ImportOutcome, Result, RetiredSourcePositions, VersionGap};

// Every `LIMIT` below is `LIMIT CAST(? AS INTEGER)`, never `LIMIT ?`: SQLite marks a statement
// whose LIMIT is a bare parameter to be compiled again each time that parameter is bound (it
// plans for the value), which cost a full prepare per read — 7% of the pipeline's CPU.

/// The embedded SQLite migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a write waits for another process holding the SQLite write lock before failing.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 10_000;

/// Reader connections per log: reads never wait for the writer (WAL), and more than the
/// machine's cores would only contend.
pub const SQLITE_READ_CONNECTION_COUNT_MAX: u32 = 4;

/// Appends waiting for the writer, at most. A full queue makes appenders wait (back
/// pressure) instead of growing memory; 1,024 is more than the appends the pipeline has in
/// flight at once (a few per task, 64 tasks at the benchmark's concurrency).
pub const SQLITE_WRITE_QUEUE_COUNT_MAX: usize = 1_024;

/// Appends committed by one transaction, at most: enough to share one fsync among every append
/// that queued during the previous commit, small enough that a group's transaction (and the
/// wait of the appends at its end) stays short.
pub const SQLITE_WRITE_GROUP_COUNT_MAX: usize = 256;

/// The log on an SQLite file. Cheap to clone (clones share the connections and the writer).
#[derive(Clone)]
pub struct SqliteLog {
    inner: Arc<Inner>,
}

struct Inner {
    readers: SqlitePool,
    writer: SqlitePool,
    /// Writes for the writer task.
    queue: mpsc::Sender<Write>,
    /// Bumped after every commit that adds events, to wake this process's subscribers.
    wake: Arc<watch::Sender<u64>>,
    /// The events the writer committed last, for this process's subscriptions.
    ring: Arc<Ring>,
}

fn bump(wake: &watch::Sender<u64>) {
    wake.send_modify(|generation| *generation = generation.wrapping_add(1));
}

impl fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLog").finish_non_exhaustive()
    }
}

impl SqliteLog {
    /// Opens the SQLite log at `url` and applies the migrations. `sqlite://path` creates the
    /// file when it is missing, unless the URL sets a `mode` (`mode=rw`: the file must exist).
    /// An in-memory database (`sqlite::memory:`) works but uses one connection for everything.
    pub async fn open(url: &str) -> Result<Self> {
        let mut options = SqliteConnectOptions::from_str(url).map_err(Error::Connect)?;
        if !url.contains("mode=") {
            // `sqlite://FILE` creates the file, like the embedded default; `mode=rw` or `ro`
            // in the URL say otherwise.
            options = options.create_if_missing(true);
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // A group's insert spans dozens of pages, so its statement journal outgrew
            // SQLite's 64 KiB in-memory threshold and went to a temp file (created, written
            // and deleted) in about one commit of seven; in memory it is only memory.
            .pragma("temp_store", "memory")
            .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(Error::Connect)?;
        MIGRATOR.run(&writer).await.map_err(Error::Migrate)?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let readers = if in_memory {
            writer.clone()
        } else {
            // No ping before handing out a connection: it is a round trip to the connection's
            // thread on every read, and a read dropped during it (a subscription's wait ends)
            // lost the connection, so a new one (a new thread, statements prepared again) was
            // opened about every 20 tasks under load. A broken SQLite connection is not
            // something a ping would find before the query does.
            SqlitePoolOptions::new()
                .max_connections(SQLITE_READ_CONNECTION_COUNT_MAX)
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(Error::Connect)?
        };
        let (wake, _) = watch::channel(0);
        let wake = Arc::new(wake);
        let ring = Arc::new(Ring::default());
        let (queue, requests) = mpsc::channel(SQLITE_WRITE_QUEUE_COUNT_MAX);
        spawn_writer(write_loop(writer.clone(), requests, Arc::clone(&wake), Arc::clone(&ring)))?;
        Ok(Self { inner: Arc::new(Inner { readers, writer, queue, wake, ring }) })
    }

    /// Copies an event recorded elsewhere, keyed by stream and version, in any order (see
    /// [`crate::SqlLog::import`]).
    pub async fn import(&self, event: &RecordedEvent) -> Result<ImportOutcome, ImportError> {
        let encoded = Encoded::from_recorded(event)
            .map_err(|source| ImportError::Unstorable { event_id: event.id, source })?;
        let failed = |e| import::failed(event, e);
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(failed)?;
        let generation = current_generation(&mut tx).await.map_err(failed)?;
        let existing: Option<Existing> = sqlx::query_as(
            "SELECT event_id, position, source_position, source_generation FROM events \
             WHERE stream_id = $1 AND version = $2",
        )
        .bind(event.stream_id.as_str())
        .bind(to_sql(event.version))
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        if let Some(existing) = existing {
            let Some(position) = import::judge_existing(event, &encoded.event_id, existing, generation)?
            else {
                return Ok(ImportOutcome::AlreadyPresent);
            };
            // Archived without a source position in this generation: take the event's.
            let adopted = sqlx::query(
                "UPDATE events SET source_position = $1, source_generation = $2 WHERE position = $3",
            )
            .bind(source_position(event))
            .bind(generation)
            .bind(position)
            .execute(&mut *tx)
            .await;
            return match adopted {
                Ok(_) => {
                    tx.commit().await.map_err(failed)?;
                    Ok(ImportOutcome::AlreadyPresent)
                }
                Err(e) if is_unique_violation(&e) => Err(taken(&mut tx, event, generation).await?),
                Err(e) => Err(failed(e)),
            };
        }
        let position = match insert_imported(&mut tx, event, &encoded, generation).await {
            Ok(position) => position,
            // The statement is undone, the transaction goes on: find which key was taken.
            Err(e) if is_unique_violation(&e) => return Err(taken(&mut tx, event, generation).await?),
            Err(e) => return Err(failed(e)),
        };
        tx.commit().await.map_err(failed)?;
        // Written outside the writer: the ring no longer holds everything after its start.
        self.inner.ring.extend(Vec::new(), false);
        bump(&self.inner.wake);
        Ok(ImportOutcome::Inserted { position: from_sql(position) })
    }

    /// The imported events of `generation` (`None`: the current one) whose source position is
    /// in `from..before`, in source order, at most `limit` (and [`crate::READ_COUNT_MAX`]);
    /// see [`crate::SqlLog::read_imported`].
    pub async fn read_generation(
        &self,
        generation: Option<u64>,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        if from >= before {
            return Ok(Vec::new());
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT source_position, stream_id, version, event_id, event_type, schema_version, payload, metadata \
             FROM events WHERE source_generation = COALESCE($1, (SELECT MAX(generation) FROM source_generations)) \
             AND source_position >= $2 AND source_position < $3 ORDER BY source_position LIMIT CAST($4 AS INTEGER)",
        )
        .bind(generation.map(to_sql))
        .bind(to_sql(from))
        .bind(to_sql(before))
        .bind(read_limit(limit))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    /// The current generation of source positions (see [`crate::SqlLog::source_generation`]).
    pub async fn source_generation(&self) -> Result<u64, LogError> {
        let mut conn = self.inner.readers.acquire().await.map_err(backend)?;
        Ok(from_sql(current_generation(&mut conn).await.map_err(backend)?))
    }

    /// Starts a new generation of source positions (see
    /// [`crate::SqlLog::retire_source_positions`]).
    pub async fn retire_source_positions(&self) -> Result<RetiredSourcePositions, LogError> {
        let mut tx = self.inner.writer.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
        let generation: i64 = sqlx::query_scalar(
            "INSERT INTO source_generations (generation) \
             SELECT COALESCE(MAX(generation), -1) + 1 FROM source_generations RETURNING generation",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        let retired: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM events WHERE source_generation = $1 AND source_position IS NOT NULL",
        )
        .bind(generation - 1)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(RetiredSourcePositions { generation: from_sql(generation), retired_count: from_sql(retired) })
    }

    /// The events without a source position from position `from` on (see
    /// [`crate::SqlLog::read_unsourced`]).
    pub async fn read_unsourced(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, payload, metadata \
             FROM events WHERE source_position IS NULL AND position >= $1 ORDER BY position LIMIT CAST($2 AS INTEGER)",
        )
        .bind(to_sql(from))
        .bind(read_limit(limit))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    /// The gaps in the streams' versions (see [`crate::SqlLog::version_gaps`]).
    pub async fn version_gaps(&self, limit: usize) -> Result<Vec<VersionGap>, LogError> {
        let rows: Vec<GapRow> = sqlx::query_as(VERSION_GAPS_SQL)
            .bind(read_limit(limit))
            .fetch_all(&self.inner.readers)
            .await
            .map_err(backend)?;
        import::decode_gaps(rows)
    }
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        validate_batch(&events)?;
        let encoded = events.iter().map(Encoded::new).collect::<Result<Vec<_>, _>>()?;
        let (reply, answer) = oneshot::channel();
        let write = Write::Append { stream_id: stream_id.clone(), expected, events, encoded, reply };
        self.inner.queue.send(write).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, payload, metadata \
             FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT CAST($3 AS INTEGER)",
        )
        .bind(stream_id.as_str())
        .bind(to_sql(from))
        .bind(read_limit(limit))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    /// From the ring of recent events when it holds `from` (the pipeline's readers that follow
    /// the log, such as the registry, mostly ask for what was just committed), else from the
    /// database. The ring answers only for events it holds, so a reader that has caught up with
    /// it reads the database, where other processes' appends show.
    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        if let Some((events, _)) = self.inner.ring.read(from, limit, &events::Filter::all())
            && !events.is_empty()
        {
            return Ok(events);
        }
        self.inner.read_page(from, limit).await
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<Version, LogError> {
        let mut conn = self.inner.readers.acquire().await.map_err(backend)?;
        version_of(&mut conn, stream_id).await
    }

    async fn subscribe(
        &self,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, LogError> {
        let source: Arc<dyn Source> = self.inner.clone();
        Ok(Box::new(SqlSubscription::open(source, name, options).await?))
    }

    /// Members are subscriptions of their own, named as the members, that acknowledge
    /// without waiting for the commit (`subscription::SqlGroup`).
    async fn subscribe_group(
        &self,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Option<Arc<dyn SubscriptionGroup>>, LogError> {
        let source: Arc<dyn Source> = self.inner.clone();
        Ok(Some(Arc::new(SqlGroup::new(source, name, members)?)))
    }

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        validate_subscription_name(name)?;
        let deleted = sqlx::query("DELETE FROM subscriptions WHERE name = $1")
            .bind(name)
            .execute(&self.inner.writer)
            .await
            .map_err(backend)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn subscription_stats(&self) -> Result<Vec<events::SubscriptionStats>, LogError> {
        let head: (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.inner.writer)
            .await
            .map_err(backend)?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, checkpoint FROM subscriptions ORDER BY name")
                .fetch_all(&self.inner.writer)
                .await
                .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(name, checkpoint)| events::SubscriptionStats {
                name,
                pending: u64::try_from(head.0.saturating_sub(checkpoint)).unwrap_or(0),
                redelivered: None,
            })
            .collect())
    }

    /// A subscription's `next` reads the log again when dropped and called anew.
    fn next_is_cancel_safe(&self) -> bool {
        true
    }

    /// Appends wake the subscribers of the appending process only.
    fn cross_process_poll(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(crate::SQLITE_CROSS_PROCESS_POLL_MS))
    }
}

/// Positions a filtered subscription read scans per query, at most: a few dozen pages of the
/// table, and enough to fill a subscription's page (256 events) when one event in sixteen
/// matches.
const SCAN_WINDOW_COUNT: u64 = 4_096;

#[async_trait]
impl Source for Inner {
    async fn read_page(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, payload, metadata \
             FROM events WHERE position >= $1 ORDER BY position LIMIT CAST($2 AS INTEGER)",
        )
        .bind(to_sql(from))
        .bind(read_limit(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    /// Filters by event type in the query, so a subscription that fell behind the ring (a
    /// burst, a restart) reads only its own events: each phase takes one or two of the dozen
    /// types a task records, and reading, copying and decoding every event for every
    /// subscription was most of the readers' work while a backlog drained. The scan is
    /// bounded ([`SCAN_WINDOW_COUNT`] positions per query) and stops at the head read first:
    /// appends commit one at a time in position order, so every position up to that head is
    /// committed and none can appear below it later.
    async fn read_matching(
        &self,
        from: Position,
        limit: usize,
        filter: &Filter,
    ) -> Result<(Vec<RecordedEvent>, Position), LogError> {
        if filter.event_types.is_empty() || filter.event_types.len() > STATEMENT_PARAMETER_COUNT_MAX / 2 {
            return Ok(matching_in(self.read_page(from, limit).await?, from, filter));
        }
        let head = self.head().await?;
        if head < from {
            return Ok((Vec::new(), from.saturating_sub(1)));
        }
        let last = head.min(from.saturating_add(SCAN_WINDOW_COUNT - 1));
        let placeholders = placeholders(filter.event_types.len());
        // The statement holds only placeholders, never input.
        let sql = AssertSqlSafe(format!(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, payload, metadata \
             FROM events WHERE position >= ? AND position <= ? AND event_type IN ({placeholders}) \
             ORDER BY position LIMIT CAST(? AS INTEGER)"
        ));
        let mut query = sqlx::query_as::<_, Row>(sql).bind(to_sql(from)).bind(to_sql(last));
        for event_type in &filter.event_types {
            query = query.bind(event_type.as_str());
        }
        let rows = query.bind(read_limit(limit)).fetch_all(&self.readers).await.map_err(backend)?;
        let full = rows.len() >= limit;
        let mut matching = Vec::with_capacity(rows.len());
        let mut scanned = last;
        for row in rows {
            let event = record::decode(row)?;
            if full {
                scanned = event.position;
            }
            if filter.matches(&event.stream_id, &event.event_type) {
                matching.push(event);
            }
        }
        Ok((matching, scanned))
    }

    async fn head(&self) -> Result<Position, LogError> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.readers)
            .await
            .map_err(backend)?;
        Ok(from_sql(head))
    }

    async fn checkpoint_or_init(&self, name: &str, initial: Position) -> Result<Position, LogError> {
        sqlx::query(
            "INSERT INTO subscriptions (name, checkpoint) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(to_sql(initial))
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        let checkpoint: i64 = sqlx::query_scalar("SELECT checkpoint FROM subscriptions WHERE name = $1")
            .bind(name)
            .fetch_one(&self.writer)
            .await
            .map_err(backend)?;
        Ok(from_sql(checkpoint))
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Position) -> Result<(), LogError> {
        let (reply, answer) = oneshot::channel();
        let write = Write::Checkpoint { name: name.to_string(), checkpoint, reply: Some(reply) };
        self.queue.send(write).await.map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    async fn queue_checkpoint(&self, name: &str, checkpoint: Position) -> Result<(), LogError> {
        let write = Write::Checkpoint { name: name.to_string(), checkpoint, reply: None };
        self.queue.send(write).await.map_err(|_| LogError::Closed)
    }

    fn wake(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    fn ring(&self) -> Option<&Ring> {
        Some(&self.ring)
    }
}
