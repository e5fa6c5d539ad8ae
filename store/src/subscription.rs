//! Durable subscriptions over an SQL log, shared by both backends.
//!
//! A subscription reads the log in position order, keeps the matching events it has read but
//! that are not acknowledged yet, and stores a checkpoint: the position at or below which every
//! matching event was acknowledged. Reopened under the same name, it resumes after the
//! checkpoint, so an acknowledged event above an unacknowledged one may be delivered again
//! (at least once). New events wake it through a channel the backend bumps on every append
//! (in-process on SQLite, `LISTEN/NOTIFY` on PostgreSQL); a slow poll covers writers the channel
//! does not see (another process on the same SQLite file).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::log::validate_subscription_name;
use events::{
    Delivery, Filter, LogError, Position, RecordedEvent, StartFrom, SubscribeOptions, Subscription,
};
use tokio::sync::watch;

/// How long a waiting subscription sleeps before looking at the log again when no wake-up
/// arrived: a fallback for writers outside this process, not the normal path.
pub const SUBSCRIPTION_POLL_MS: u64 = 2_000;

/// The most matching events a subscription holds unacknowledged (read ahead or delivered).
/// When reached, the oldest unacknowledged event is delivered again, as if its ack wait had
/// expired, so a consumer that forgets acks cannot grow memory without bound.
pub const SUBSCRIPTION_PENDING_COUNT_MAX: usize = 1_024;

/// Events read from the log per query.
const SUBSCRIPTION_PAGE_COUNT: usize = 256;

/// What a subscription needs from its backend.
#[async_trait]
pub(crate) trait Source: Send + Sync + 'static {
    /// Events from `from` (inclusive) on, in position order.
    async fn read_page(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError>;

    /// The highest recorded position, 0 for an empty log.
    async fn head(&self) -> Result<Position, LogError>;

    /// The stored checkpoint of `name`, storing `initial` first if it has none.
    async fn checkpoint_or_init(&self, name: &str, initial: Position) -> Result<Position, LogError>;

    /// Raises the stored checkpoint of `name` to `checkpoint` (never lowers it).
    async fn save_checkpoint(&self, name: &str, checkpoint: Position) -> Result<(), LogError>;

    /// A receiver that changes whenever new events may have been recorded.
    fn wake(&self) -> watch::Receiver<u64>;
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
}

impl SqlSubscription {
    /// Opens (or creates) the subscription `name`.
    pub(crate) async fn open(
        source: Arc<dyn Source>,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Self, LogError> {
        validate_subscription_name(name)?;
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
        })
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
            let page = self.source.read_page(self.cursor, room.min(SUBSCRIPTION_PAGE_COUNT)).await?;
            if page.is_empty() {
                tokio::select! {
                    changed = self.wake.changed() => {
                        if changed.is_err() {
                            // The backend's waker is gone: fall back to polling.
                            tokio::time::sleep(Duration::from_millis(SUBSCRIPTION_POLL_MS)).await;
                        }
                    }
                    () = tokio::time::sleep(Duration::from_millis(SUBSCRIPTION_POLL_MS)) => {}
                }
                continue;
            }
            for event in page {
                let position = event.position;
                self.cursor = position.saturating_add(1);
                self.scanned = position;
                if self.filter.matches(&event.stream_id, &event.event_type) {
                    self.pending.insert(position, Pending { event, attempts: 0 });
                    self.ready.push_back(position);
                }
            }
            // A narrow filter may pass over many events with nothing to acknowledge: store the
            // progress now and then, so a restart does not scan them all again.
            if self.pending.is_empty()
                && self.scanned >= self.saved.saturating_add(SUBSCRIPTION_PAGE_COUNT as u64)
            {
                self.source.save_checkpoint(&self.name, self.scanned).await?;
                self.saved = self.scanned;
            }
        }
    }

    async fn ack(&mut self, position: Position) -> Result<(), LogError> {
        if self.pending.remove(&position).is_none() {
            return Ok(()); // acknowledged already, or never delivered: nothing to do
        }
        let checkpoint = self.safe_checkpoint();
        if checkpoint > self.saved {
            self.source.save_checkpoint(&self.name, checkpoint).await?;
            self.saved = checkpoint;
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
