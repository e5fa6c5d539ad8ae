//! The log on PostgreSQL.
//!
//! # Ordering, durability and wake-ups
//! - Every append (and import) takes one transaction-scoped advisory lock before it looks at
//!   the stream, so appends commit one after another and positions become visible in
//!   increasing order: a subscriber that has read everything up to N never misses a lower
//!   position committed later. Appends of one batch are one `INSERT … SELECT FROM UNNEST`.
//! - Durability is the server's: with the default `synchronous_commit=on`, a commit is
//!   flushed to the WAL before `append` returns.
//! - Each append sends `NOTIFY pantheon_events` in its transaction; one `LISTEN` connection
//!   per log turns those into wake-ups for its subscribers, including appends by other
//!   processes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::log::{validate_batch, validate_subscription_name};
use events::{
    AppendOutcome, EventLog, ExpectedVersion, LogError, NewEvent, Position, RecordedEvent, StreamId,
    SubscribeOptions, Subscription, Version,
};
use sqlx::postgres::{PgConnection, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::import::{self, Existing, GapRow, VERSION_GAPS_SQL, source_position};
use crate::record::{self, Encoded, Row, backend, from_sql, is_unique_violation, read_limit, to_sql};
use crate::subscription::{Source, SqlSubscription};
use crate::{Error, ImportError, ImportOutcome, Result, RetiredSourcePositions, VersionGap};

/// The embedded PostgreSQL migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The `NOTIFY` channel appends announce themselves on (the insert statement names it too).
const NOTIFY_CHANNEL: &str = "pantheon_events";

/// The advisory lock key that serialises appends ("pantheon" in ASCII, truncated to 63 bits).
const APPEND_LOCK_KEY: i64 = 0x7061_6e74_6865_6f6e;

/// Connections per log: appends serialise on the advisory lock, so more mostly serve reads and
/// subscriptions.
pub const POSTGRES_CONNECTION_COUNT_MAX: u32 = 10;

/// How long to wait before listening again after the `LISTEN` connection failed.
const LISTEN_RETRY_MS: u64 = 1_000;

/// The columns every read selects, cast to the types of [`Row`].
macro_rules! select_columns {
    () => {
        "SELECT position, stream_id, version, event_id::text, event_type, schema_version::bigint, \
         payload, metadata::text FROM events "
    };
}

/// The log on a PostgreSQL database. Cheap to clone (clones share the pool and the listener).
#[derive(Clone)]
pub struct PostgresLog {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    /// Bumped on every notification (and after this process's own commits).
    wake: Arc<watch::Sender<u64>>,
    listener: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl fmt::Debug for PostgresLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLog").finish_non_exhaustive()
    }
}

fn bump(wake: &watch::Sender<u64>) {
    wake.send_modify(|generation| *generation = generation.wrapping_add(1));
}

impl PostgresLog {
    /// Connects to the database at `url`, applies the migrations and starts listening for
    /// appends. Must be called inside a tokio runtime (it spawns the listener task).
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POSTGRES_CONNECTION_COUNT_MAX)
            .connect(url)
            .await
            .map_err(Error::Connect)?;
        MIGRATOR.run(&pool).await.map_err(Error::Migrate)?;
        let mut listener = PgListener::connect_with(&pool).await.map_err(Error::Connect)?;
        listener.listen(NOTIFY_CHANNEL).await.map_err(Error::Connect)?;
        let (wake, _) = watch::channel(0);
        let wake = Arc::new(wake);
        let listener = tokio::spawn(listen(listener, wake.clone()));
        Ok(Self { inner: Arc::new(Inner { pool, wake, listener }) })
    }

    /// Copies an event recorded elsewhere, keyed by stream and version, in any order (see
    /// [`crate::SqlLog::import`]).
    pub async fn import(&self, event: &RecordedEvent) -> Result<ImportOutcome, ImportError> {
        let encoded = Encoded::from_recorded(event)
            .map_err(|source| ImportError::Unstorable { event_id: event.id, source })?;
        let failed = |e| import::failed(event, e);
        let mut tx = self.begin_locked().await.map_err(ImportError::Database)?;
        let generation = current_generation(&mut tx).await.map_err(failed)?;
        let existing: Option<Existing> = sqlx::query_as(
            "SELECT event_id::text, position, source_position, source_generation FROM events \
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
                Err(e) if is_unique_violation(&e) => {
                    drop(tx);
                    Err(self.taken(event, generation).await?)
                }
                Err(e) => Err(failed(e)),
            };
        }
        let position = match insert_imported(&mut tx, event, &encoded, generation).await {
            Ok(position) => position,
            Err(e) if is_unique_violation(&e) => {
                // The failed statement aborted the transaction: find which key was taken
                // outside it (no longer under the lock, but a taken key stays taken).
                drop(tx);
                return Err(self.taken(event, generation).await?);
            }
            Err(e) => return Err(failed(e)),
        };
        tx.commit().await.map_err(failed)?;
        bump(&self.inner.wake);
        Ok(ImportOutcome::Inserted { position: from_sql(position) })
    }

    /// After a unique violation on importing `event`: which key another event holds.
    async fn taken(&self, event: &RecordedEvent, generation: i64) -> Result<ImportError, ImportError> {
        let failed = |e| import::failed(event, e);
        let at_source: Option<(String, i64)> = sqlx::query_as(
            "SELECT event_id::text, position FROM events WHERE source_generation = $1 AND source_position = $2",
        )
        .bind(generation)
        .bind(source_position(event))
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(failed)?;
        let by_id: Option<(String, i64)> =
            sqlx::query_as("SELECT stream_id, version FROM events WHERE event_id = $1::uuid")
                .bind(event.id.to_string())
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(failed)?;
        Ok(import::taken(event, at_source, by_id))
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
            "SELECT source_position, stream_id, version, event_id::text, event_type, \
             schema_version::bigint, payload, metadata::text FROM events \
             WHERE source_generation = COALESCE($1::bigint, (SELECT MAX(generation) FROM source_generations)) \
             AND source_position >= $2 AND source_position < $3 ORDER BY source_position LIMIT $4",
        )
        .bind(generation.map(to_sql))
        .bind(to_sql(from))
        .bind(to_sql(before))
        .bind(read_limit(limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    /// The current generation of source positions (see [`crate::SqlLog::source_generation`]).
    pub async fn source_generation(&self) -> Result<u64, LogError> {
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
        Ok(from_sql(current_generation(&mut conn).await.map_err(backend)?))
    }

    /// Starts a new generation of source positions (see
    /// [`crate::SqlLog::retire_source_positions`]). Under the append lock, so no import is
    /// half-way when it commits.
    pub async fn retire_source_positions(&self) -> Result<RetiredSourcePositions, LogError> {
        let mut tx = self.begin_locked().await?;
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
        let rows: Vec<Row> = sqlx::query_as(concat!(
            select_columns!(),
            "WHERE source_position IS NULL AND position >= $1 ORDER BY position LIMIT $2"
        ))
        .bind(to_sql(from))
        .bind(read_limit(limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    /// The gaps in the streams' versions (see [`crate::SqlLog::version_gaps`]).
    pub async fn version_gaps(&self, limit: usize) -> Result<Vec<VersionGap>, LogError> {
        let rows: Vec<GapRow> = sqlx::query_as(VERSION_GAPS_SQL)
            .bind(read_limit(limit))
            .fetch_all(&self.inner.pool)
            .await
            .map_err(backend)?;
        import::decode_gaps(rows)
    }

    /// Begins a transaction holding the append lock.
    async fn begin_locked(&self) -> Result<Transaction<'static, Postgres>, LogError> {
        let mut tx = self.inner.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        Ok(tx)
    }

    /// After a unique violation rolled an append back: a later event's id is recorded
    /// already, or a writer that ignores the lock took the versions.
    async fn classify_violation(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> LogError {
        let mut conn = match self.inner.pool.acquire().await {
            Ok(conn) => conn,
            Err(e) => return backend(e),
        };
        for event in events.iter().skip(1) {
            let found: Result<Option<i64>, _> =
                sqlx::query_scalar("SELECT position FROM events WHERE event_id = $1::uuid")
                    .bind(event.id.to_string())
                    .fetch_optional(&mut *conn)
                    .await;
            match found {
                Ok(Some(_)) => return LogError::DuplicateEventId { event_id: event.id },
                Ok(None) => {}
                Err(e) => return backend(e),
            }
        }
        match version_of(&mut conn, stream_id).await {
            Ok(actual) => LogError::Conflict { stream_id: stream_id.clone(), expected, actual },
            Err(e) => e,
        }
    }
}

/// Turns notifications into wake-ups until the log is dropped (which aborts this task).
async fn listen(mut listener: PgListener, wake: Arc<watch::Sender<u64>>) {
    loop {
        match listener.try_recv().await {
            // `None`: the connection was lost and notifications may have been missed; the
            // next call reconnects. Wake subscribers either way so they look at the log.
            Ok(_) => bump(&wake),
            Err(error) => {
                tracing::warn!(%error, "listening for appends failed; retrying");
                bump(&wake);
                tokio::time::sleep(Duration::from_millis(LISTEN_RETRY_MS)).await;
            }
        }
    }
}

/// The last version of a stream, 0 if none.
async fn version_of(conn: &mut PgConnection, stream_id: &StreamId) -> Result<Version, LogError> {
    let version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id = $1")
            .bind(stream_id.as_str())
            .fetch_one(conn)
            .await
            .map_err(backend)?;
    Ok(from_sql(version))
}

/// In one query: the stream's last version, and the outcome of an earlier append of this
/// batch if its first event is recorded already.
async fn check(
    conn: &mut PgConnection,
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
         LEFT JOIN events f ON f.event_id = $2::uuid \
         LEFT JOIN events l ON l.event_id = $3::uuid AND l.stream_id = f.stream_id",
    )
    .bind(stream_id.as_str())
    .bind(first.id.to_string())
    .bind(last.id.to_string())
    .fetch_one(conn)
    .await
    .map_err(backend)?;
    record::checked(stream_id, first.id, row)
}

/// Inserts `events` at versions `first_version`, `first_version + 1`, …; returns the last
/// position.
async fn insert(
    conn: &mut PgConnection,
    stream_id: &StreamId,
    first_version: Version,
    events: &[Encoded],
) -> Result<i64, sqlx::Error> {
    let versions: Vec<i64> = (0..events.len() as u64).map(|offset| to_sql(first_version + offset)).collect();
    // Inserts, and sends the NOTIFY (delivered at commit) in the same round trip.
    let last_position: Option<i64> = sqlx::query_scalar(
        "WITH inserted AS ( \
             INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, metadata) \
             SELECT $1, v, id::uuid, t, s::integer, p, m::jsonb \
             FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bytea[], $7::text[]) \
                  AS u(v, id, t, s, p, m) \
             ORDER BY v \
             RETURNING position) \
         SELECT MAX(position), pg_notify('pantheon_events', '') FROM inserted",
    )
    .bind(stream_id.as_str())
    .bind(versions)
    .bind(events.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.schema_version).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.metadata.clone()).collect::<Vec<_>>())
    .fetch_one(conn)
    .await?;
    Ok(last_position.unwrap_or(0))
}

/// The current generation of source positions.
async fn current_generation(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let generation: Option<i64> =
        sqlx::query_scalar("SELECT MAX(generation) FROM source_generations").fetch_one(conn).await?;
    Ok(generation.unwrap_or(0))
}

/// Inserts one imported event with its source position in `generation`, and sends the NOTIFY
/// (delivered at commit) in the same round trip; returns its position here.
async fn insert_imported(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    encoded: &Encoded,
    generation: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "WITH inserted AS ( \
             INSERT INTO events \
             (stream_id, version, event_id, event_type, schema_version, payload, metadata, source_position, source_generation) \
             VALUES ($1, $2, $3::uuid, $4, $5::integer, $6, $7::jsonb, $8, $9) \
             RETURNING position) \
         SELECT position, pg_notify('pantheon_events', '') FROM inserted",
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

#[async_trait]
impl EventLog for PostgresLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        validate_batch(&events)?;
        let encoded = events.iter().map(Encoded::new).collect::<Result<Vec<_>, _>>()?;
        let mut tx = self.begin_locked().await?;
        let (current, earlier) = check(&mut tx, stream_id, &events).await?;
        if let Some(outcome) = earlier {
            return Ok(outcome); // dropping the transaction rolls it back: nothing written
        }
        if !expected.admits(current) {
            return Err(LogError::Conflict { stream_id: stream_id.clone(), expected, actual: current });
        }
        let last_position = match insert(&mut tx, stream_id, current + 1, &encoded).await {
            Ok(position) => position,
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                return Err(self.classify_violation(stream_id, expected, &events).await);
            }
            Err(e) => return Err(backend(e)),
        };
        tx.commit().await.map_err(backend)?;
        bump(&self.inner.wake);
        let count = encoded.len() as u64;
        Ok(AppendOutcome {
            first_version: current + 1,
            last_version: current + count,
            last_position: from_sql(last_position),
            duplicate: false,
        })
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let rows: Vec<Row> = sqlx::query_as(concat!(
            select_columns!(),
            "WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3"
        ))
        .bind(stream_id.as_str())
        .bind(to_sql(from))
        .bind(read_limit(limit))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_page(from, limit).await
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<Version, LogError> {
        let mut conn = self.inner.pool.acquire().await.map_err(backend)?;
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

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        validate_subscription_name(name)?;
        let deleted = sqlx::query("DELETE FROM subscriptions WHERE name = $1")
            .bind(name)
            .execute(&self.inner.pool)
            .await
            .map_err(backend)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn subscription_stats(&self) -> Result<Vec<events::SubscriptionStats>, LogError> {
        let head: (i64,) = sqlx::query_as("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(backend)?;
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, checkpoint FROM subscriptions ORDER BY name")
                .fetch_all(&self.inner.pool)
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
}

#[async_trait]
impl Source for Inner {
    async fn read_page(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let rows: Vec<Row> =
            sqlx::query_as(concat!(select_columns!(), "WHERE position >= $1 ORDER BY position LIMIT $2"))
                .bind(to_sql(from))
                .bind(read_limit(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.into_iter().map(record::decode).collect()
    }

    async fn head(&self) -> Result<Position, LogError> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.pool)
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
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        let checkpoint: i64 = sqlx::query_scalar("SELECT checkpoint FROM subscriptions WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(from_sql(checkpoint))
    }

    async fn save_checkpoint(&self, name: &str, checkpoint: Position) -> Result<(), LogError> {
        sqlx::query(
            "INSERT INTO subscriptions (name, checkpoint) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = now() \
             WHERE excluded.checkpoint > subscriptions.checkpoint",
        )
        .bind(name)
        .bind(to_sql(checkpoint))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    fn wake(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}
