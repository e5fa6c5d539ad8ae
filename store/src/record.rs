//! Rows to events and back, shared by both backends.

use std::str::FromStr;

use events::{
    AppendOutcome, EventId, EventType, LogError, Metadata, NewEvent, Position, RecordedEvent, StreamId,
    Version,
};

/// An event row as both backends select it: position, stream id, version, event id (text),
/// event type, schema version, payload, metadata (JSON text).
pub(crate) type Row = (i64, String, i64, String, String, i64, Vec<u8>, String);

/// Turns a row into an event, refusing anything that is not a valid event.
pub(crate) fn decode(row: Row) -> Result<RecordedEvent, LogError> {
    let (position, stream_id, version, event_id, event_type, schema_version, payload, metadata) = row;
    let position = Position::try_from(position).unwrap_or(0);
    let corrupt = |reason: String| LogError::Corrupt { position, reason };
    Ok(RecordedEvent {
        stream_id: StreamId::new(stream_id).map_err(|e| corrupt(e.to_string()))?,
        version: u64::try_from(version).map_err(|e| corrupt(format!("version: {e}")))?,
        position,
        id: EventId::from_str(&event_id).map_err(|e| corrupt(e.to_string()))?,
        event_type: EventType::new(event_type).map_err(|e| corrupt(e.to_string()))?,
        schema_version: u32::try_from(schema_version).map_err(|e| corrupt(format!("schema version: {e}")))?,
        payload,
        metadata: serde_json::from_str::<Metadata>(&metadata)
            .map_err(|e| corrupt(format!("metadata: {e}")))?,
    })
}

/// The metadata of an event as stored (JSON text).
pub(crate) fn encode_metadata(metadata: &Metadata) -> Result<String, LogError> {
    serde_json::to_string(metadata).map_err(LogError::backend)
}

/// The columns of one event to insert, encoded.
pub(crate) struct Encoded {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    pub(crate) schema_version: i64,
    pub(crate) payload: Vec<u8>,
    pub(crate) metadata: String,
}

impl Encoded {
    pub(crate) fn new(event: &NewEvent) -> Result<Self, LogError> {
        Ok(Self {
            event_id: event.id.to_string(),
            event_type: event.event_type.as_str().to_string(),
            schema_version: i64::from(event.schema_version),
            payload: event.payload.clone(),
            metadata: encode_metadata(&event.metadata)?,
        })
    }

    pub(crate) fn from_recorded(event: &RecordedEvent) -> Result<Self, LogError> {
        Ok(Self {
            event_id: event.id.to_string(),
            event_type: event.event_type.as_str().to_string(),
            schema_version: i64::from(event.schema_version),
            payload: event.payload.clone(),
            metadata: encode_metadata(&event.metadata)?,
        })
    }
}

/// A version or position as SQL's signed 64-bit integer (values past `i64::MAX` clamp: no log
/// gets there).
pub(crate) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A count or version read back from SQL (a negative value cannot occur: the schema checks).
pub(crate) fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A caller's read limit, bounded by [`crate::READ_COUNT_MAX`].
pub(crate) fn read_limit(limit: usize) -> i64 {
    to_sql(limit.min(crate::READ_COUNT_MAX) as u64)
}

/// Maps a database error: a unique violation is reported by the caller as a conflict; anything
/// else is a backend failure.
pub(crate) fn backend(error: sqlx::Error) -> LogError {
    LogError::backend(error)
}

/// Whether a database error is a unique-constraint violation (as the database classifies it).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error.as_database_error().is_some_and(|e| e.is_unique_violation())
}

/// What the check before an append reads in one query: the stream's last version, then the
/// stream, version and position of the batch's first event id and the version and position of
/// its last, where recorded.
pub(crate) type CheckRow = (i64, Option<String>, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

/// The stream's last version, and the outcome of an earlier append of this batch if its first
/// event (`first_id`) is recorded in this stream already; an id recorded in another stream is
/// [`LogError::DuplicateEventId`], since the batch cannot be a re-append there.
pub(crate) fn checked(
    stream_id: &StreamId,
    first_id: EventId,
    row: CheckRow,
) -> Result<(Version, Option<AppendOutcome>), LogError> {
    let (current, first_stream, first_version, first_position, last_version, last_position) = row;
    if first_stream.is_some_and(|other| other != stream_id.as_str()) {
        return Err(LogError::DuplicateEventId { event_id: first_id });
    }
    let earlier = match (first_version, first_position) {
        (Some(first_version), Some(first_position)) => Some(AppendOutcome {
            first_version: from_sql(first_version),
            last_version: from_sql(last_version.unwrap_or(first_version)),
            last_position: from_sql(last_position.unwrap_or(first_position)),
            duplicate: true,
        }),
        _ => None,
    };
    Ok((from_sql(current), earlier))
}
