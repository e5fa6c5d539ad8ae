//! Following the log: one subscription per gateway process to the `task` category wakes the
//! requests waiting on a task (sync execute, streams), so waiting costs no polling.
//!
//! A waiter registers for a task id and gets a [`TaskWatch`]: a `watch` channel of the task's
//! latest stream version seen, and whether a final event (completed, failed, rejected,
//! cancelled) was among them. It then reads the task's stream itself (`read_stream`), so the
//! log stays the only source of truth and a missed wake-up costs at most [`WAIT_POLL_MS`]. A
//! synchronous execute waits for the final event only: one read of the stream when the task
//! ends instead of one per phase.
//!
//! The subscription is durable by contract; the gateway does not need that (it starts at the
//! end, and waiters re-read the streams), so it acknowledges in batches, largest position
//! first, which keeps checkpoint writes to about two per batch.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use events::task::FINAL_EVENT_TYPES;
use events::{EventLog, Filter, Position, StartFrom, SubscribeOptions, TaskId, Version};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::WAIT_POLL_MS;

/// Deliveries acknowledged together.
const ACK_BATCH_COUNT_MAX: usize = 512;

/// How long delivered positions wait for their batch before they are acknowledged anyway.
const ACK_BATCH_WAIT_MS: u64 = 500;

/// How long the follower waits before reopening its subscription after a log error.
const RESUBSCRIBE_DELAY_MS: u64 = 1_000;

/// What the follower has seen of one task.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Seen {
    /// The latest stream version seen.
    version: Version,
    /// Whether a final event was seen.
    ended: bool,
}

type Watchers = Mutex<HashMap<TaskId, watch::Sender<Seen>>>;

/// The registry of waiters and the task that feeds it.
#[derive(Debug)]
pub(crate) struct Follower {
    watchers: Arc<Watchers>,
    task: JoinHandle<()>,
    log: Arc<dyn EventLog>,
    name: String,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// Opens the subscription `name` (at the end of the log) and starts feeding waiters.
    pub(crate) fn start(log: Arc<dyn EventLog>, name: String) -> Self {
        let watchers: Arc<Watchers> = Arc::default();
        let weak = Arc::downgrade(&watchers);
        let task = {
            let (log, name) = (Arc::clone(&log), name.clone());
            tokio::spawn(async move { follow(log, name, weak).await })
        };
        Self { watchers, task, log, name }
    }

    /// Stops following and deletes the subscription, which only this process used (it starts
    /// at the end of the log each time): a gateway that stops cleanly leaves nothing behind.
    pub(crate) async fn close(&self) {
        self.task.abort();
        if let Err(error) = self.log.delete_subscription(&self.name).await {
            tracing::warn!(%error, subscription = %self.name, "cannot delete the gateway's subscription");
        }
    }

    /// Registers interest in a task: the watch changes whenever an event of the task is seen.
    pub(crate) fn watch(&self, task_id: TaskId) -> TaskWatch {
        let mut watchers = self.watchers.lock().unwrap_or_else(|poison| poison.into_inner());
        let receiver =
            watchers.entry(task_id).or_insert_with(|| watch::channel(Seen::default()).0).subscribe();
        TaskWatch { task_id, receiver, watchers: Arc::downgrade(&self.watchers) }
    }
}

/// One waiter's interest in one task.
#[derive(Debug)]
pub(crate) struct TaskWatch {
    task_id: TaskId,
    receiver: watch::Receiver<Seen>,
    watchers: Weak<Watchers>,
}

impl TaskWatch {
    /// Waits until an event of the task is seen, or [`WAIT_POLL_MS`] passes, or `deadline`.
    pub(crate) async fn changed(&mut self, deadline: tokio::time::Instant) {
        let poll = tokio::time::Instant::now() + Duration::from_millis(WAIT_POLL_MS);
        let until = poll.min(deadline);
        let _ = tokio::time::timeout_at(until, self.receiver.changed()).await;
    }

    /// Waits until a final event of the task is seen, or [`WAIT_POLL_MS`] passes, or
    /// `deadline`. Returns at once when one was seen already.
    pub(crate) async fn ended(&mut self, deadline: tokio::time::Instant) {
        let poll = tokio::time::Instant::now() + Duration::from_millis(WAIT_POLL_MS);
        let until = poll.min(deadline);
        let _ = tokio::time::timeout_at(until, self.receiver.wait_for(|seen| seen.ended)).await;
    }

    /// Whether a final event of the task was seen.
    pub(crate) fn has_ended(&self) -> bool {
        self.receiver.borrow().ended
    }

    /// Marks everything seen so far as seen: call before reading the stream.
    pub(crate) fn mark_seen(&mut self) {
        self.receiver.borrow_and_update();
    }
}

impl Drop for TaskWatch {
    fn drop(&mut self) {
        let Some(watchers) = self.watchers.upgrade() else { return };
        let mut watchers = watchers.lock().unwrap_or_else(|poison| poison.into_inner());
        // This receiver is still alive here: it is the last one when the count is 1.
        if watchers.get(&self.task_id).is_some_and(|sender| sender.receiver_count() <= 1) {
            watchers.remove(&self.task_id);
        }
    }
}

async fn follow(log: Arc<dyn EventLog>, name: String, watchers: Weak<Watchers>) {
    // The name may be an earlier run's (a process killed before it could delete it): start at
    // the end again instead of working through what that run left unacknowledged.
    if let Err(error) = log.delete_subscription(&name).await {
        tracing::warn!(%error, subscription = %name, "cannot delete an earlier run's subscription");
    }
    loop {
        let options = SubscribeOptions { filter: Filter::category("task"), start: StartFrom::End };
        let mut subscription = match log.subscribe(&name, options).await {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(%error, "the gateway cannot follow the log; retrying");
                tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_DELAY_MS)).await;
                continue;
            }
        };
        let mut unacked: Vec<Position> = Vec::with_capacity(ACK_BATCH_COUNT_MAX);
        let failed = loop {
            let next = if unacked.is_empty() {
                Some(subscription.next().await)
            } else {
                tokio::time::timeout(Duration::from_millis(ACK_BATCH_WAIT_MS), subscription.next()).await.ok()
            };
            match next {
                Some(Ok(delivery)) => {
                    let event = delivery.event;
                    let Some(watchers) = watchers.upgrade() else { return };
                    if let Ok(task_id) = TaskId::from_str(event.stream_id.entity_id()) {
                        let watchers = watchers.lock().unwrap_or_else(|poison| poison.into_inner());
                        if let Some(sender) = watchers.get(&task_id) {
                            let ended = FINAL_EVENT_TYPES.contains(&event.event_type.as_str());
                            sender.send_if_modified(|seen| {
                                let newer = event.version > seen.version || (ended && !seen.ended);
                                seen.version = seen.version.max(event.version);
                                seen.ended |= ended;
                                newer
                            });
                        }
                    }
                    unacked.push(event.position);
                    if unacked.len() < ACK_BATCH_COUNT_MAX {
                        continue;
                    }
                }
                Some(Err(error)) => break error,
                None => {}
            }
            // Largest first: the checkpoint moves only when the smallest is acknowledged.
            let mut ack_failed = None;
            for position in unacked.drain(..).rev() {
                if let Err(error) = subscription.ack(position).await {
                    ack_failed = Some(error);
                    break;
                }
            }
            if let Some(error) = ack_failed {
                break error;
            }
        };
        tracing::warn!(error = %failed, "the gateway's log subscription failed; reopening");
        tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_DELAY_MS)).await;
    }
}
