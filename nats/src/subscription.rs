//! [`NatsSubscription`]: a durable, named subscription on a JetStream pull consumer, with
//! client-side filtering of what one filter subject cannot express and a dead letter for
//! events that cannot be read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::{AckKind, PublishMessage};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{self, Context};
use async_trait::async_trait;
use futures::StreamExt;

use events::{
    Delivery, Filter, LogError, Position, RecordedEvent, StartFrom, SubscribeOptions, Subscription,
};

use crate::config::NatsLogConfig;
use crate::layout::{
    HEADER_DEAD_REASON, HEADER_DEAD_SEQUENCE, HEADER_DEAD_SUBJECT, category_subject, check_msgpack,
    dead_letter_subject, decode_event,
};
use crate::log::backend;
use crate::setup::{consumer_config, ensure_consumer};

/// How long one pull request waits for a new event when the subscription is caught up. The
/// request is repeated, so this only bounds how stale a dead connection can go unnoticed.
pub const IDLE_WAIT: Duration = Duration::from_secs(5);

/// The longest a pull may take: the idle wait and a margin. One whose answer was lost (the
/// server died as it was sent) is then given up and asked again.
pub const PULL_WAIT_MAX: Duration = Duration::from_secs(IDLE_WAIT.as_secs() + 5);

/// The longest pause between two pull attempts while the server is unreachable.
pub const RETRY_DELAY_MAX: Duration = Duration::from_secs(1);

/// How a delivered message is to be handled.
pub(crate) enum Verdict {
    /// Hand it to the application.
    Deliver(RecordedEvent),
    /// Valid, but outside the subscription's filter: acknowledge it silently.
    Skip,
    /// Not a valid event: dead-letter it with the reason.
    Poison(String),
}

/// A durable subscription on JetStream. Open it with [`events::EventLog::subscribe`].
pub struct NatsSubscription {
    name: String,
    js: Context,
    consumer: PullConsumer,
    filter: Filter,
    config: Arc<NatsLogConfig>,
    /// Fetched from the server, not yet handed out; all after everything handed out.
    buffer: VecDeque<jetstream::Message>,
    /// Handed out and neither acknowledged nor refused yet.
    handed: BTreeMap<Position, jetstream::Message>,
    retry_delay: Duration,
}

impl std::fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSubscription").field("name", &self.name).field("filter", &self.filter).finish()
    }
}

impl NatsSubscription {
    pub(crate) async fn open(
        js: Context,
        events: Stream,
        config: Arc<NatsLogConfig>,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Self, LogError> {
        let category = match options.filter.categories.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let deliver_policy = match options.start {
            StartFrom::Beginning => DeliverPolicy::All,
            StartFrom::Position(position) => {
                DeliverPolicy::ByStartSequence { start_sequence: position.max(1) }
            }
            StartFrom::End => DeliverPolicy::New,
        };
        let want = consumer_config(&config, name, category_subject(category), deliver_policy);
        let consumer = ensure_consumer(&events, want).await?;
        Ok(Self {
            name: name.to_string(),
            js,
            consumer,
            filter: options.filter,
            config,
            buffer: VecDeque::new(),
            handed: BTreeMap::new(),
            retry_delay: Duration::from_millis(50),
        })
    }

    fn judge(&self, message: &jetstream::Message, position: Position) -> Verdict {
        judge(&self.config, &self.filter, message, position)
    }

    async fn dead_letter(
        &self,
        message: jetstream::Message,
        position: Position,
        reason: &str,
    ) -> Result<(), LogError> {
        dead_letter(&self.js, &self.name, message, position, reason).await
    }

    /// Fills the buffer: what is there now, or else waits up to [`IDLE_WAIT`] for one event.
    async fn fill(&mut self) -> Result<(), LogError> {
        // A pull whose answer was lost (the server died as it was sent) would wait for ever.
        match tokio::time::timeout(PULL_WAIT_MAX, self.fill_once()).await {
            Ok(filled) => filled,
            Err(_) => Err(LogError::backend("a pull got no answer in time")),
        }
    }

    async fn fill_once(&mut self) -> Result<(), LogError> {
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(self.config.fetch_batch_count)
            .messages()
            .await
            .map_err(backend)?;
        while let Some(message) = batch.next().await {
            self.buffer.push_back(message.map_err(backend)?);
        }
        if !self.buffer.is_empty() {
            return Ok(());
        }
        let mut batch =
            self.consumer.batch().max_messages(1).expires(IDLE_WAIT).messages().await.map_err(backend)?;
        while let Some(message) = batch.next().await {
            self.buffer.push_back(message.map_err(backend)?);
        }
        Ok(())
    }
}

/// What to do with a delivered message: decode it and check it against `config` and `filter`.
pub(crate) fn judge(
    config: &NatsLogConfig,
    filter: &Filter,
    message: &jetstream::Message,
    position: Position,
) -> Verdict {
    let event = match decode_event(
        &message.message.subject,
        position,
        message.message.headers.as_ref(),
        &message.message.payload,
    ) {
        Ok(event) => event,
        Err(reason) => return Verdict::Poison(reason),
    };
    if config.require_msgpack_payload
        && let Err(reason) = check_msgpack(&event.payload)
    {
        return Verdict::Poison(reason);
    }
    if let Some(max) = config.schema_version_max
        && event.schema_version > max
    {
        return Verdict::Poison(format!(
            "schema version {} of {} is newer than {max}, the newest this reader knows",
            event.schema_version, event.event_type
        ));
    }
    if filter.matches(&event.stream_id, &event.event_type) { Verdict::Deliver(event) } else { Verdict::Skip }
}

/// Copies `message` to the dead-letter subject with `reason`, then terminates it so the
/// server never delivers it again. The consumer carries on.
pub(crate) async fn dead_letter(
    js: &Context,
    subscription: &str,
    message: jetstream::Message,
    position: Position,
    reason: &str,
) -> Result<(), LogError> {
    tracing::warn!(%subscription, position, %reason, "dead-lettering an event");
    // Keep the event's own headers, but none of JetStream's (`Nats-Expected-…` would make
    // the dead-letter publish fail, `Nats-Msg-Id` would dedupe it against the original).
    let mut headers = async_nats::HeaderMap::new();
    for (name, values) in message.message.headers.iter().flat_map(|h| h.iter()) {
        let name: &str = name.as_ref();
        if !name.starts_with("Nats-") {
            for value in values {
                headers.append(name, value.as_str());
            }
        }
    }
    headers.insert(async_nats::header::NATS_MESSAGE_ID, format!("{subscription}:{position}").as_str());
    headers.insert(HEADER_DEAD_REASON, reason);
    headers.insert(HEADER_DEAD_SUBJECT, message.message.subject.as_str());
    headers.insert(HEADER_DEAD_SEQUENCE, position.to_string().as_str());
    let publish = PublishMessage::build().payload(message.message.payload.clone()).headers(headers);
    js.send_publish(dead_letter_subject(subscription), publish)
        .await
        .map_err(backend)?
        .await
        .map_err(backend)?;
    message.ack_with(AckKind::Term).await.map_err(backend)
}

/// Refuses a handed-out message: delivered again, or dead-lettered when this was its last
/// delivery.
pub(crate) async fn refuse(
    js: &Context,
    subscription: &str,
    config: &NatsLogConfig,
    message: jetstream::Message,
    position: Position,
) -> Result<(), LogError> {
    let (_, attempt) = position_and_attempt(&message)?;
    if i64::from(attempt) >= config.max_deliver {
        let reason = format!("refused on each of {attempt} deliveries");
        return dead_letter(js, subscription, message, position, &reason).await;
    }
    // Back off: a refusal is mostly the log failing for a moment (a restart), and an
    // immediate redelivery would use up the deliveries before it is back.
    message.ack_with(AckKind::Nak(Some(refusal_delay(attempt)))).await.map_err(backend)
}

/// The first wait before an event refused by its handler comes back; doubled on each later
/// refusal of the same event, up to [`REFUSAL_DELAY_MAX`].
pub const REFUSAL_DELAY_BASE: Duration = Duration::from_millis(100);

/// The longest wait before a refused event comes back.
pub const REFUSAL_DELAY_MAX: Duration = Duration::from_secs(5);

/// The wait before the `attempt`th delivery of an event is followed by another, once refused.
fn refusal_delay(attempt: u32) -> Duration {
    REFUSAL_DELAY_BASE.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(REFUSAL_DELAY_MAX)
}

pub(crate) fn position_and_attempt(message: &jetstream::Message) -> Result<(Position, u32), LogError> {
    let info = message.info().map_err(backend)?;
    Ok((info.stream_sequence, u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX)))
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Result<Delivery, LogError> {
        loop {
            let Some(message) = self.buffer.pop_front() else {
                if let Err(error) = self.fill().await {
                    // The client reconnects by itself; keep asking, with a bounded pause.
                    tracing::warn!(subscription = %self.name, %error, "pull failed; retrying");
                    tokio::time::sleep(self.retry_delay).await;
                    self.retry_delay = (self.retry_delay * 2).min(RETRY_DELAY_MAX);
                } else {
                    self.retry_delay = Duration::from_millis(50);
                }
                continue;
            };
            let (position, attempt) = position_and_attempt(&message)?;
            match self.judge(&message, position) {
                Verdict::Deliver(event) => {
                    self.handed.insert(position, message);
                    return Ok(Delivery { event, attempt });
                }
                Verdict::Skip => message.ack().await.map_err(backend)?,
                Verdict::Poison(reason) => self.dead_letter(message, position, &reason).await?,
            }
        }
    }

    async fn ack(&mut self, position: Position) -> Result<(), LogError> {
        match self.handed.remove(&position) {
            // Wait for the server's confirmation: once this returns, a reopened subscription
            // will not see the event again.
            Some(message) => message.double_ack().await.map_err(backend),
            None => Ok(()),
        }
    }

    async fn nack(&mut self, position: Position) -> Result<(), LogError> {
        let Some(message) = self.handed.remove(&position) else { return Ok(()) };
        // Events already buffered are handed out before the refused one comes back: delivery
        // stays at least once, and in position order except for redeliveries.
        refuse(&self.js, &self.name, &self.config, message, position).await
    }
}

/// How long dropping a subscription may wait for the server to take back its held events.
pub const DROP_RELEASE_WAIT: Duration = Duration::from_secs(2);

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        let held: Vec<_> =
            std::mem::take(&mut self.handed).into_values().chain(self.buffer.drain(..)).collect();
        release(held);
    }
}

/// Gives back the messages a dropped subscription holds, so that a reopened one gets them at
/// once, in order, instead of after the ack wait. On a multi-threaded runtime this waits (at
/// most [`DROP_RELEASE_WAIT`]) for the server's confirmation, so a subscription reopened right
/// after sees the events first; elsewhere the release runs in the background.
pub(crate) fn release(held: Vec<jetstream::Message>) {
    if held.is_empty() {
        return;
    }
    let release = async move {
        for message in held {
            let _ = message.double_ack_with(AckKind::Nak(None)).await;
        }
    };
    let release = async move {
        let _ = tokio::time::timeout(DROP_RELEASE_WAIT, release).await;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| runtime.block_on(release));
    } else {
        runtime.spawn(release);
    }
}
