//! The statements of an out-of-order import ([`super::SqliteLog::import`]): the current
//! generation of source positions, the insert of an imported event, and which key another event
//! holds after a unique violation.

use events::RecordedEvent;
use sqlx::sqlite::SqliteConnection;

use crate::ImportError;
use crate::import::{self, source_position};
use crate::record::{Encoded, to_sql};

/// The current generation of source positions.
pub(super) async fn current_generation(conn: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    let generation: Option<i64> =
        sqlx::query_scalar("SELECT MAX(generation) FROM source_generations").fetch_one(conn).await?;
    Ok(generation.unwrap_or(0))
}

/// After a unique violation on importing `event`: which key another event holds.
pub(super) async fn taken(
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
pub(super) async fn insert_imported(
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
