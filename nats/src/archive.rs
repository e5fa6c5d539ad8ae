//! The archive: [`Archiver`] copies every JetStream event into the SQL store exactly once, so
//! history outlives JetStream's retention; [`ArchivedLog`] reads from JetStream and falls back
//! to the archive for what JetStream no longer holds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use events::{
    AppendOutcome, EventLog, ExpectedVersion, Filter, LogError, NewEvent, Position, RecordedEvent, StartFrom,
    StreamId, SubscribeOptions, Subscription, SubscriptionGroup, Version,
};
use store::{ImportOutcome, SqlLog};

use crate::log::NatsLog;

/// The durable subscription name of the archiver. One archiver per deployment is enough; two
/// sharing the name share the work (imports are idempotent either way).
pub const ARCHIVER_SUBSCRIPTION: &str = "archiver";

/// How long the archiver pauses after the archive failed (a database outage) before retrying.
pub const ARCHIVE_RETRY_DELAY: Duration = Duration::from_millis(500);

/// The most events [`ArchivedLog::replay_all`] reads per page from either log.
pub const REPLAY_PAGE_COUNT_MAX: usize = 1_000;

/// The archive: a log the archiver writes with an idempotent import keyed by stream and
/// version, keeping each event's JetStream sequence, and [`ArchivedLog`] reads by stream or by
/// that sequence. [`SqlLog`] is the one in use.
#[async_trait]
pub trait Archive: EventLog + std::fmt::Debug {
    /// Writes `event` unless the same event is already at its stream and version; says which.
    /// Keeps `event.position` (its JetStream sequence) for [`Self::read_imported`].
    async fn import(&self, event: &RecordedEvent) -> Result<bool, LogError>;

    /// The archived events whose JetStream sequence is in `from..before`, in that order, at
    /// most `limit` (an implementation may answer fewer per call, never skipping one): each
    /// with `position` set to its JetStream sequence.
    async fn read_imported(
        &self,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;
}

#[async_trait]
impl Archive for SqlLog {
    async fn import(&self, event: &RecordedEvent) -> Result<bool, LogError> {
        Ok(matches!(SqlLog::import(self, event).await?, ImportOutcome::Inserted { .. }))
    }

    async fn read_imported(
        &self,
        from: Position,
        before: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        SqlLog::read_imported(self, from, before, limit).await
    }
}

/// What an archiver run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiverReport {
    /// Events written to the archive.
    pub imported: u64,
    /// Events that were in the archive already (redeliveries).
    pub already_present: u64,
    /// Events refused (sent back, dead-lettered after the last delivery).
    pub refused: u64,
}

/// Copies every event of the JetStream log into the archive, through the durable
/// subscription [`ARCHIVER_SUBSCRIPTION`]: at least once from JetStream, exactly once in the
/// archive (unique on stream and version).
#[derive(Debug)]
pub struct Archiver {
    log: Arc<NatsLog>,
    archive: Arc<dyn Archive>,
}

impl Archiver {
    /// An archiver from `log` into `archive`.
    pub fn new(log: Arc<NatsLog>, archive: Arc<dyn Archive>) -> Self {
        Self { log, archive }
    }

    /// Runs until `shutdown` completes. An event the archive refuses (a gap in a stream, a
    /// different event at the same version) is nacked, and dead-lettered on its last delivery;
    /// an archive outage pauses and retries.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<ArchiverReport, LogError> {
        let options = SubscribeOptions { filter: Filter::all(), start: StartFrom::Beginning };
        let mut subscription = self.log.subscribe(ARCHIVER_SUBSCRIPTION, options).await?;
        let mut report = ArchiverReport::default();
        tokio::pin!(shutdown);
        loop {
            let delivery = tokio::select! {
                () = &mut shutdown => return Ok(report),
                delivery = subscription.next() => delivery?,
            };
            let position = delivery.event.position;
            match self.archive.import(&delivery.event).await {
                Ok(true) => report.imported += 1,
                Ok(false) => report.already_present += 1,
                Err(error) => {
                    tracing::warn!(position, %error, "the archive refused an event");
                    report.refused += 1;
                    subscription.nack(position).await?;
                    if matches!(error, LogError::Backend(_)) {
                        tokio::time::sleep(ARCHIVE_RETRY_DELAY).await;
                    }
                    continue;
                }
            }
            subscription.ack(position).await?;
        }
    }
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
/// dropped before the archiver copied it, and events archived before the archive kept
/// JetStream sequences (those are still read by stream and by [`Self::replay_all`]).
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

    /// Hands every event of the whole history to `each`, in order, once: the archived events
    /// JetStream no longer holds, then JetStream from its oldest event. Returns how many.
    pub async fn replay_all<F>(&self, mut each: F) -> Result<u64, LogError>
    where
        F: FnMut(RecordedEvent) + Send,
    {
        let (first, _) = self.live.bounds().await?;
        let oldest_live =
            if first == 0 { None } else { self.live.read_all(first, 1).await?.into_iter().next() };
        // The archive position of JetStream's oldest event: archived events before it are the
        // ones JetStream has dropped. With JetStream empty, the whole archive is history.
        let cut = match &oldest_live {
            Some(event) => {
                let archived = self.archive.read_stream(&event.stream_id, event.version, 1).await?;
                archived.first().map_or(Position::MAX, |e| e.position)
            }
            None => Position::MAX,
        };
        let mut count = 0;
        let mut from = 0;
        'archive: loop {
            let page = self.archive.read_all(from, REPLAY_PAGE_COUNT_MAX).await?;
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            for event in page {
                if event.position >= cut {
                    break 'archive;
                }
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
        let live = self.live.read_stream(stream_id, from, limit).await?;
        let first_live = live.first().map(|e| e.version);
        if first_live.is_some_and(|v| v <= from.max(1)) {
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

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        self.live.delete_subscription(name).await
    }
}
