//! The archive: the SQL store that keeps every JetStream event, so history outlives
//! JetStream's retention. [`crate::Archiver`] (`archiver.rs`) writes it; [`ArchivedLog`] reads
//! from JetStream and falls back to it for what JetStream no longer holds; [`crate::compare`]
//! (`compare.rs`) checks it against JetStream.
//!
//! # What the archive holds
//! Each event once, keyed by stream and version (a unique key), with the JetStream sequence
//! it was read at. Imports are idempotent and accept a stream's versions in any order, so any
//! number of archivers share the work and a redelivery, a crash or a restart never leaves a
//! hole: a version missing for a while is filled when its event comes (again). A different
//! event at a stream and version already archived is a real conflict, refused for good.
//!
//! # Sequences and their generations
//! A JetStream sequence names one event only as long as the stream lives: a stream deleted
//! and created again numbers its events from 1 again, while the archive holds those
//! sequences for the old events. Imports from the new stream are then refused
//! ([`store::ImportError::SourcePositionTaken`]): the archiver sends them back with a growing
//! delay (it dead-letters nothing), and its status says what happened. To go on, an operator
//! runs [`retire_archived_sequences`] once (after checking with [`crate::compare`] that the
//! divergences are sequences taken by other events): the archive starts a new *generation*
//! of sequences, in which the new stream's events are archived, and the archiver's consumer
//! is reset so the new stream is archived from its first event. Nothing archived is lost:
//! every stream still reads whole (by stream and version), [`ArchivedLog::replay_all`]
//! replays the old generations first, each in its own sequence order, and reads by sequence
//! ([`ArchivedLog::read_all`] below JetStream's first sequence) are answered from the current
//! generation. An event archived from the old stream that the new one holds too (re-published)
//! moves to the new generation when it is archived again.

use std::sync::Arc;

use async_trait::async_trait;

use events::{
    AppendOutcome, EventLog, ExpectedVersion, LogError, NewEvent, Position, RecordedEvent, StreamId,
    SubscribeOptions, Subscription, SubscriptionGroup, Version,
};
use store::{ImportError, ImportOutcome, RetiredSourcePositions, SqlLog, VersionGap};

use crate::archiver::ARCHIVER_SUBSCRIPTION;
use crate::log::NatsLog;

/// The most events [`ArchivedLog::replay_all`] reads per page from either log.
pub const REPLAY_PAGE_COUNT_MAX: usize = 1_000;

/// The archive: a log the archiver writes with an idempotent import keyed by stream and
/// version, keeping each event's JetStream sequence in the current generation of sequences,
/// and [`ArchivedLog`] reads by stream or by sequence. [`SqlLog`] is the one in use; its
/// methods of the same names say more.
#[async_trait]
pub trait Archive: EventLog + std::fmt::Debug {
    /// Writes `event` unless the same event is already at its stream and version; says which.
    /// Accepts a stream's versions in any order. Keeps `event.position` (its JetStream
    /// sequence) for [`Self::read_imported`].
    async fn import(&self, event: &RecordedEvent) -> Result<ImportOutcome, ImportError>;

    /// The archived events whose JetStream sequence in the current generation is in
    /// `from..before`, in that order, at most `limit` (an implementation may answer fewer per
    /// call, never skipping one): each with `position` set to its JetStream sequence.
    async fn read_imported(
        &self,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// Like [`Self::read_imported`], in the sequences of `generation`.
    async fn read_retired(
        &self,
        generation: u64,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// The current generation of sequences: 0 until the first [`Self::retire_sequences`].
    async fn sequence_generation(&self) -> Result<u64, LogError>;

    /// Starts a new generation of sequences (see the module docs); deletes nothing.
    async fn retire_sequences(&self) -> Result<RetiredSourcePositions, LogError>;

    /// The archived events that have no JetStream sequence (archived before sequences were
    /// kept, or written to the archive directly), from position `from` of the archive on, in
    /// the archive's order, at most `limit`, with the archive's positions.
    async fn read_unsequenced(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError>;

    /// The gaps in the archived streams' versions, at most `limit`.
    async fn version_gaps(&self, limit: usize) -> Result<Vec<VersionGap>, LogError>;
}

#[async_trait]
impl Archive for SqlLog {
    async fn import(&self, event: &RecordedEvent) -> Result<ImportOutcome, ImportError> {
        SqlLog::import(self, event).await
    }

    async fn read_imported(
        &self,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        SqlLog::read_imported(self, from, before, limit).await
    }

    async fn read_retired(
        &self,
        generation: u64,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        SqlLog::read_generation(self, Some(generation), from, before, limit).await
    }

    async fn sequence_generation(&self) -> Result<u64, LogError> {
        SqlLog::source_generation(self).await
    }

    async fn retire_sequences(&self) -> Result<RetiredSourcePositions, LogError> {
        SqlLog::retire_source_positions(self).await
    }

    async fn read_unsequenced(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        SqlLog::read_unsourced(self, from, limit).await
    }

    async fn version_gaps(&self, limit: usize) -> Result<Vec<VersionGap>, LogError> {
        SqlLog::version_gaps(self, limit).await
    }
}

/// What [`retire_archived_sequences`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetiredSequences {
    /// The generation of sequences the archive now writes and reads by sequence.
    pub generation: u64,
    /// The archived events whose sequences were retired (those of the generation before).
    pub retired_count: u64,
    /// Whether the archiver's consumer existed and was deleted (the archivers create it again,
    /// from JetStream's first event).
    pub consumer_reset: bool,
}

/// The recovery after the JetStream stream was deleted and created again (see the module
/// docs): starts a new generation of sequences in the archive, then deletes the archiver's
/// consumer, so that running archivers (supervised: [`crate::Archiver::run_supervised`])
/// start again and archive the new stream from its first event. Run it once per re-created
/// stream: each call retires the current generation, so a call on a stream that was not
/// created again leaves the events JetStream has dropped readable by stream and by
/// [`ArchivedLog::replay_all`], but no longer by [`ArchivedLog::read_all`].
pub async fn retire_archived_sequences(
    log: &NatsLog,
    archive: &dyn Archive,
) -> Result<RetiredSequences, LogError> {
    let retired = archive.retire_sequences().await?;
    let consumer_reset = log.delete_subscription(ARCHIVER_SUBSCRIPTION).await?;
    tracing::warn!(
        generation = retired.generation,
        retired = retired.retired_count,
        consumer_reset,
        "retired the archive's JetStream sequences"
    );
    Ok(RetiredSequences {
        generation: retired.generation,
        retired_count: retired.retired_count,
        consumer_reset,
    })
}

/// The JetStream log with the archive behind it: appends and subscriptions go to JetStream;
/// reads take from the archive what JetStream no longer holds; [`Self::replay_all`] replays
/// the whole history, archive first.
///
/// Positions: `read_all` answers in JetStream sequences throughout. Below JetStream's first
/// sequence it reads the archive by the sequence each event had in JetStream (kept at import,
/// [`Archive::read_imported`]) and goes on with JetStream from its first sequence, so a caller
/// paging with `from = last.position + 1` crosses from archive to JetStream without a gap or
/// a repeat. `read_stream` answers in versions; the events it takes from the archive carry
/// the archive's own positions. What the archive lacks stays missing: an event retention
/// dropped before the archiver copied it; and `read_all` does not find events archived
/// before the archive kept JetStream sequences, nor those of retired generations (a JetStream
/// stream since deleted): those are still read by stream and by [`Self::replay_all`].
#[derive(Debug)]
pub struct ArchivedLog {
    live: Arc<NatsLog>,
    archive: Arc<dyn Archive>,
}

impl ArchivedLog {
    /// `live` in front of `archive` (the SQL log the archiver writes).
    pub fn new(live: Arc<NatsLog>, archive: Arc<dyn Archive>) -> Self {
        Self { live, archive }
    }

    /// Appends to `out` the archived events with JetStream sequences in `from..before`, in
    /// order, until `out` holds `limit` events or the range is exhausted.
    async fn read_archived(
        &self,
        from: Position,
        before: Position,
        limit: usize,
        out: &mut Vec<RecordedEvent>,
    ) -> Result<(), LogError> {
        let mut next = from;
        while out.len() < limit && next < before {
            let want = (limit - out.len()).min(REPLAY_PAGE_COUNT_MAX);
            let page = self.archive.read_imported(next, before, want).await?;
            let Some(last) = page.last().map(|e| e.position) else { break };
            // The archive must answer inside the range, in increasing order: an answer that
            // does not would repeat or reorder events (and could keep this loop going).
            let ordered = page.windows(2).all(|w| w[0].position < w[1].position);
            if !ordered || page.first().is_some_and(|e| e.position < next) || last >= before {
                return Err(LogError::Corrupt {
                    position: last,
                    reason: format!(
                        "the archive answered a read of sequences {next}..{before} out of range or order"
                    ),
                });
            }
            next = last.saturating_add(1);
            out.extend(page);
        }
        Ok(())
    }

    /// Hands every event of the whole history to `each`, in order, once; returns how many:
    /// 1. the archived events without a sequence (archived before sequences were kept) that
    ///    came before JetStream's oldest event, in the archive's order;
    /// 2. the events of each retired generation of sequences (JetStream streams since
    ///    deleted), oldest generation first, each in its sequence order;
    /// 3. the events of the current generation that JetStream no longer holds, in sequence
    ///    order;
    /// 4. JetStream from its oldest event.
    ///
    /// A stream's versions come in order within each part, and a stream lives in one
    /// JetStream stream, so in order overall.
    pub async fn replay_all<F>(&self, mut each: F) -> Result<u64, LogError>
    where
        F: FnMut(RecordedEvent) + Send,
    {
        let (first, _) = self.live.bounds().await?;
        let oldest_live =
            if first == 0 { None } else { self.live.read_all(first, 1).await?.into_iter().next() };
        // The archive position of JetStream's oldest event: unsequenced events after it are
        // the ones JetStream still holds. With JetStream empty, they are all history.
        let cut = match &oldest_live {
            Some(event) => {
                let archived = self.archive.read_stream(&event.stream_id, event.version, 1).await?;
                archived.first().filter(|e| e.id == event.id).map_or(Position::MAX, |e| e.position)
            }
            None => Position::MAX,
        };
        let mut count = 0;
        let mut from = 0;
        'unsequenced: loop {
            let page = self.archive.read_unsequenced(from, REPLAY_PAGE_COUNT_MAX).await?;
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            for event in page {
                if event.position >= cut {
                    break 'unsequenced;
                }
                each(event);
                count += 1;
            }
        }
        let current = self.archive.sequence_generation().await?;
        for generation in 0..current {
            let mut from = 0;
            loop {
                let page =
                    self.archive.read_retired(generation, from, Position::MAX, REPLAY_PAGE_COUNT_MAX).await?;
                let Some(last) = page.last() else { break };
                from = last.position + 1;
                for event in page {
                    each(event);
                    count += 1;
                }
            }
        }
        let mut archived = Vec::new();
        let before = if first == 0 { Position::MAX } else { first };
        let mut from = 0;
        loop {
            archived.clear();
            self.read_archived(from, before, REPLAY_PAGE_COUNT_MAX, &mut archived).await?;
            let Some(last) = archived.last() else { break };
            from = last.position + 1;
            for event in archived.drain(..) {
                each(event);
                count += 1;
            }
        }
        if first != 0 {
            let mut from = first;
            loop {
                let page = self.live.read_all(from, REPLAY_PAGE_COUNT_MAX).await?;
                let Some(last) = page.last() else { break };
                from = last.position + 1;
                for event in page {
                    each(event);
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

#[async_trait]
impl EventLog for ArchivedLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        // A stream that retention removed from JetStream entirely lives on in the archive:
        // continue its versions rather than start it again at 1. A stream this log saw in
        // JetStream (the pipeline appending to a task it just read or appended to) needs no
        // look: were it removed since, the append's sequence check fails, the head is read
        // again, and the next attempt takes this path with the server's answer.
        // Without retention JetStream removes nothing, so there is nothing to look for.
        let in_jetstream = self.live.keeps_everything()
            || match self.live.holds_events_of(stream_id) {
                Some(true) => true,
                _ => self.live.stream_version(stream_id).await? > 0,
            };
        let floor = if in_jetstream { 0 } else { self.archive.stream_version(stream_id).await? };
        self.live.append_after(stream_id, expected, events, floor).await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let (live, live_version) = self.live.read_stream_and_version(stream_id, from, limit).await?;
        let first_live = live.first().map(|e| e.version);
        if first_live.is_some_and(|v| v <= from.max(1)) {
            return Ok(live);
        }
        // Nothing after `from` in a stream JetStream holds: nothing new, and nothing the
        // archive could add (it holds only what JetStream had). The readers that ask "anything
        // new?" on every event need no database, so an archive outage does not stop them.
        if live.is_empty() && live_version > 0 && live_version < from.max(1) {
            return Ok(live);
        }
        // JetStream lacks versions from..first_live: read them from the archive.
        // Grown as pages come: most calls find nothing to add (a reader asking whether a stream
        // has anything new), and many run at once.
        let mut out = Vec::new();
        let mut next = from.max(1);
        while out.len() < limit && first_live.is_none_or(|v| next < v) {
            let page = self.archive.read_stream(stream_id, next, limit - out.len()).await?;
            let Some(last) = page.last().map(|e| e.version) else { break };
            out.extend(page.into_iter().filter(|e| first_live.is_none_or(|v| e.version < v)));
            next = last + 1;
        }
        out.extend(live);
        out.truncate(limit);
        Ok(out)
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = from.max(1);
        let (first, _) = self.live.bounds().await?;
        let mut out = Vec::new();
        if first == 0 {
            // JetStream holds nothing (retention dropped it all): the archive is the history.
            self.read_archived(from, Position::MAX, limit, &mut out).await?;
            return Ok(out);
        }
        if from < first {
            self.read_archived(from, first, limit, &mut out).await?;
            if out.len() >= limit {
                return Ok(out);
            }
        }
        let next = from.max(first);
        let live = self.live.read_all(next, limit - out.len()).await?;
        // Retention dropped more since `bounds` (it removes from the front): the archive has
        // what JetStream lost in between.
        if let Some(start) = live.first().map(|e| e.position).filter(|&start| start > next) {
            self.read_archived(next, start, limit, &mut out).await?;
        }
        out.extend(live);
        out.truncate(limit);
        Ok(out)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<Version, LogError> {
        let live = self.live.stream_version(stream_id).await?;
        if live > 0 { Ok(live) } else { self.archive.stream_version(stream_id).await }
    }

    async fn subscribe(
        &self,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, LogError> {
        self.live.subscribe(name, options).await
    }

    async fn subscribe_group(
        &self,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Option<Arc<dyn SubscriptionGroup>>, LogError> {
        self.live.subscribe_group(name, members).await
    }

    async fn subscription_stats(&self) -> Result<Vec<events::SubscriptionStats>, LogError> {
        self.live.subscription_stats().await
    }

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        self.live.delete_subscription(name).await
    }
}
