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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::log::{validate_batch, validate_subscription_name};
use events::{
    AppendOutcome, EventId, EventLog, ExpectedVersion, Filter, LogError, NewEvent, Position, RecordedEvent,
    StreamId, SubscribeOptions, Subscription, SubscriptionGroup, Version,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};

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

/// Events committed by one transaction, at most (a group stops growing past it): bounds the
/// transaction's size when appends carry large batches.
const WRITE_GROUP_EVENT_COUNT_MAX: usize = 4_096;

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

/// A request to the writer task.
enum Write {
    /// Append a checked, encoded batch; answer after the commit.
    Append {
        stream_id: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        encoded: Vec<Encoded>,
        reply: oneshot::Sender<Result<AppendOutcome, LogError>>,
    },
    /// Raise a subscription's stored checkpoint; answer after the commit, when asked to.
    Checkpoint { name: String, checkpoint: Position, reply: Option<oneshot::Sender<Result<(), LogError>>> },
}

impl Write {
    fn event_count(&self) -> usize {
        match self {
            Self::Append { events, .. } => events.len(),
            Self::Checkpoint { .. } => 0,
        }
    }
}

/// What a write of a group did (sent to its caller once the group is committed), with the
/// positions of the events an append wrote.
enum Answer {
    Appended(Result<AppendOutcome, LogError>, Vec<Position>),
    Stored,
}

/// The events of an append as they were recorded.
fn record(
    stream_id: &StreamId,
    first_version: Version,
    events: Vec<NewEvent>,
    positions: Vec<Position>,
) -> impl Iterator<Item = RecordedEvent> {
    let stream_id = stream_id.clone();
    events.into_iter().zip(positions).zip(first_version..).map(move |((event, position), version)| {
        RecordedEvent {
            stream_id: stream_id.clone(),
            version,
            position,
            id: event.id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            payload: event.payload,
            metadata: event.metadata,
        }
    })
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

/// The current generation of source positions.
async fn current_generation(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    let generation: Option<i64> =
        sqlx::query_scalar("SELECT MAX(generation) FROM source_generations").fetch_one(conn).await?;
    Ok(generation.unwrap_or(0))
}

/// After a unique violation on importing `event`: which key another event holds.
async fn taken(
    conn: &mut SqliteConnection,
    event: &RecordedEvent,
    generation: i64,
) -> Result<ImportError, ImportError> {
    let failed = |e| import::failed(event, e);
    let at_source: Option<(String, i64)> = sqlx::query_as(
        "SELECT event_id, position FROM events WHERE source_generation = $1 AND source_position = $2",
    )
    .bind(generation)
    .bind(source_position(event))
    .fetch_optional(&mut *conn)
    .await
    .map_err(failed)?;
    let by_id: Option<(String, i64)> =
        sqlx::query_as("SELECT stream_id, version FROM events WHERE event_id = $1")
            .bind(event.id.to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(failed)?;
    Ok(import::taken(event, at_source, by_id))
}

/// Inserts one imported event with its source position in `generation`; returns its position
/// here.
async fn insert_imported(
    conn: &mut SqliteConnection,
    event: &RecordedEvent,
    encoded: &Encoded,
    generation: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO events \
         (stream_id, version, event_id, event_type, schema_version, payload, metadata, source_position, source_generation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING position",
    )
    .bind(event.stream_id.as_str())
    .bind(to_sql(event.version))
    .bind(&encoded.event_id)
    .bind(&encoded.event_type)
    .bind(encoded.schema_version)
    .bind(&encoded.payload)
    .bind(&encoded.metadata)
    .bind(source_position(event))
    .bind(generation)
    .fetch_one(conn)
    .await
}

/// Runs the writer on a thread of its own, with a single-threaded runtime. A group commit is
/// about six round trips to the connection's thread; as a task of the shared runtime, the
/// writer waited behind the phases' handlers for a worker at each one, and under load the
/// commits (every append waits for one) took twice as long as their work.
fn spawn_writer(writer: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    let failed = |e| Error::Connect(sqlx::Error::Io(e));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(failed)?;
    std::thread::Builder::new()
        .name("pantheon-sqlite-writer".into())
        .spawn(move || runtime.block_on(writer))
        .map_err(failed)?;
    Ok(())
}

/// The writer task: takes every queued append (up to the group limits), commits them in one
/// transaction, answers each caller after the commit. Ends when every log handle is gone.
async fn write_loop(
    pool: SqlitePool,
    mut requests: mpsc::Receiver<Write>,
    wake: Arc<watch::Sender<u64>>,
    ring: Arc<Ring>,
) {
    let mut group = Vec::with_capacity(SQLITE_WRITE_GROUP_COUNT_MAX);
    while let Some(first) = requests.recv().await {
        let mut events = first.event_count();
        group.push(first);
        while group.len() < SQLITE_WRITE_GROUP_COUNT_MAX && events < WRITE_GROUP_EVENT_COUNT_MAX {
            match requests.try_recv() {
                Ok(write) => {
                    events += write.event_count();
                    group.push(write);
                }
                Err(_) => break,
            }
        }
        commit_group(&pool, &mut group, &wake, &ring).await;
    }
}

/// Commits one group and answers its writes.
async fn commit_group(pool: &SqlitePool, group: &mut Vec<Write>, wake: &watch::Sender<u64>, ring: &Ring) {
    let before = ring.last_position();
    match write_group(pool, group).await {
        Ok(answers) => {
            let mut recorded = Vec::new();
            let mut replies = Vec::with_capacity(group.len());
            for (write, answer) in group.drain(..).zip(answers) {
                match (write, answer) {
                    (Write::Append { stream_id, events, reply, .. }, Answer::Appended(answer, positions)) => {
                        if let Ok(outcome) = &answer
                            && !outcome.duplicate
                        {
                            recorded.extend(record(&stream_id, outcome.first_version, events, positions));
                        }
                        replies.push((reply, answer));
                    }
                    (Write::Checkpoint { reply, .. }, _) => {
                        if let Some(reply) = reply {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    (Write::Append { reply, .. }, Answer::Stored) => {
                        let _ = reply.send(Err(LogError::backend("the writer lost track of an append")));
                    }
                }
            }
            if let Some(first) = recorded.first() {
                // Complete when this commit follows the ring's last event: nobody else wrote
                // in between (a gap in positions makes the ring start over, which is safe).
                let complete = before.is_some_and(|last| last.saturating_add(1) == first.position);
                ring.extend(recorded, complete);
                bump(wake);
            }
            for (reply, answer) in replies {
                let _ = reply.send(answer);
            }
        }
        Err(error) => {
            tracing::warn!(%error, writes = group.len(), "a group commit failed; nothing of it was written");
            let reason = error.to_string();
            let failed = || LogError::backend(format!("group commit failed: {reason}"));
            for write in group.drain(..) {
                match write {
                    Write::Append { reply, .. } => {
                        let _ = reply.send(Err(failed()));
                    }
                    Write::Checkpoint { reply, .. } => {
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(failed()));
                        }
                    }
                }
            }
        }
    }
}

/// Runs a group in one transaction: each write's answer, in order, or the failure that
/// aborted the group (nothing written). The appends are judged together — two queries look up
/// every stream's version and every event id of the group, the appends are checked in order in
/// memory, and one statement inserts all that pass — since each statement is a round trip to
/// SQLite's worker thread; a group that repeats an event id takes the slower path, one append
/// after the other.
async fn write_group(pool: &SqlitePool, group: &[Write]) -> Result<Vec<Answer>, LogError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
    let answers = match append_together(&mut tx, group).await? {
        Some(answers) => answers,
        None => {
            // Something the combined path does not judge: start over, one append at a time.
            drop(tx);
            tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(backend)?;
            append_one_by_one(&mut tx, group).await?
        }
    };
    // Several acknowledgements of one subscription in a group: only the highest is stored.
    let mut checkpoints: Vec<(&str, Position)> = Vec::new();
    for write in group {
        if let Write::Checkpoint { name, checkpoint, .. } = write {
            match checkpoints.iter_mut().find(|(known, _)| *known == name.as_str()) {
                Some((_, highest)) => *highest = (*highest).max(*checkpoint),
                None => checkpoints.push((name.as_str(), *checkpoint)),
            }
        }
    }
    store_checkpoints(&mut tx, &checkpoints).await?;
    tx.commit().await.map_err(backend)?;
    Ok(answers)
}

/// The group's appends one after the other, each checked and inserted on its own.
async fn append_one_by_one(conn: &mut SqliteConnection, group: &[Write]) -> Result<Vec<Answer>, LogError> {
    let mut answers = Vec::with_capacity(group.len());
    for write in group {
        answers.push(match write {
            Write::Append { stream_id, expected, events, encoded, .. } => {
                let (answer, positions) = append_in(conn, stream_id, *expected, events, encoded).await?;
                Answer::Appended(answer, positions)
            }
            Write::Checkpoint { .. } => Answer::Stored,
        });
    }
    Ok(answers)
}

/// Where an event id of the group is recorded already: stream, version, position.
type Found = (String, i64, i64);

/// The group's appends judged together and inserted by one statement; `None` (nothing
/// written) when an event id appears in two appends of the group, or when the insert meets a
/// unique violation the checks did not foresee.
async fn append_together(
    conn: &mut SqliteConnection,
    group: &[Write],
) -> Result<Option<Vec<Answer>>, LogError> {
    let appends: Vec<(&StreamId, ExpectedVersion, &[NewEvent], &[Encoded])> = group
        .iter()
        .filter_map(|write| match write {
            Write::Append { stream_id, expected, events, encoded, .. } => {
                Some((stream_id, *expected, events.as_slice(), encoded.as_slice()))
            }
            Write::Checkpoint { .. } => None,
        })
        .collect();
    let event_count: usize = appends.iter().map(|(_, _, events, _)| events.len()).sum();
    let mut ids = HashSet::with_capacity(event_count);
    for (_, _, _, encoded) in &appends {
        for event in *encoded {
            if !ids.insert(event.event_id.as_str()) {
                return Ok(None);
            }
        }
    }
    let mut versions =
        stream_versions(conn, appends.iter().map(|(stream_id, ..)| stream_id.as_str())).await?;
    let found = recorded_ids(conn, &ids).await?;
    // Judge each append in order, on the versions as the earlier appends of the group leave them.
    let mut verdicts: Vec<Result<AppendOutcome, LogError>> = Vec::with_capacity(appends.len());
    let mut rows: Vec<(&StreamId, Version, &Encoded)> = Vec::with_capacity(event_count);
    for (stream_id, expected, events, encoded) in &appends {
        let (Some(first), Some(last)) = (encoded.first(), encoded.last()) else {
            verdicts.push(Err(LogError::EmptyBatch));
            continue;
        };
        if let Some((first_stream, first_version, first_position)) = found.get(&first.event_id) {
            if first_stream.as_str() != stream_id.as_str() {
                // The id is another stream's event: this is no re-append of that batch.
                verdicts.push(Err(LogError::DuplicateEventId { event_id: events[0].id }));
                continue;
            }
            let (last_version, last_position) = match found.get(&last.event_id) {
                Some((last_stream, version, position)) if last_stream == first_stream => {
                    (*version, *position)
                }
                _ => (*first_version, *first_position),
            };
            verdicts.push(Ok(AppendOutcome {
                first_version: from_sql(*first_version),
                last_version: from_sql(last_version),
                last_position: from_sql(last_position),
                duplicate: true,
            }));
            continue;
        }
        if let Some(taken) =
            encoded.iter().zip(events.iter()).skip(1).find(|(e, _)| found.contains_key(&e.event_id))
        {
            verdicts.push(Err(LogError::DuplicateEventId { event_id: taken.1.id }));
            continue;
        }
        let current = versions.get(stream_id.as_str()).copied().unwrap_or(0);
        if !expected.admits(current) {
            verdicts.push(Err(LogError::Conflict {
                stream_id: (*stream_id).clone(),
                expected: *expected,
                actual: current,
            }));
            continue;
        }
        for (version, event) in (current + 1..).zip(encoded.iter()) {
            rows.push((stream_id, version, event));
        }
        let count = encoded.len() as u64;
        versions.insert(stream_id.as_str(), current + count);
        verdicts.push(Ok(AppendOutcome {
            first_version: current + 1,
            last_version: current + count,
            last_position: 0, // known after the insert
            duplicate: false,
        }));
    }
    let positions = match insert_rows(conn, &rows).await {
        Ok(positions) => positions,
        Err(e) if is_unique_violation(&e) => return Ok(None),
        Err(e) => return Err(backend(e)),
    };
    if positions.len() != rows.len() {
        return Err(LogError::backend(format!("{} rows inserted, {} returned", rows.len(), positions.len())));
    }
    // Rows went in in order, so positions (sorted) follow them: hand each append its own.
    let mut positions = positions.into_iter();
    let mut answers = Vec::with_capacity(group.len());
    let mut verdicts = verdicts.into_iter();
    for write in group {
        answers.push(match write {
            Write::Append { .. } => {
                let Some(verdict) = verdicts.next() else {
                    return Err(LogError::backend("the writer lost track of an append"));
                };
                match verdict {
                    Ok(mut outcome) if !outcome.duplicate => {
                        let count =
                            usize::try_from(outcome.last_version - outcome.first_version + 1).unwrap_or(0);
                        let mine: Vec<Position> = positions.by_ref().take(count).collect();
                        outcome.last_position = mine.last().copied().unwrap_or(0);
                        Answer::Appended(Ok(outcome), mine)
                    }
                    other => Answer::Appended(other, Vec::new()),
                }
            }
            Write::Checkpoint { .. } => Answer::Stored,
        });
    }
    Ok(Some(answers))
}

/// Positions a filtered subscription read scans per query, at most: a few dozen pages of the
/// table, and enough to fill a subscription's page (256 events) when one event in sixteen
/// matches.
const SCAN_WINDOW_COUNT: u64 = 4_096;

/// `?, ?, …`: `count` placeholders for an `IN (…)` list.
fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Statements bind at most this many values, under SQLite's limit (`SQLITE_MAX_VARIABLE_NUMBER`).
const STATEMENT_PARAMETER_COUNT_MAX: usize = 30_000;

/// The last version of each of `streams` that has events.
async fn stream_versions<'s>(
    conn: &mut SqliteConnection,
    streams: impl Iterator<Item = &'s str>,
) -> Result<HashMap<&'s str, Version>, LogError> {
    let mut distinct: Vec<&str> = streams.collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut versions = HashMap::with_capacity(distinct.len());
    for chunk in distinct.chunks(STATEMENT_PARAMETER_COUNT_MAX) {
        let placeholders = placeholders(chunk.len());
        // The statement holds only placeholders, never input.
        let sql = AssertSqlSafe(format!(
            "SELECT stream_id, MAX(version) FROM events WHERE stream_id IN ({placeholders}) GROUP BY stream_id"
        ));
        let mut query = sqlx::query_as::<_, (String, i64)>(sql);
        for stream in chunk {
            query = query.bind(*stream);
        }
        for (stream, version) in query.fetch_all(&mut *conn).await.map_err(backend)? {
            if let Some(known) = chunk.iter().find(|s| **s == stream) {
                versions.insert(*known, from_sql(version));
            }
        }
    }
    Ok(versions)
}

/// Which of `ids` the log holds already, and where.
async fn recorded_ids(
    conn: &mut SqliteConnection,
    ids: &HashSet<&str>,
) -> Result<HashMap<String, Found>, LogError> {
    let ids: Vec<&str> = ids.iter().copied().collect();
    let mut found = HashMap::new();
    for chunk in ids.chunks(STATEMENT_PARAMETER_COUNT_MAX) {
        let placeholders = placeholders(chunk.len());
        // The statement holds only placeholders, never input.
        let sql = AssertSqlSafe(format!(
            "SELECT event_id, stream_id, version, position FROM events WHERE event_id IN ({placeholders})"
        ));
        let mut query = sqlx::query_as::<_, (String, String, i64, i64)>(sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for (id, stream, version, position) in query.fetch_all(&mut *conn).await.map_err(backend)? {
            found.insert(id, (stream, version, position));
        }
    }
    Ok(found)
}

/// Inserts `rows` (stream, version, event) in order, as few statements as the parameter limit
/// allows; returns their positions, in order.
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[(&StreamId, Version, &Encoded)],
) -> Result<Vec<Position>, sqlx::Error> {
    let mut positions = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(STATEMENT_PARAMETER_COUNT_MAX / INSERT_PARAMETER_COUNT) {
        // The statement holds only placeholders, never input.
        let sql = AssertSqlSafe(insert_statement(chunk.len()));
        let mut query = sqlx::query_scalar::<_, i64>(sql);
        for (stream_id, version, event) in chunk {
            query = query
                .bind(stream_id.as_str())
                .bind(to_sql(*version))
                .bind(&event.event_id)
                .bind(&event.event_type)
                .bind(event.schema_version)
                .bind(&event.payload)
                .bind(&event.metadata);
        }
        let mut inserted: Vec<Position> =
            query.fetch_all(&mut *conn).await?.into_iter().map(from_sql).collect();
        inserted.sort_unstable();
        positions.extend(inserted);
    }
    Ok(positions)
}

/// One append inside a group's transaction: its answer (outcome, conflict, duplicate id) and
/// the positions it wrote, or a backend failure that aborts the group.
async fn append_in(
    conn: &mut SqliteConnection,
    stream_id: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
    encoded: &[Encoded],
) -> Result<(Result<AppendOutcome, LogError>, Vec<Position>), LogError> {
    let (current, earlier) = check(conn, stream_id, events).await?;
    if let Some(outcome) = earlier {
        return Ok((Ok(outcome), Vec::new())); // nothing written
    }
    if !expected.admits(current) {
        let conflict = LogError::Conflict { stream_id: stream_id.clone(), expected, actual: current };
        return Ok((Err(conflict), Vec::new()));
    }
    let positions = match insert_returning(conn, stream_id, current + 1, encoded).await {
        Ok(positions) => positions,
        // The statement is undone, the transaction goes on.
        Err(e) if is_unique_violation(&e) => {
            return Ok((Err(classify_violation(conn, stream_id, expected, events).await?), Vec::new()));
        }
        Err(e) => return Err(backend(e)),
    };
    let count = encoded.len() as u64;
    let outcome = AppendOutcome {
        first_version: current + 1,
        last_version: current + count,
        last_position: positions.last().copied().unwrap_or(0),
        duplicate: false,
    };
    Ok((Ok(outcome), positions))
}

/// After a unique violation undid an insert: a later event's id is recorded already, or
/// another writer (another process) took the versions.
async fn classify_violation(
    conn: &mut SqliteConnection,
    stream_id: &StreamId,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<LogError, LogError> {
    for event in events.iter().skip(1) {
        if event_exists(conn, event.id).await? {
            return Ok(LogError::DuplicateEventId { event_id: event.id });
        }
    }
    let actual = version_of(conn, stream_id).await?;
    Ok(LogError::Conflict { stream_id: stream_id.clone(), expected, actual })
}

/// Raises the stored checkpoints of `checkpoints` (never lowers one), in one statement.
async fn store_checkpoints(
    conn: &mut SqliteConnection,
    checkpoints: &[(&str, Position)],
) -> Result<(), LogError> {
    for chunk in checkpoints.chunks(STATEMENT_PARAMETER_COUNT_MAX / 2) {
        let rows = vec!["(?, ?)"; chunk.len()].join(", ");
        // Only subscriptions that exist: a checkpoint queued before a deletion (a group
        // member's acknowledgement) does not bring the subscription back.
        // The statement holds only placeholders, never input.
        let sql = AssertSqlSafe(format!(
            "UPDATE subscriptions SET checkpoint = new.column2 FROM (VALUES {rows}) AS new \
             WHERE subscriptions.name = new.column1 AND new.column2 > subscriptions.checkpoint"
        ));
        let mut query = sqlx::query(sql);
        for (name, checkpoint) in chunk {
            query = query.bind(*name).bind(to_sql(*checkpoint));
        }
        query.execute(&mut *conn).await.map_err(backend)?;
    }
    Ok(())
}

/// The last version of a stream, 0 if none.
async fn version_of(conn: &mut SqliteConnection, stream_id: &StreamId) -> Result<Version, LogError> {
    let version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = $1")
            .bind(stream_id.as_str())
            .fetch_one(conn)
            .await
            .map_err(backend)?;
    Ok(from_sql(version))
}

async fn event_exists(conn: &mut SqliteConnection, event_id: EventId) -> Result<bool, LogError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT position FROM events WHERE event_id = $1")
        .bind(event_id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(backend)?;
    Ok(found.is_some())
}

/// In one statement (each is a round trip to SQLite's worker thread): the stream's last
/// version, and the outcome of an earlier append of this batch if its first event is recorded
/// already.
async fn check(
    conn: &mut SqliteConnection,
    stream_id: &StreamId,
    events: &[NewEvent],
) -> Result<(Version, Option<AppendOutcome>), LogError> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok((0, None));
    };
    let row: record::CheckRow = sqlx::query_as(
        "SELECT (SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = $1), \
                f.stream_id, f.version, f.position, l.version, l.position \
         FROM (SELECT 1) AS one \
         LEFT JOIN events f ON f.event_id = $2 \
         LEFT JOIN events l ON l.event_id = $3 AND l.stream_id = f.stream_id",
    )
    .bind(stream_id.as_str())
    .bind(first.id.to_string())
    .bind(last.id.to_string())
    .fetch_one(conn)
    .await
    .map_err(backend)?;
    record::checked(stream_id, first.id, row)
}

/// Columns bound per inserted event.
const INSERT_PARAMETER_COUNT: usize = 7;

/// SQLite's default limit on bound parameters (`SQLITE_MAX_VARIABLE_NUMBER`); a full batch is
/// one statement, so it must fit.
const SQLITE_PARAMETER_COUNT_MAX: usize = 32_766;
const _: () = assert!(events::APPEND_BATCH_COUNT_MAX * INSERT_PARAMETER_COUNT <= SQLITE_PARAMETER_COUNT_MAX);

/// `INSERT … VALUES (…), (…), … RETURNING position` for `count` events: one statement per
/// batch, since every statement is a round trip to SQLite's worker thread. The placeholders
/// are anonymous (`?`), bound in order: looking up numbered ones (`$n`) costs SQLite a list
/// walk per parameter, quadratic in a large batch.
fn insert_statement(count: usize) -> String {
    const ROW: &str = "(?, ?, ?, ?, ?, ?, ?)";
    const _: () = assert!(ROW.len() == INSERT_PARAMETER_COUNT * 3);
    let mut sql = String::from(
        "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, metadata) VALUES ",
    );
    for row in 0..count {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(ROW);
    }
    sql.push_str(" RETURNING position");
    sql
}

/// Inserts `events` at versions `first_version`, `first_version + 1`, … (in that order, so
/// positions follow versions); returns their positions, in order.
async fn insert_returning(
    conn: &mut SqliteConnection,
    stream_id: &StreamId,
    first_version: Version,
    events: &[Encoded],
) -> Result<Vec<Position>, sqlx::Error> {
    // The statement holds only numbered placeholders, never input.
    let sql = AssertSqlSafe(insert_statement(events.len()));
    let mut query = sqlx::query_scalar::<_, i64>(sql);
    for (offset, event) in (0..).zip(events) {
        query = query
            .bind(stream_id.as_str())
            .bind(to_sql(first_version + offset))
            .bind(&event.event_id)
            .bind(&event.event_type)
            .bind(event.schema_version)
            .bind(&event.payload)
            .bind(&event.metadata);
    }
    let mut positions: Vec<Position> = query.fetch_all(conn).await?.into_iter().map(from_sql).collect();
    positions.sort_unstable();
    Ok(positions)
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

    /// A subscription's `next` reads the log again when dropped and called anew.
    fn next_is_cancel_safe(&self) -> bool {
        true
    }

    /// Appends wake the subscribers of the appending process only.
    fn cross_process_poll(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(crate::SQLITE_CROSS_PROCESS_POLL_MS))
    }
}

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
