//! What both backends share for imports: the outcome and the refusals of
//! [`crate::SqlLog::import`], the verdict on an event already at its stream and version, and the
//! classification of database failures into "try again" and "this event cannot be stored".

use events::{EventId, LogError, Position, RecordedEvent, StreamId, Version};

use crate::record::{backend, from_sql, to_sql};

/// What [`crate::SqlLog::import`] did with an event recorded elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportOutcome {
    /// The event was written at this position of the SQL log.
    Inserted {
        /// Its position in the SQL log (not the position it had in the source).
        position: Position,
    },
    /// The same event (same id) was already at that stream and version: nothing was written,
    /// except its source position when the archived copy had none in the current generation.
    AlreadyPresent,
}

/// Why [`crate::SqlLog::import`] refused an event, sorted by who must act:
/// [`Self::is_transient`] errors pass by themselves (try again later),
/// [`Self::SourcePositionTaken`] waits for an operator, and the others are about this event
/// and fail the same way every time.
///
/// An enum of its own rather than variants of [`crate::Error`] (which says why a store cannot
/// be opened): the archiver matches on these to choose between trying again and
/// dead-lettering, and no import fails in the ways opening does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Another event is archived at the event's stream and version: two sources disagree about
    /// the stream's history. Trying again cannot help.
    #[error(
        "importing {importing} at {stream_id} version {version}: event {archived} is archived there already (archive position {archived_position})"
    )]
    VersionTaken {
        /// The event's stream.
        stream_id: StreamId,
        /// The event's version.
        version: Version,
        /// The event refused.
        importing: EventId,
        /// The id of the event archived there, as stored.
        archived: String,
        /// Where the archived event is in the SQL log.
        archived_position: Position,
    },
    /// The event's id is archived already under another stream or version. Trying again cannot
    /// help.
    #[error(
        "importing {event_id} at {stream_id} version {version}: that event id is archived at {archived_stream_id} version {archived_version}"
    )]
    EventIdTaken {
        /// The id.
        event_id: EventId,
        /// The event's stream.
        stream_id: StreamId,
        /// The event's version.
        version: Version,
        /// Where the id is archived: stream, as stored.
        archived_stream_id: String,
        /// Where the id is archived: version.
        archived_version: Version,
    },
    /// Another event was imported from this source position in the current generation: the
    /// source numbered its events again (a JetStream stream deleted and created again). Every
    /// try fails until an operator retires the generation
    /// ([`crate::SqlLog::retire_source_positions`]).
    #[error(
        "importing {importing} from source position {source_position}: event {archived} was imported from that position already (archive position {archived_position}); was the source stream created again? then retire the archive's source positions"
    )]
    SourcePositionTaken {
        /// The position in the source.
        source_position: Position,
        /// The event refused.
        importing: EventId,
        /// The id of the event imported from that position, as stored.
        archived: String,
        /// Where that event is in the SQL log.
        archived_position: Position,
    },
    /// The event cannot be stored: its metadata does not encode, or the database refuses its
    /// row for the data it carries. Trying again cannot help.
    #[error("event {event_id} cannot be stored")]
    Unstorable {
        /// The event.
        event_id: EventId,
        /// Why.
        #[source]
        source: LogError,
    },
    /// The database failed or could not be reached. Transient: try again later.
    #[error("the archive database failed")]
    Database(#[source] LogError),
}

impl ImportError {
    /// Whether the failure is the database's, not the event's: the same import may succeed
    /// later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Database(_))
    }
}

/// A gap in a stream's versions in the SQL log: versions `first..=last` are missing while a
/// later one is there (see [`crate::SqlLog::version_gaps`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionGap {
    /// The stream.
    pub stream_id: StreamId,
    /// The first missing version.
    pub first: Version,
    /// The last missing version (the next one is present).
    pub last: Version,
}

/// What [`crate::SqlLog::retire_source_positions`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetiredSourcePositions {
    /// The generation imports now write and reads by source position read.
    pub generation: u64,
    /// The events whose source positions the step retired (those of the generation before).
    pub retired_count: u64,
}

/// The event archived at an imported event's stream and version: its id, its position here,
/// its source position and source generation.
pub(crate) type Existing = (String, i64, Option<i64>, i64);

/// The verdict on an import that finds `existing` at its stream and version: refused when it is
/// another event; otherwise the position here of the archived copy when it should take the
/// event's source position (it has none in the current `generation`), or `None` when there is
/// nothing to write.
pub(crate) fn judge_existing(
    event: &RecordedEvent,
    event_id: &str,
    existing: Existing,
    generation: i64,
) -> Result<Option<i64>, ImportError> {
    let (archived, position, source, source_generation) = existing;
    if archived != event_id {
        return Err(ImportError::VersionTaken {
            stream_id: event.stream_id.clone(),
            version: event.version,
            importing: event.id,
            archived,
            archived_position: from_sql(position),
        });
    }
    let unsourced = source.is_none() || source_generation < generation;
    Ok((unsourced && source_position(event).is_some()).then_some(position))
}

/// The refusal after a unique violation on inserting or re-sourcing `event`: what the lookups
/// found at its source position in the current generation and under its id.
pub(crate) fn taken(
    event: &RecordedEvent,
    at_source: Option<(String, i64)>,
    by_id: Option<(String, i64)>,
) -> ImportError {
    match (at_source, by_id) {
        (Some((archived, position)), _) => ImportError::SourcePositionTaken {
            source_position: event.position,
            importing: event.id,
            archived,
            archived_position: from_sql(position),
        },
        (None, Some((archived_stream_id, archived_version))) => ImportError::EventIdTaken {
            event_id: event.id,
            stream_id: event.stream_id.clone(),
            version: event.version,
            archived_stream_id,
            archived_version: from_sql(archived_version),
        },
        // The other unique key, stream and version, was free when looked at under the write
        // lock: nothing should have taken it. Treat it as the database's failure.
        (None, None) => ImportError::Database(LogError::backend(format!(
            "importing {} at {} version {}: a unique key was taken, but neither its source position nor its id",
            event.id, event.stream_id, event.version
        ))),
    }
}

/// An import's database failure: [`ImportError::Unstorable`] when the database refused the
/// statement for the data it carries, [`ImportError::Database`] otherwise.
pub(crate) fn failed(event: &RecordedEvent, error: sqlx::Error) -> ImportError {
    if is_data_refusal(&error) {
        ImportError::Unstorable { event_id: event.id, source: backend(error) }
    } else {
        ImportError::Database(backend(error))
    }
}

/// Whether the database refused a statement for the data it carries, so that running it
/// again cannot succeed: a constraint other than a unique key (those are classified by the
/// callers), PostgreSQL's data exceptions (SQLSTATE class 22, such as text it cannot store),
/// SQLite's `TOOBIG` and `MISMATCH`, or a value the driver cannot encode. Anything else (I/O,
/// a lost connection, a busy or locked database, a server shutting down) may pass.
fn is_data_refusal(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    /// SQLite's primary result codes for a string or blob over the size limit and a datatype
    /// mismatch; extended codes carry the primary one in their low byte.
    const SQLITE_TOOBIG: u32 = 18;
    const SQLITE_MISMATCH: u32 = 20;
    if matches!(error, sqlx::Error::Encode(_)) {
        return true;
    }
    let Some(database) = error.as_database_error() else { return false };
    match database.kind() {
        ErrorKind::ForeignKeyViolation | ErrorKind::NotNullViolation | ErrorKind::CheckViolation => true,
        ErrorKind::UniqueViolation | ErrorKind::ExclusionViolation => false,
        _ => database.code().is_some_and(|code| {
            code.starts_with("22")
                || code
                    .parse::<u32>()
                    .is_ok_and(|sqlite| matches!(sqlite & 0xff, SQLITE_TOOBIG | SQLITE_MISMATCH))
        }),
    }
}

/// The source position an import stores: the event's position in the log it was read from,
/// none for an event that has no position there (0).
pub(crate) fn source_position(event: &RecordedEvent) -> Option<i64> {
    (event.position > 0).then(|| to_sql(event.position))
}

/// A version gap row as both backends select it: stream, first and last missing version.
pub(crate) type GapRow = (String, i64, i64);

/// Turns gap rows into gaps, refusing a stream id that is not valid.
pub(crate) fn decode_gaps(rows: Vec<GapRow>) -> Result<Vec<VersionGap>, LogError> {
    rows.into_iter()
        .map(|(stream_id, first, last)| {
            let stream_id = StreamId::new(stream_id)
                .map_err(|e| LogError::Corrupt { position: 0, reason: format!("a stream id: {e}") })?;
            Ok(VersionGap { stream_id, first: from_sql(first), last: from_sql(last) })
        })
        .collect()
}

/// The statement selecting version gaps, the same on both backends (window functions: SQLite
/// 3.25 and later). It reads the whole `(stream_id, version)` index: for checks, not for the hot
/// path.
pub(crate) const VERSION_GAPS_SQL: &str = "SELECT stream_id, previous + 1, version - 1 FROM ( \
     SELECT stream_id, version, LAG(version, 1, 0) OVER (PARTITION BY stream_id ORDER BY version) AS previous \
     FROM events) AS versions \
     WHERE version > previous + 1 ORDER BY stream_id, version LIMIT $1";
