//! The statements and checks of one append: the streams' versions and the recorded ids a group
//! is judged on, the checks of an append on its own, the inserts, and what a unique violation
//! meant.

use std::collections::{HashMap, HashSet};

use events::{AppendOutcome, EventId, ExpectedVersion, LogError, NewEvent, Position, StreamId, Version};
use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteConnection;

use crate::record::{self, Encoded, backend, from_sql, is_unique_violation, to_sql};

/// `?, ?, …`: `count` placeholders for an `IN (…)` list.
pub(super) fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Statements bind at most this many values, under SQLite's limit (`SQLITE_MAX_VARIABLE_NUMBER`).
pub(super) const STATEMENT_PARAMETER_COUNT_MAX: usize = 30_000;

/// Where an event id of the group is recorded already: stream, version, position.
type Found = (String, i64, i64);

/// The last version of each of `streams` that has events.
pub(super) async fn stream_versions<'s>(
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
pub(super) async fn recorded_ids(
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
pub(super) async fn insert_rows(
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
pub(super) async fn append_in(
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

/// The last version of a stream, 0 if none.
pub(super) async fn version_of(
    conn: &mut SqliteConnection,
    stream_id: &StreamId,
) -> Result<Version, LogError> {
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
