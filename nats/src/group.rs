//! [`NatsGroup`]: the durable subscriptions of one process served by one JetStream consumer.
//!
//! nats-server 2.9 filters a consumer on one subject, so a subscription to a few event types
//! of a category receives every event of the category and drops most of them: nine phase
//! subscriptions would each receive, decode and acknowledge every task event. A group makes
//! that one consumer (named after the group) for the process: a fetcher task pulls each event
//! once and hands it to the member whose filter it passes, or acknowledges it at once when no
//! member wants it. Members are subscriptions as any other — at least once, one
//! acknowledgement per event, sent by the member straight to the server — and their filters
//! must not overlap, so each event has one owner.
//!
//! The consumer's position is shared: an event is settled when its member acknowledges it.
//! A member's acknowledgement is sent without waiting for the server's confirmation, unlike a
//! [`crate::NatsSubscription`]'s: the pipeline acknowledges every event of every task one by
//! one, and waiting for each reply in turn cost about 12% of its throughput. The server takes
//! a connection's messages in order, so what the member does next (refusing an event, being
//! dropped and giving back what it held) comes after its acknowledgements; only a process that
//! stops right after acknowledging may see those events again, as it sees any unacknowledged
//! one — at least once, which the pipeline's idempotent handlers absorb.
//! Several processes with the same group share the consumer as they would share a
//! subscription (each event goes to one of them). A member dropped (a restarted phase) gives
//! back what it held; the events routed to it meanwhile wait in its queue for it to be opened
//! again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{self, Context};
use async_trait::async_trait;
use events::log::validate_group;
use events::{
    Delivery, Filter, LogError, Position, StartFrom, SubscribeOptions, Subscription, SubscriptionGroup,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::NatsLogConfig;
use crate::layout::category_subject;
use crate::log::backend;
use crate::setup::{consumer_config, ensure_consumer};
use crate::subscription::{
    IDLE_WAIT, PULL_WAIT_MAX, RETRY_DELAY_MAX, Verdict, dead_letter, judge, position_and_attempt, refuse,
    release,
};

/// One event on its way to a member.
struct Routed {
    event: events::RecordedEvent,
    attempt: u32,
    message: jetstream::Message,
}

/// A member's queue: the fetcher's end, and the member's end while the member is closed.
struct Slot {
    name: String,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Routed>>>,
}

/// Events routed to members and not yet taken by them: the fetcher pulls only while there is
/// room, so that the server keeps the rest (an event waiting in a queue would count against
/// its ack wait, and a backlog of thousands of tasks would come back as redeliveries).
#[derive(Default)]
struct Backlog {
    queued: AtomicUsize,
    taken: tokio::sync::Notify,
    /// Every event delivered to this process and neither acknowledged nor refused yet,
    /// queued or handed out: [`keep_held`] tells the server they are being worked on.
    held: Mutex<HashMap<Position, jetstream::Message>>,
}

impl Backlog {
    fn hold(&self, position: Position, message: &jetstream::Message) {
        if let Ok(mut held) = self.held.lock() {
            held.insert(position, message.clone());
        }
    }

    fn let_go(&self, position: Position) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&position);
        }
    }
}

/// How often the events a process holds are reported in progress: a third of the shortest
/// ack wait a delivery can have, so none is redelivered while this process works on it.
fn progress_interval(config: &NatsLogConfig) -> std::time::Duration {
    let shortest =
        config.redelivery_backoff.iter().copied().chain([config.ack_wait]).min().unwrap_or(config.ack_wait);
    (shortest / 3).max(std::time::Duration::from_millis(200))
}

/// Tells the server, every [`progress_interval`], that every event this process holds is in
/// progress (`+WPI`), until `stop`: an attempt longer than the ack wait (an agent working for
/// minutes) or an event waiting in a member's queue is then not delivered again to another
/// process while this one lives — which would run the agent a second time. A process that
/// dies stops reporting, and what it held comes back after the ack wait.
async fn keep_held(backlog: Arc<Backlog>, every: std::time::Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let held: Vec<jetstream::Message> =
            backlog.held.lock().map(|held| held.values().cloned().collect()).unwrap_or_default();
        for message in held {
            // Fire and forget: a lost report only shortens the wait before a redelivery.
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }
}

/// The most events routed to members and not taken yet, across the group.
pub const GROUP_QUEUE_COUNT_MAX: usize = 1_024;

struct Shared {
    name: String,
    js: Context,
    config: Arc<NatsLogConfig>,
    backlog: Arc<Backlog>,
    slots: Vec<Slot>,
    /// Stops the fetcher when the group is dropped.
    _stop: DropGuard,
}

/// Durable subscriptions served by one consumer (see the module docs). Open with
/// [`events::EventLog::subscribe_group`] on a [`crate::NatsLog`].
#[derive(Clone)]
pub struct NatsGroup {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NatsGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let members: Vec<&str> = self.shared.slots.iter().map(|slot| slot.name.as_str()).collect();
        f.debug_struct("NatsGroup").field("name", &self.shared.name).field("members", &members).finish()
    }
}

impl NatsGroup {
    pub(crate) async fn open(
        js: Context,
        events: Stream,
        config: Arc<NatsLogConfig>,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Self, LogError> {
        validate_group(name, members)?;
        let Some((_, first)) = members.first() else {
            return Err(LogError::InvalidFilter { reason: format!("group {name} has no members") });
        };
        for (member, options) in members {
            if options.start != first.start {
                return Err(LogError::InvalidFilter {
                    reason: format!("member {member} starts elsewhere than the group's first member"),
                });
            }
        }
        // One category for all: the consumer filters on it; otherwise on every event.
        let category = match members[0].1.filter.categories.as_slice() {
            [one] if members.iter().all(|(_, o)| o.filter.categories.as_slice() == [one.clone()]) => {
                Some(one.as_str())
            }
            _ => None,
        };
        let deliver_policy = match first.start {
            StartFrom::Beginning => DeliverPolicy::All,
            StartFrom::Position(position) => {
                DeliverPolicy::ByStartSequence { start_sequence: position.max(1) }
            }
            StartFrom::End => DeliverPolicy::New,
        };
        let mut want = consumer_config(&config, name, category_subject(category), deliver_policy);
        // Each member may hold as many unacknowledged events as a subscription of its own.
        let member_count = i64::try_from(members.len()).unwrap_or(i64::MAX);
        want.max_ack_pending = config.max_ack_pending.saturating_mul(member_count);
        let consumer = ensure_consumer(&events, want).await?;
        let mut slots = Vec::with_capacity(members.len());
        let mut routes = Vec::with_capacity(members.len());
        for (member, options) in members {
            let (sender, receiver) = mpsc::unbounded_channel();
            slots.push(Slot { name: member.clone(), receiver: Mutex::new(Some(receiver)) });
            routes.push((options.filter.clone(), sender));
        }
        let stop = CancellationToken::new();
        let backlog = Arc::new(Backlog::default());
        let fetcher = Fetcher {
            js: js.clone(),
            consumer,
            config: Arc::clone(&config),
            name: name.to_string(),
            routes,
            backlog: Arc::clone(&backlog),
        };
        tokio::spawn(fetcher.run(stop.clone()));
        tokio::spawn(keep_held(Arc::clone(&backlog), progress_interval(&config), stop.clone()));
        let shared = Shared { name: name.to_string(), js, config, backlog, slots, _stop: stop.drop_guard() };
        Ok(Self { shared: Arc::new(shared) })
    }
}

#[async_trait]
impl SubscriptionGroup for NatsGroup {
    async fn member(&self, name: &str) -> Result<Box<dyn Subscription>, LogError> {
        let Some(index) = self.shared.slots.iter().position(|slot| slot.name == name) else {
            return Err(LogError::InvalidSubscriptionName { name: name.to_string() });
        };
        let receiver = self.shared.slots[index].receiver.lock().ok().and_then(|mut receiver| receiver.take());
        let Some(receiver) = receiver else {
            return Err(LogError::backend(format!(
                "member {name} of group {} is open already",
                self.shared.name
            )));
        };
        Ok(Box::new(Member {
            shared: Arc::clone(&self.shared),
            slot: index,
            receiver: Some(receiver),
            handed: BTreeMap::new(),
        }))
    }
}

/// The task that pulls the group's events and routes them.
struct Fetcher {
    js: Context,
    consumer: PullConsumer,
    config: Arc<NatsLogConfig>,
    name: String,
    routes: Vec<(Filter, mpsc::UnboundedSender<Routed>)>,
    backlog: Arc<Backlog>,
}

impl Fetcher {
    /// Pulls the group's events while the members' queues have room and routes each to its
    /// member (or acknowledges it when no member wants it), until `stop` (the group dropped).
    async fn run(self, stop: CancellationToken) {
        let everything = Filter::all();
        let mut retry_delay = Duration::from_millis(50);
        loop {
            let queued = self.backlog.queued.load(Ordering::Acquire);
            let room = GROUP_QUEUE_COUNT_MAX.saturating_sub(queued).min(self.config.fetch_batch_count);
            if room == 0 {
                // Wait for a member to take an event (looking again now and then regardless).
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.backlog.taken.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
            let pulled = tokio::select! {
                () = stop.cancelled() => return,
                // A pull whose answer was lost (the server died as it was sent) would wait for
                // ever: a bounded wait, then ask again (what it had received comes back after
                // the ack wait).
                pulled = tokio::time::timeout(PULL_WAIT_MAX, pull(&self.consumer, room)) => {
                    pulled.unwrap_or_else(|_| Err(LogError::backend("a pull got no answer in time")))
                }
            };
            let messages = match pulled {
                Ok(messages) => {
                    retry_delay = Duration::from_millis(50);
                    messages
                }
                Err(error) => {
                    // The client reconnects by itself; keep asking, with a bounded pause.
                    tracing::warn!(group = %self.name, %error, "pull failed; retrying");
                    tokio::time::sleep(retry_delay).await;
                    retry_delay = (retry_delay * 2).min(RETRY_DELAY_MAX);
                    continue;
                }
            };
            for message in messages {
                if let Err(error) = self.route(&everything, message).await {
                    tracing::warn!(group = %self.name, %error, "an event could not be routed; it comes back");
                }
            }
        }
    }

    async fn route(&self, everything: &Filter, message: jetstream::Message) -> Result<(), LogError> {
        let (position, attempt) = position_and_attempt(&message)?;
        match judge(&self.config, everything, &message, position) {
            Verdict::Deliver(event) => {
                match self
                    .routes
                    .iter()
                    .find(|(filter, _)| filter.matches(&event.stream_id, &event.event_type))
                {
                    // The queue outlives every member (the group holds both ends), so a send
                    // fails only when the group is gone; the event then comes back after the
                    // ack wait.
                    Some((_, sender)) => {
                        self.backlog.queued.fetch_add(1, Ordering::AcqRel);
                        self.backlog.hold(position, &message);
                        if sender.send(Routed { event, attempt, message }).is_err() {
                            self.backlog.queued.fetch_sub(1, Ordering::AcqRel);
                            self.backlog.let_go(position);
                        }
                        Ok(())
                    }
                    None => message.ack().await.map_err(backend),
                }
            }
            Verdict::Skip => message.ack().await.map_err(backend),
            Verdict::Poison(reason) => dead_letter(&self.js, &self.name, message, position, &reason).await,
        }
    }
}

/// What the server has now, or else the next event within [`IDLE_WAIT`]. Pulled a few at a
/// time as a subscription does: a request kept open for many events costs more than it saves
/// (measured: about 20% fewer tasks per second at 64 at once).
async fn pull(consumer: &PullConsumer, count: usize) -> Result<Vec<jetstream::Message>, LogError> {
    let mut out = Vec::new();
    let mut batch = consumer.fetch().max_messages(count).messages().await.map_err(backend)?;
    while let Some(message) = batch.next().await {
        out.push(message.map_err(backend)?);
    }
    if !out.is_empty() {
        return Ok(out);
    }
    let mut batch = consumer.batch().max_messages(1).expires(IDLE_WAIT).messages().await.map_err(backend)?;
    while let Some(message) = batch.next().await {
        out.push(message.map_err(backend)?);
    }
    Ok(out)
}

/// One member of a group: a subscription fed by the group's fetcher.
struct Member {
    shared: Arc<Shared>,
    slot: usize,
    receiver: Option<mpsc::UnboundedReceiver<Routed>>,
    /// Handed out and neither acknowledged nor refused yet.
    handed: BTreeMap<Position, jetstream::Message>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("group", &self.shared.name)
            .field("name", &self.shared.slots[self.slot].name)
            .finish()
    }
}

#[async_trait]
impl Subscription for Member {
    /// Cancel-safe: an event leaves the queue only when it is handed out.
    async fn next(&mut self) -> Result<Delivery, LogError> {
        let receiver = self.receiver.as_mut().ok_or(LogError::Closed)?;
        let Routed { event, attempt, message } = receiver.recv().await.ok_or(LogError::Closed)?;
        self.shared.backlog.queued.fetch_sub(1, Ordering::AcqRel);
        self.shared.backlog.taken.notify_one();
        self.handed.insert(event.position, message);
        Ok(Delivery { event, attempt })
    }

    /// Sent without waiting for the server's confirmation (see the module docs).
    async fn ack(&mut self, position: Position) -> Result<(), LogError> {
        self.shared.backlog.let_go(position);
        match self.handed.remove(&position) {
            Some(message) => message.ack().await.map_err(backend),
            None => Ok(()),
        }
    }

    async fn nack(&mut self, position: Position) -> Result<(), LogError> {
        self.shared.backlog.let_go(position);
        let Some(message) = self.handed.remove(&position) else { return Ok(()) };
        refuse(&self.shared.js, &self.shared.name, &self.shared.config, message, position).await
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // The queue goes back to the slot first, so that what the release sends back is
        // routed to the member's next incarnation.
        if let Some(receiver) = self.receiver.take()
            && let Ok(mut slot) = self.shared.slots[self.slot].receiver.lock()
        {
            *slot = Some(receiver);
        }
        let handed = std::mem::take(&mut self.handed);
        for position in handed.keys() {
            self.shared.backlog.let_go(*position);
        }
        release(handed.into_values().collect());
    }
}
