//! Durable subscriptions over an SQL log, shared by both backends.
//!
//! A subscription reads the log in position order, keeps the matching events it has read but
//! that are not acknowledged yet, and stores a checkpoint: the position at or below which every
//! matching event was acknowledged. Reopened under the same name, it resumes after the
//! checkpoint, so an acknowledged event above an unacknowledged one may be delivered again
//! (at least once). New events wake it through a channel the backend bumps on every append
//! (in-process on SQLite, `LISTEN/NOTIFY` on PostgreSQL); a slow poll covers writers the channel
//! does not see (another process on the same SQLite file).
//!
//! # The ring of recent events
//! A backend whose appends go through one writer in this process (SQLite) keeps the events it
//! committed last in a [`Ring`], so its subscriptions — every phase of the pipeline, each
//! reading every event — take new events from memory instead of each querying and decoding
//! them again. The ring only answers for positions it holds *all* the events of (it starts
//! over when a commit does not follow the previous one: another process wrote in between), so
//! order and completeness are the database's; anything older, or newer, is read from the
//! database. A subscription that has taken everything the ring holds reads the database when
//! it last did more than [`SUBSCRIPTION_RING_TRUST_MS`] ago, so writers in other processes are
//! seen as before.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::log::{validate_filter, validate_group, validate_subscription_name};
use events::{
    Delivery, Filter, LogError, Position, RecordedEvent, StartFrom, SubscribeOptions, Subscription,
    SubscriptionGroup,
};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long a waiting subscription sleeps before looking at the log again when no wake-up
/// arrived: a fallback for writers outside this process, not the normal path.
pub const SUBSCRIPTION_POLL_MS: u64 = 2_000;

/// The most matching events a subscription holds unacknowledged (read ahead or delivered).
/// When reached, the oldest unacknowledged event is delivered again, as if its ack wait had
/// expired, so a consumer that forgets acks cannot grow memory without bound.
pub const SUBSCRIPTION_PENDING_COUNT_MAX: usize = 1_024;

/// Events read from the log per query.
const SUBSCRIPTION_PAGE_COUNT: usize = 256;

/// The most events a `Ring` keeps: a few seconds of the pipeline at full speed (about ten
/// events per task), so a subscription that falls behind by less than that still reads from
/// memory; one that falls further behind reads the database, as without the ring.
pub const SUBSCRIPTION_RING_COUNT_MAX: usize = 8_192;

/// The most payload and metadata bytes a `Ring` keeps, whatever the count: events may be up
/// to 512 KiB each, and the ring must stay a small, fixed part of the process's memory.
pub const SUBSCRIPTION_RING_BYTES_MAX: usize = 16 * 1024 * 1024;

/// How long a subscription that has taken every event of the ring trusts the ring's "nothing
/// new" before it reads the database to make sure: the delay, at worst, before an idle
/// subscription sees an event appended by another process, as the SQLite log's other wake-up
/// paths only cover this process. (While this process appends, another process's append
/// shows at once: the ring starts over at the gap it leaves in positions, and the subscription
/// reads the database for what the ring no longer holds.)
pub const SUBSCRIPTION_RING_TRUST_MS: u64 = 50;

/// Events scanned in the ring per look (matching or not).
const RING_SCAN_COUNT_MAX: usize = 4 * SUBSCRIPTION_PAGE_COUNT;

/// The events this process committed last, in position order, with no event of the log
/// missing between the first and the last (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Ring {
    inner: Mutex<RingInner>,
}

#[derive(Debug, Default)]
struct RingInner {
    events: VecDeque<RecordedEvent>,
    bytes: usize,
}

fn weight(event: &RecordedEvent) -> usize {
    event.payload.len() + event.metadata.emitter.len() + 128
}

impl Ring {
    /// Adds the events of one commit, in position order. `complete` says whether the commit
    /// follows the ring's last event with nothing in between (the writer held the write lock
    /// from the ring's last commit to this one's); otherwise the ring starts over.
    pub(crate) fn extend(&self, events: Vec<RecordedEvent>, complete: bool) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if !complete {
            inner.events.clear();
            inner.bytes = 0;
        }
        for event in events {
            if inner.events.back().is_some_and(|last| last.position >= event.position) {
                // Out of order: cannot happen with one writer; start over to stay exact.
                inner.events.clear();
                inner.bytes = 0;
            }
            inner.bytes += weight(&event);
            inner.events.push_back(event);
        }
        while inner.events.len() > SUBSCRIPTION_RING_COUNT_MAX || inner.bytes > SUBSCRIPTION_RING_BYTES_MAX {
            let Some(oldest) = inner.events.pop_front() else { break };
            inner.bytes = inner.bytes.saturating_sub(weight(&oldest));
        }
    }

    /// The last position in the ring, if any.
    pub(crate) fn last_position(&self) -> Option<Position> {
        self.inner.lock().ok().and_then(|inner| inner.events.back().map(|e| e.position))
    }

    /// The events matching `filter` from position `from` on (at most `limit` of them), and the
    /// last position looked at (`from - 1` when the ring has nothing new) — or `None` when the
    /// ring does not hold everything from `from` on.
    pub(crate) fn read(
        &self,
        from: Position,
        limit: usize,
        filter: &Filter,
    ) -> Option<(Vec<RecordedEvent>, Position)> {
        let inner = self.inner.lock().ok()?;
        let first = inner.events.front()?.position;
        let last = inner.events.back()?.position;
        if from < first || from > last.saturating_add(1) {
            return None;
        }
        let start = inner.events.partition_point(|e| e.position < from);
        let mut matching = Vec::new();
        let mut scanned = from.saturating_sub(1);
        for event in inner.events.iter().skip(start).take(RING_SCAN_COUNT_MAX) {
            if matching.len() >= limit {
                break;
            }
            scanned = event.position;
            if filter.matches(&event.stream_id, &event.event_type) {
                matching.push(event.clone());
            }
        }
        Some((matching, scanned))
    }
}

/// The events of `page` (read from `from` on) that match `filter`, and the last position the
/// page covers (`from - 1` for an empty page).
pub(crate) fn matching_in(
    page: Vec<RecordedEvent>,
    from: Position,
    filter: &Filter,
) -> (Vec<RecordedEvent>, Position) {
    let scanned = page.last().map_or(from.saturating_sub(1), |event| event.position);
    let matching = page.into_iter().filter(|e| filter.matches(&e.stream_id, &e.event_type)).collect();
    (matching, scanned)
}

/// What a subscription needs from its backend.
#[async_trait]
pub(crate) trait Source: Send + Sync + 'static {
    /// Events from `from` (inclusive) on, in position order.
    async fn read_page(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError>;

    /// The events matching `filter` from `from` (inclusive) on, in position order (at most
    /// `limit` of them), and the last position looked at (`from - 1` when the log holds
    /// nothing from `from` on). This default reads every event and filters here; a backend
    /// that can filter in its query overrides it.
    async fn read_matching(
        &self,
        from: Position,
        limit: usize,
        filter: &Filter,
    ) -> Result<(Vec<RecordedEvent>, Position), LogError> {
        Ok(matching_in(self.read_page(from, limit).await?, from, filter))
    }

    /// The highest recorded position, 0 for an empty log.
    async fn head(&self) -> Result<Position, LogError>;

    /// The stored checkpoint of `name`, storing `initial` first if it has none.
    async fn checkpoint_or_init(&self, name: &str, initial: Position) -> Result<Position, LogError>;

    /// Raises the stored checkpoint of `name` to `checkpoint` (never lowers it).
    async fn save_checkpoint(&self, name: &str, checkpoint: Position) -> Result<(), LogError>;

    /// Like [`Source::save_checkpoint`], but may return before the checkpoint is stored (a
    /// member of a [`SqlGroup`] acknowledges so). Stored checkpoints stay in the order they
    /// were given; one lost to a crash only means events delivered again.
    async fn queue_checkpoint(&self, name: &str, checkpoint: Position) -> Result<(), LogError> {
        self.save_checkpoint(name, checkpoint).await
    }

    /// A receiver that changes whenever new events may have been recorded.
    fn wake(&self) -> watch::Receiver<u64>;

    /// The backend's ring of recent events, if it keeps one.
    fn ring(&self) -> Option<&Ring> {
        None
    }
}

/// One matching event held until acknowledged.
struct Pending {
    event: RecordedEvent,
    /// Times delivered so far.
    attempts: u32,
}

/// A durable subscription on an SQL log.
pub(crate) struct SqlSubscription {
    source: Arc<dyn Source>,
    name: String,
    filter: Filter,
    wake: watch::Receiver<u64>,
    /// The next position to read.
    cursor: Position,
    /// The highest position read (matching or not).
    scanned: Position,
    /// The checkpoint stored in the database.
    saved: Position,
    /// Matching events read and not acknowledged, by position.
    pending: BTreeMap<Position, Pending>,
    /// Positions to deliver next, in order (new events, then nacked ones as they come).
    ready: VecDeque<Position>,
    /// When the database was last read; the ring's "nothing new" is trusted only until
    /// [`SUBSCRIPTION_RING_TRUST_MS`] after it.
    read_at: Option<Instant>,
    /// Whether an acknowledgement returns only once its checkpoint is stored (a plain
    /// subscription) or once it is queued (a member of a [`SqlGroup`]).
    confirm_acks: bool,
}

impl SqlSubscription {
    /// Opens (or creates) the subscription `name`.
    pub(crate) async fn open(
        source: Arc<dyn Source>,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Self, LogError> {
        validate_subscription_name(name)?;
        validate_filter(&options.filter)?;
        let initial = match options.start {
            StartFrom::Beginning => 0,
            StartFrom::Position(position) => position.saturating_sub(1),
            StartFrom::End => source.head().await?,
        };
        let checkpoint = source.checkpoint_or_init(name, initial).await?;
        let wake = source.wake();
        Ok(Self {
            source,
            name: name.to_string(),
            filter: options.filter,
            wake,
            cursor: checkpoint.saturating_add(1),
            scanned: checkpoint,
            saved: checkpoint,
            pending: BTreeMap::new(),
            ready: VecDeque::new(),
            read_at: None,
            confirm_acks: true,
        })
    }

    /// Stores `checkpoint` as this subscription's acknowledgements are stored.
    async fn store(&mut self, checkpoint: Position) -> Result<(), LogError> {
        if self.confirm_acks {
            self.source.save_checkpoint(&self.name, checkpoint).await?;
        } else {
            self.source.queue_checkpoint(&self.name, checkpoint).await?;
        }
        self.saved = checkpoint;
        Ok(())
    }

    /// Waits for a wake-up or the poll interval; after the poll interval, the next read goes
    /// to the database (a writer in another process may have appended).
    async fn wait(&mut self) {
        tokio::select! {
            changed = self.wake.changed() => {
                if changed.is_err() {
                    // The backend's waker is gone: fall back to polling.
                    tokio::time::sleep(Duration::from_millis(SUBSCRIPTION_POLL_MS)).await;
                    self.read_at = None;
                }
            }
            () = tokio::time::sleep(Duration::from_millis(SUBSCRIPTION_POLL_MS)) => self.read_at = None,
        }
    }

    /// The position at or below which every matching event is acknowledged.
    fn safe_checkpoint(&self) -> Position {
        self.pending.keys().next().map_or(self.scanned, |first| first.saturating_sub(1))
    }
}

#[async_trait]
impl Subscription for SqlSubscription {
    async fn next(&mut self) -> Result<Delivery, LogError> {
        // Cancel-safe: every await leaves the state consistent (at worst the stored checkpoint
        // lags), so a dropped `next` loses nothing.
        loop {
            while let Some(position) = self.ready.pop_front() {
                if let Some(pending) = self.pending.get_mut(&position) {
                    pending.attempts = pending.attempts.saturating_add(1);
                    return Ok(Delivery { event: pending.event.clone(), attempt: pending.attempts });
                }
            }
            let room = SUBSCRIPTION_PENDING_COUNT_MAX.saturating_sub(self.pending.len());
            if room == 0 {
                if let Some(&oldest) = self.pending.keys().next() {
                    self.ready.push_back(oldest);
                }
                continue;
            }
            // Mark the current wake-up as seen before reading, so an append that lands after
            // the read still wakes the wait below.
            self.wake.borrow_and_update();
            let limit = room.min(SUBSCRIPTION_PAGE_COUNT);
            let trusted = self
                .read_at
                .is_some_and(|at| at.elapsed() < Duration::from_millis(SUBSCRIPTION_RING_TRUST_MS));
            // The ring's events are exact whenever it answers (it holds every event between
            // its first and its last), so new events from it are taken whatever the time. Only
            // an answer of "nothing new" is doubted once the trust has run out: another
            // process may have appended after the ring's last event.
            let recent = match self.source.ring().and_then(|ring| ring.read(self.cursor, limit, &self.filter))
            {
                Some((_, scanned)) if scanned < self.cursor && !trusted => None,
                recent => recent,
            };
            match recent {
                Some((events, scanned)) => {
                    if scanned < self.cursor {
                        self.wait().await;
                        continue;
                    }
                    self.cursor = scanned.saturating_add(1);
                    self.scanned = scanned;
                    for event in events {
                        let position = event.position;
                        self.pending.insert(position, Pending { event, attempts: 0 });
                        self.ready.push_back(position);
                    }
                }
                None => {
                    let (events, scanned) =
                        self.source.read_matching(self.cursor, limit, &self.filter).await?;
                    self.read_at = Some(Instant::now());
                    if scanned < self.cursor {
                        self.wait().await;
                        continue;
                    }
                    self.cursor = scanned.saturating_add(1);
                    self.scanned = scanned;
                    for event in events {
                        let position = event.position;
                        self.pending.insert(position, Pending { event, attempts: 0 });
                        self.ready.push_back(position);
                    }
                }
            }
            // A narrow filter may pass over many events with nothing to acknowledge: store the
            // progress now and then, so a restart does not scan them all again.
            if self.pending.is_empty()
                && self.scanned >= self.saved.saturating_add(SUBSCRIPTION_PAGE_COUNT as u64)
            {
                self.store(self.scanned).await?;
            }
        }
    }

    async fn ack(&mut self, position: Position) -> Result<(), LogError> {
        if self.pending.remove(&position).is_none() {
            return Ok(()); // acknowledged already, or never delivered: nothing to do
        }
        let checkpoint = self.safe_checkpoint();
        if checkpoint > self.saved {
            self.store(checkpoint).await?;
        }
        Ok(())
    }

    async fn nack(&mut self, position: Position) -> Result<(), LogError> {
        if self.pending.contains_key(&position) && !self.ready.contains(&position) {
            self.ready.push_back(position);
        }
        Ok(())
    }
}

/// Subscriptions opened together by one process ([`EventLog::subscribe_group`]): on an SQL log
/// each member is a durable subscription of its own, named as the member, whose
/// acknowledgements are queued for the writer instead of awaited — a phase goes on with its
/// next input while the checkpoint waits for the next group commit. An acknowledgement queued
/// just before the process stops, or before the member is dropped and opened again, may be
/// lost: the event is then delivered again, as the group's contract allows.
///
/// [`EventLog::subscribe_group`]: events::EventLog::subscribe_group
pub(crate) struct SqlGroup {
    source: Arc<dyn Source>,
    name: String,
    members: Vec<GroupMember>,
}

struct GroupMember {
    name: String,
    options: SubscribeOptions,
    /// Set while the member is open.
    open: Arc<AtomicBool>,
}

impl SqlGroup {
    /// Checks the group's names and filters; opens nothing yet.
    pub(crate) fn new(
        source: Arc<dyn Source>,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Self, LogError> {
        validate_group(name, members)?;
        let members = members
            .iter()
            .map(|(member, options)| GroupMember {
                name: member.clone(),
                options: options.clone(),
                open: Arc::new(AtomicBool::new(false)),
            })
            .collect();
        Ok(Self { source, name: name.to_string(), members })
    }
}

impl std::fmt::Debug for SqlGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        f.debug_struct("SqlGroup").field("name", &self.name).field("members", &members).finish()
    }
}

#[async_trait]
impl SubscriptionGroup for SqlGroup {
    async fn member(&self, name: &str) -> Result<Box<dyn Subscription>, LogError> {
        let Some(member) = self.members.iter().find(|m| m.name == name) else {
            return Err(LogError::InvalidSubscriptionName { name: name.to_string() });
        };
        if member.open.swap(true, Ordering::AcqRel) {
            return Err(LogError::backend(format!("member {name} of group {} is open already", self.name)));
        }
        let open = OpenMember(Arc::clone(&member.open));
        let mut subscription =
            SqlSubscription::open(Arc::clone(&self.source), &member.name, member.options.clone()).await?;
        subscription.confirm_acks = false;
        Ok(Box::new(MemberSubscription { subscription, _open: open }))
    }
}

/// Marks a group member closed when dropped.
struct OpenMember(Arc<AtomicBool>);

impl Drop for OpenMember {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// An open member of a [`SqlGroup`].
struct MemberSubscription {
    subscription: SqlSubscription,
    _open: OpenMember,
}

#[async_trait]
impl Subscription for MemberSubscription {
    async fn next(&mut self) -> Result<Delivery, LogError> {
        self.subscription.next().await
    }

    async fn ack(&mut self, position: Position) -> Result<(), LogError> {
        self.subscription.ack(position).await
    }

    async fn nack(&mut self, position: Position) -> Result<(), LogError> {
        self.subscription.nack(position).await
    }
}

#[cfg(test)]
mod tests {
    use events::{EventId, EventType, Metadata, StreamId};

    use super::*;

    fn recorded(position: Position, kind: &str) -> RecordedEvent {
        RecordedEvent {
            stream_id: StreamId::new("task-ring").expect("valid stream id"),
            version: position,
            position,
            id: EventId::new(),
            event_type: EventType::new(kind).expect("valid event type"),
            schema_version: 1,
            payload: vec![0; 16],
            metadata: Metadata::now("test"),
        }
    }

    #[test]
    fn the_ring_answers_only_where_it_holds_everything() {
        let ring = Ring::default();
        let all = Filter::all();
        assert!(ring.read(1, 10, &all).is_none(), "an empty ring knows nothing");
        ring.extend((5..=7).map(|p| recorded(p, "a")).collect(), false);
        assert!(ring.read(4, 10, &all).is_none(), "before its first event: the database");
        assert!(ring.read(9, 10, &all).is_none(), "past its end and a gap: the database");
        let (events, scanned) = ring.read(6, 10, &all).expect("inside");
        assert_eq!((events.iter().map(|e| e.position).collect::<Vec<_>>(), scanned), (vec![6, 7], 7));
        let (events, scanned) = ring.read(8, 10, &all).expect("caught up");
        assert!(events.is_empty());
        assert_eq!(scanned, 7, "nothing scanned past the end");

        // Filtered: the skipped events still count as scanned.
        ring.extend(vec![recorded(8, "b"), recorded(9, "a")], true);
        let only_b = Filter::all().with_types([EventType::new("b").expect("valid")]);
        let (events, scanned) = ring.read(6, 10, &only_b).expect("inside");
        assert_eq!((events.len(), events[0].position, scanned), (1, 8, 9));

        // A commit that does not follow the ring (another writer in between) starts it over.
        ring.extend(vec![recorded(12, "a")], false);
        assert!(ring.read(9, 10, &all).is_none());
        assert_eq!(ring.read(12, 10, &all).expect("inside").0.len(), 1);
    }

    #[test]
    fn the_ring_is_bounded() {
        let ring = Ring::default();
        let count = SUBSCRIPTION_RING_COUNT_MAX as u64 + 10;
        ring.extend((1..=count).map(|p| recorded(p, "a")).collect(), false);
        assert!(ring.read(10, 1, &Filter::all()).is_none(), "the oldest went");
        assert_eq!(ring.read(11, 1, &Filter::all()).expect("kept").0[0].position, 11);
        let mut big = recorded(count + 1, "a");
        big.payload = vec![0; SUBSCRIPTION_RING_BYTES_MAX];
        ring.extend(vec![big], true);
        assert!(ring.read(count, 1, &Filter::all()).is_none(), "bytes bound the ring too");
    }
}
