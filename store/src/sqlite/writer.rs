//! The group-commit writer: one task per log takes the queued writes (appends, subscription
//! checkpoints), commits them in one transaction and answers each caller after the commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use events::{
    AppendOutcome, ExpectedVersion, LogError, NewEvent, Position, RecordedEvent, StreamId, Version,
};
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, SqlitePool};
use tokio::sync::{mpsc, oneshot, watch};

use super::append::{STATEMENT_PARAMETER_COUNT_MAX, append_in, insert_rows, recorded_ids, stream_versions};
use super::{SQLITE_WRITE_GROUP_COUNT_MAX, bump};
use crate::record::{Encoded, backend, from_sql, is_unique_violation, to_sql};
use crate::subscription::Ring;
use crate::{Error, Result};

/// Events committed by one transaction, at most (a group stops growing past it): bounds the
/// transaction's size when appends carry large batches.
const WRITE_GROUP_EVENT_COUNT_MAX: usize = 4_096;

/// A request to the writer task.
pub(super) enum Write {
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
    /// A checkpoint nobody waits for (`queue_checkpoint`).
    fn is_lazy(&self) -> bool {
        matches!(self, Self::Checkpoint { reply: None, .. })
    }

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

/// Runs the writer on a thread of its own, with a single-threaded runtime. A group commit is
/// about six round trips to the connection's thread; as a task of the shared runtime, the
/// writer waited behind the phases' handlers for a worker at each one, and under load the
/// commits (every append waits for one) took twice as long as their work.
pub(super) fn spawn_writer(writer: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
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
pub(super) async fn write_loop(
    pool: SqlitePool,
    mut requests: mpsc::Receiver<Write>,
    wake: Arc<watch::Sender<u64>>,
    ring: Arc<Ring>,
) {
    let mut group = Vec::with_capacity(SQLITE_WRITE_GROUP_COUNT_MAX);
    let mut open = true;
    while open {
        // A group of queued checkpoints alone waits a little for a write to ride along with:
        // each phase acknowledges the event it handled just before the next phase appends,
        // and a commit of its own put a second fsync on every hop of a task.
        let next = if !group.is_empty() && group.iter().all(Write::is_lazy) {
            match tokio::time::timeout(Duration::from_millis(CHECKPOINT_LINGER_MS), requests.recv()).await {
                Ok(next) => next,
                Err(_elapsed) => {
                    commit_group(&pool, &mut group, &wake, &ring).await;
                    continue;
                }
            }
        } else {
            requests.recv().await
        };
        let Some(first) = next else {
            open = false;
            if !group.is_empty() {
                commit_group(&pool, &mut group, &wake, &ring).await;
            }
            continue;
        };
        let mut events = group.iter().map(Write::event_count).sum::<usize>() + first.event_count();
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
        if group.iter().all(Write::is_lazy) && group.len() < SQLITE_WRITE_GROUP_COUNT_MAX {
            continue; // wait for company (above)
        }
        commit_group(&pool, &mut group, &wake, &ring).await;
    }
}

/// How long queued checkpoints wait for an append to share its commit, at most. A checkpoint
/// lost to a crash in that time only redelivers events, which every consumer takes as
/// duplicates (the log's derived ids), as it does after any crash.
const CHECKPOINT_LINGER_MS: u64 = 20;

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
