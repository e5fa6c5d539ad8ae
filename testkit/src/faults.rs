//! Fault injection in the log: [`CutLog`] wraps any [`EventLog`] and cuts batches short, as a
//! crash between two publishes of a JetStream batch (not atomic before nats-server 2.12) would:
//! the first events of a batch are written, the rest are not, and the writer gets an error.
//!
//! Every batch of more than one event is cut once (the first time its first event id is
//! seen), after 1, 2, … n−1 of its n events in turn, so a test that runs many batches cuts
//! each multi-event output after each of its events. The retried batch goes through whole.
//! [`CutLog::cuts`] says what was cut, for the test to check that faults really happened.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use events::{
    AppendOutcome, EventId, EventLog, EventType, ExpectedVersion, LogError, NewEvent, Position,
    RecordedEvent, StreamId, SubscribeOptions, Subscription, SubscriptionGroup, Version,
};

/// One batch cut short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The stream appended to.
    pub stream_id: StreamId,
    /// The types of the batch's events, in order.
    pub types: Vec<EventType>,
    /// How many of them were written.
    pub written: usize,
}

/// A log that cuts every multi-event batch once (see the module docs).
#[derive(Debug)]
pub struct CutLog {
    inner: Arc<dyn EventLog>,
    state: Mutex<CutState>,
}

#[derive(Debug, Default)]
struct CutState {
    /// First event ids of the batches cut already.
    seen: HashSet<EventId>,
    /// Batches of each length cut so far, to choose the next cut point.
    count: u64,
    cuts: Vec<Cut>,
}

impl CutLog {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn EventLog>) -> Self {
        Self { inner, state: Mutex::new(CutState::default()) }
    }

    /// The batches cut so far.
    pub fn cuts(&self) -> Vec<Cut> {
        self.state.lock().map(|s| s.cuts.clone()).unwrap_or_default()
    }

    /// Where to cut this batch, if it is to be cut now.
    fn cut_point(&self, events: &[NewEvent]) -> Option<usize> {
        if events.len() < 2 {
            return None;
        }
        let mut state = self.state.lock().ok()?;
        if !state.seen.insert(events[0].id) {
            return None;
        }
        let point = 1 + (state.count % (events.len() as u64 - 1)) as usize;
        state.count += 1;
        Some(point)
    }
}

#[async_trait]
impl EventLog for CutLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        let Some(point) = self.cut_point(&events) else {
            return self.inner.append(stream_id, expected, events).await;
        };
        let types = events.iter().map(|e| e.event_type.clone()).collect();
        events.truncate(point);
        self.inner.append(stream_id, expected, events).await?;
        if let Ok(mut state) = self.state.lock() {
            state.cuts.push(Cut { stream_id: stream_id.clone(), types, written: point });
        }
        Err(LogError::backend(format!("injected fault: the batch was cut after {point} event(s)")))
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_stream(stream_id, from, limit).await
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_all(from, limit).await
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<Version, LogError> {
        self.inner.stream_version(stream_id).await
    }

    async fn subscribe(
        &self,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, LogError> {
        self.inner.subscribe(name, options).await
    }

    async fn subscribe_group(
        &self,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Option<Arc<dyn SubscriptionGroup>>, LogError> {
        self.inner.subscribe_group(name, members).await
    }

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        self.inner.delete_subscription(name).await
    }

    fn next_is_cancel_safe(&self) -> bool {
        self.inner.next_is_cancel_safe()
    }

    fn cross_process_poll(&self) -> Option<std::time::Duration> {
        self.inner.cross_process_poll()
    }
}
