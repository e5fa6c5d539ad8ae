//! [`NatsLog`]: the [`EventLog`] contract on JetStream — append with optimistic concurrency and
//! dedupe, read a stream, read everything from a position.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull, push};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{ConsumerErrorKind, DirectGetErrorKind, LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self, Context};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use events::log::{validate_batch, validate_filter, validate_subscription_name};
use events::{
    AppendOutcome, EventId, EventLog, ExpectedVersion, LogError, NewEvent, Position, RecordedEvent, StreamId,
    SubscribeOptions, Subscription, SubscriptionGroup, Version,
};

use crate::config::{NatsLogConfig, REPLAY_BATCH_COUNT_MAX};
use crate::error::{Error, ErrorKind, Result};
use crate::group::NatsGroup;
use crate::layout::{
    HEADER_PREVIOUS_SEQUENCE, decode_event, event_headers, previous_sequence_of, stream_subject, version_of,
};
use crate::setup::{dead_letter_stream_config, ensure_stream, event_stream_config};
use crate::subscription::NatsSubscription;

/// The most stream heads (last version and sequence of a stream) kept in memory to spare a
/// look-up before each append. The cache is only a hint: the server checks every append.
pub const STREAM_HEAD_CACHE_COUNT_MAX: usize = 16_384;

/// Reads of at most this many events are done by direct gets, one request per event (back
/// along the previous-sequence links, or forward through a stream of at most this many events
/// without them); longer ones through an ordered consumer (one request for many events, but a
/// consumer to create on the server).
pub const DIRECT_READ_VERSION_COUNT_MAX: u64 = 16;

/// How many times an append tries again after losing a race ([`ExpectedVersion::Any`]) or
/// finding a message that is not an event at the head of its stream.
pub const APPEND_ANY_RETRY_COUNT_MAX: usize = 16;

/// The last event of one stream: its version and its JetStream sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    version: Version,
    sequence: u64,
}

impl Head {
    const EMPTY: Self = Self { version: 0, sequence: 0 };
}

/// The key of a stream's head in the cache.
fn head_key(stream_id: &StreamId) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    stream_id.as_str().hash(&mut hasher);
    hasher.finish()
}

/// The event log on NATS JetStream. Cheap to share behind an `Arc`; every method is safe to
/// call from many tasks.
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use events::EventLog;
/// let log: Arc<dyn EventLog> = Arc::new(nats::NatsLog::connect(nats::NatsLogConfig::new("nats://127.0.0.1:4222")).await?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsLog {
    client: async_nats::Client,
    js: Context,
    events: Stream,
    config: Arc<NatsLogConfig>,
    /// By a 64-bit hash of the stream id, not the id itself (about a third of the memory per
    /// entry): a collision only gives a wrong hint, which the server's check refuses.
    heads: Mutex<HashMap<u64, Head>>,
    /// Whether batches are published atomically ([`NatsLog::atomic_batches`]).
    atomic: bool,
}

/// Why the server refused an atomic batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AtomicRefusal {
    /// The head moved since it was read.
    WrongLastSequence,
    /// One of its event ids was written before: the batch, by an earlier try.
    Duplicate,
}

/// `Nats-Batch-Id`, `Nats-Batch-Sequence`, `Nats-Batch-Commit` (nats-server 2.12+).
const BATCH_ID: &str = "Nats-Batch-Id";
const BATCH_SEQUENCE: &str = "Nats-Batch-Sequence";
const BATCH_COMMIT: &str = "Nats-Batch-Commit";
const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";

/// JetStream's error codes for a wrong expected last sequence and, in an atomic batch, a
/// message id the stream holds already.
const ERR_WRONG_LAST_SEQUENCE: u64 = 10071;
const ERR_BATCH_DUPLICATE_ID: u64 = 10201;

/// A message read by a direct or a leader get, `None` for the error kind that means "no such
/// message".
fn found<Kind>(
    read: std::result::Result<StreamMessage, async_nats::error::Error<Kind>>,
    none: Kind,
) -> Result<Option<StreamMessage>, LogError>
where
    Kind: Clone + std::fmt::Debug + std::fmt::Display + PartialEq + Send + Sync + 'static,
{
    match read {
        Ok(message) => Ok(Some(message)),
        Err(e) if e.kind() == none => Ok(None),
        Err(e) => Err(backend(e)),
    }
}

/// Whether a server of this version (`2.12.0`, `v2.15.1-beta`) has atomic batch publishing.
fn server_has_atomic_batches(version: &str) -> bool {
    let mut parts = version.trim_start_matches('v').split(['.', '-']).map(|p| p.parse::<u32>().ok());
    matches!((parts.next().flatten(), parts.next().flatten()), (Some(major), Some(minor)) if (major, minor) >= (2, 12))
}

impl NatsLog {
    /// Connects to the server in `config.url` and sets up the streams (idempotently).
    pub async fn connect(config: NatsLogConfig) -> Result<Self> {
        config.validate()?;
        let client = async_nats::ConnectOptions::new()
            .name("pantheon")
            .connection_timeout(config.request_timeout)
            .retry_on_initial_connect()
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100u64.saturating_mul(attempts as u64).min(1_000))
            })
            // A comma-separated list names a cluster's nodes: the client tries each.
            .connect(config.url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect::<Vec<_>>())
            .await
            .map_err(|e| Error::with_source(ErrorKind::Connect, config.url.clone(), e))?;
        Self::with_client(client, config).await
    }

    /// Uses an existing client and sets up the streams (idempotently).
    pub async fn with_client(client: async_nats::Client, config: NatsLogConfig) -> Result<Self> {
        config.validate()?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);
        // The dead-letter stream first: its request waits for the connection, whose greeting
        // says which server this is (a client that connects in the background knows nothing
        // of it before).
        ensure_stream(&js, dead_letter_stream_config(&config), &config).await?;
        let supported = server_has_atomic_batches(&client.server_info().version);
        let events = ensure_stream(&js, event_stream_config(&config, supported), &config).await?;
        // An existing stream keeps its setting: atomic batches only where it allows them.
        let atomic = supported && events.cached_info().config.allow_atomic_publish;
        Ok(Self { client, js, events, config: Arc::new(config), heads: Mutex::new(HashMap::new()), atomic })
    }

    /// Whether a batch of several events is published atomically (nats-server 2.12+ with a
    /// stream that allows it): then no prefix of it is ever stored alone.
    pub fn atomic_batches(&self) -> bool {
        self.atomic
    }

    /// Publishes `events` as one atomic batch after `head`: all are stored, or none. Ok(None)
    /// when the server refused the batch as written before (a duplicate message id) or for a
    /// stale head (a wrong last sequence): the caller decides with a fresh head.
    async fn publish_atomic(
        &self,
        subject: &str,
        events: &[NewEvent],
        head: Head,
    ) -> Result<std::result::Result<AppendOutcome, AtomicRefusal>, LogError> {
        let batch_id = uuid::Uuid::new_v4().simple().to_string();
        let count = events.len();
        for (index, event) in events.iter().enumerate() {
            let mut headers = event_headers(event, head.version + 1 + index as u64);
            headers.insert(BATCH_ID, batch_id.as_str());
            headers.insert(BATCH_SEQUENCE, (index + 1).to_string().as_str());
            if index == 0 {
                // Only the first event can name its predecessor: the batch's sequences are
                // known at its commit. Readers go forward from the second (cheap on servers
                // with atomic batches, which index subjects).
                if head.sequence > 0 {
                    headers.insert(HEADER_PREVIOUS_SEQUENCE, head.sequence.to_string().as_str());
                }
                headers.insert(EXPECTED_LAST_SUBJECT_SEQUENCE, head.sequence.to_string().as_str());
            }
            let payload = Bytes::copy_from_slice(&event.payload);
            if index + 1 < count {
                self.client
                    .publish_with_headers(subject.to_string(), headers, payload)
                    .await
                    .map_err(backend)?;
                continue;
            }
            headers.insert(BATCH_COMMIT, "1");
            let request = self.client.request_with_headers(subject.to_string(), headers, payload);
            let reply = tokio::time::timeout(self.config.request_timeout, request)
                .await
                .map_err(|_| backend("the atomic batch's commit got no answer in time"))?
                .map_err(backend)?;
            let ack: serde_json::Value = serde_json::from_slice(&reply.payload).map_err(backend)?;
            if let Some(sequence) = ack.get("seq").and_then(serde_json::Value::as_u64)
                && ack.get("error").is_none()
            {
                let last_version = head.version + count as u64;
                return Ok(Ok(AppendOutcome {
                    first_version: head.version + 1,
                    last_version,
                    last_position: sequence,
                    duplicate: false,
                }));
            }
            let code = ack.pointer("/error/err_code").and_then(serde_json::Value::as_u64);
            return match code {
                Some(ERR_WRONG_LAST_SEQUENCE) => Ok(Err(AtomicRefusal::WrongLastSequence)),
                Some(ERR_BATCH_DUPLICATE_ID) => Ok(Err(AtomicRefusal::Duplicate)),
                _ => Err(backend(format!("the atomic batch was refused: {ack}"))),
            };
        }
        Err(backend("an empty batch"))
    }

    /// Whether the events stream had no retention limit when this log connected (no age,
    /// count or size limit, overall or per subject): JetStream then removes nothing, and a
    /// stream JetStream holds no events of has none anywhere. Retention set on the stream
    /// later is seen at the next connection.
    pub fn keeps_everything(&self) -> bool {
        let config = &self.events.cached_info().config;
        config.max_age.is_zero()
            && config.max_messages <= 0
            && config.max_bytes <= 0
            && config.max_messages_per_subject <= 0
    }

    /// The NATS client, for callers that publish or subscribe outside the log.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &Context {
        &self.js
    }

    /// The configuration in force.
    pub fn config(&self) -> &NatsLogConfig {
        &self.config
    }

    /// The JetStream stream holding the events.
    pub(crate) fn events_stream(&self) -> &Stream {
        &self.events
    }

    /// The position of the oldest event JetStream still holds (retention removes older ones),
    /// and of the newest; `(0, 0)` when empty.
    pub async fn bounds(&self) -> Result<(Position, Position), LogError> {
        let info = self.events.get_info().await.map_err(backend)?;
        if info.state.messages == 0 {
            return Ok((0, 0));
        }
        Ok((info.state.first_sequence, info.state.last_sequence))
    }

    /// Deletes an ephemeral consumer this log made for one read (best effort: the server
    /// removes it after its inactivity threshold anyway).
    async fn forget_consumer(&self, name: &str) {
        if let Err(error) = self.events.delete_consumer(name).await {
            tracing::debug!(consumer = name, %error, "an ephemeral consumer was not deleted");
        }
    }

    /// Whether JetStream held events of the stream when this log last looked (an append or a
    /// read), without asking the server: `None` when it does not know.
    pub fn holds_events_of(&self, stream_id: &StreamId) -> Option<bool> {
        self.cached_head(stream_id).map(|head| head.sequence > 0)
    }

    fn cached_head(&self, stream_id: &StreamId) -> Option<Head> {
        let key = head_key(stream_id);
        self.heads.lock().ok().and_then(|heads| heads.get(&key).copied())
    }

    fn remember_head(&self, stream_id: &StreamId, head: Option<Head>) {
        let key = head_key(stream_id);
        if let Ok(mut heads) = self.heads.lock() {
            match head {
                Some(head) => {
                    if heads.len() >= STREAM_HEAD_CACHE_COUNT_MAX && !heads.contains_key(&key) {
                        heads.clear();
                    }
                    heads.insert(key, head);
                }
                None => {
                    heads.remove(&key);
                }
            }
        }
    }

    /// Asks the server for the last event of a stream.
    async fn fetch_head(&self, stream_id: &StreamId) -> Result<Head, LogError> {
        Ok(self.fetch_head_and_last(stream_id).await?.0)
    }

    /// Whether reads must go to the stream's leader: on a replicated stream a direct get may be
    /// answered by any replica, and one that is catching up (a node just restarted) answers
    /// with what it has — an older head, or no message — so a phase would fold a stale task,
    /// decide there is nothing to do, and acknowledge its input. The leader's answer includes
    /// every acknowledged write.
    fn reads_from_leader(&self) -> bool {
        self.events.cached_info().config.num_replicas > 1
    }

    /// The message at `sequence`, `None` when there is none.
    async fn get_at(&self, sequence: u64) -> Result<Option<StreamMessage>, LogError> {
        if self.reads_from_leader() {
            return found(
                self.events.get_raw_message(sequence).await,
                LastRawMessageErrorKind::NoMessageFound,
            );
        }
        found(self.events.direct_get(sequence).await, DirectGetErrorKind::NotFound)
    }

    /// The last message on `subject`, `None` when there is none.
    async fn get_last(&self, subject: &str) -> Result<Option<StreamMessage>, LogError> {
        if self.reads_from_leader() {
            let last = self.events.get_last_raw_message_by_subject(subject).await;
            return found(last, LastRawMessageErrorKind::NoMessageFound);
        }
        found(self.events.direct_get_last_for_subject(subject).await, DirectGetErrorKind::NotFound)
    }

    /// The first message on `subject` at or after `sequence`, `None` when there is none.
    async fn get_next(&self, subject: &str, sequence: u64) -> Result<Option<StreamMessage>, LogError> {
        if self.reads_from_leader() {
            let next = self.events.get_first_raw_message_by_subject(subject, sequence).await;
            return found(next, LastRawMessageErrorKind::NoMessageFound);
        }
        let next = self.events.direct_get_next_for_subject(subject, Some(sequence)).await;
        found(next, DirectGetErrorKind::NotFound)
    }

    /// Asks the server for the last event of a stream: its head, and the event itself when it
    /// is a valid one (the request returns it anyway), with the sequence of the event before it.
    async fn fetch_head_and_last(&self, stream_id: &StreamId) -> Result<(Head, Option<Linked>), LogError> {
        let subject = stream_subject(stream_id);
        match self.get_last(subject.as_str()).await {
            Ok(Some(message)) => match version_of(&message.headers) {
                Ok(version) => {
                    let last =
                        decode_event(&subject, message.sequence, Some(&message.headers), &message.payload)
                            .ok()
                            .map(|event| Linked { event, previous: previous_sequence_of(&message.headers) });
                    Ok((Head { version, sequence: message.sequence }, last))
                }
                Err(reason) => {
                    // A foreign message is the last on the subject: the stream's version is its
                    // last valid event's, and the next append must follow the foreign one.
                    tracing::warn!(%stream_id, sequence = message.sequence, %reason, "invalid message at the head of a stream");
                    let head = Head { version: u64::MAX, sequence: message.sequence };
                    let events = self.read_subject(&subject, 1, usize::MAX, head).await?;
                    let version = events.last().map_or(0, |e| e.version);
                    Ok((Head { version, sequence: message.sequence }, None))
                }
            },
            Ok(None) => Ok((Head::EMPTY, None)),
            Err(e) => Err(e),
        }
    }

    async fn head(&self, stream_id: &StreamId) -> Result<Head, LogError> {
        match self.cached_head(stream_id) {
            Some(head) => Ok(head),
            None => self.fetch_head(stream_id).await,
        }
    }

    /// Whether `event_id` is the id of an event of `stream_id` after version `after`; if so,
    /// the outcome of the append that wrote the batch it starts.
    async fn find_earlier_append(
        &self,
        stream_id: &StreamId,
        event_id: EventId,
        batch_len: usize,
        after: Version,
    ) -> Result<Option<AppendOutcome>, LogError> {
        let events = self.read_stream(stream_id, after.saturating_add(1), usize::MAX).await?;
        let Some(first) = events.iter().position(|e| e.id == event_id) else { return Ok(None) };
        let last = &events[(first + batch_len - 1).min(events.len() - 1)];
        Ok(Some(AppendOutcome {
            first_version: events[first].version,
            last_version: last.version,
            last_position: last.position,
            duplicate: true,
        }))
    }

    /// What to say when the stream is at `head` and `expected` does not admit it: the earlier
    /// outcome if this batch was appended before, a conflict otherwise.
    async fn refuse(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        head: Head,
        events: &[NewEvent],
    ) -> Result<AppendOutcome, LogError> {
        let after = match expected {
            ExpectedVersion::Exact(version) => version.min(head.version),
            ExpectedVersion::NoStream | ExpectedVersion::Any => 0,
        };
        if let Some(outcome) = self.find_earlier_append(stream_id, events[0].id, events.len(), after).await? {
            return Ok(outcome);
        }
        Err(LogError::Conflict { stream_id: stream_id.clone(), expected, actual: head.version })
    }

    /// Publishes one event after the message at `after_sequence` on its stream's subject.
    async fn publish(
        &self,
        subject: &str,
        event: &NewEvent,
        version: Version,
        after_sequence: u64,
    ) -> Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
        let mut headers = event_headers(event, version);
        if after_sequence > 0 {
            headers.insert(HEADER_PREVIOUS_SEQUENCE, after_sequence.to_string().as_str());
        }
        let message = PublishMessage::build()
            .payload(Bytes::copy_from_slice(&event.payload))
            .headers(headers)
            .expected_last_subject_sequence(after_sequence);
        self.js.send_publish(subject.to_string(), message).await?.await
    }

    /// The version of the stored message a duplicate acknowledgement points at, checking it
    /// belongs to the stream appended to.
    async fn stored_version(&self, subject: &str, sequence: u64) -> Result<Option<Version>, LogError> {
        let Some(message) = self.get_at(sequence).await? else { return Ok(None) };
        if message.subject.as_str() != subject {
            return Ok(None);
        }
        version_of(&message.headers)
            .map(Some)
            .map_err(|reason| LogError::Corrupt { position: sequence, reason })
    }

    /// The events of `subject` from version `from` to `last`'s, read back from `last` along
    /// the [`HEADER_PREVIOUS_SEQUENCE`] links, one direct get of a known sequence per event;
    /// `None` when a link is missing or leads elsewhere (an event written before the links,
    /// a foreign message, one removed by retention): the caller reads forward instead.
    async fn read_back(
        &self,
        subject: &str,
        from: Version,
        last: Linked,
    ) -> Result<Option<Vec<RecordedEvent>>, LogError> {
        let mut previous = last.previous;
        let mut events = vec![last.event];
        while let Some(newest) = events.last()
            && newest.version > from
        {
            let Some(sequence) = previous else { return Ok(None) };
            let Some(message) = self.get_at(sequence).await? else { return Ok(None) };
            if message.subject.as_str() != subject {
                return Ok(None);
            }
            let Ok(event) = decode_event(subject, sequence, Some(&message.headers), &message.payload) else {
                return Ok(None);
            };
            if event.version + 1 != newest.version {
                return Ok(None);
            }
            previous = previous_sequence_of(&message.headers);
            events.push(event);
        }
        events.reverse();
        Ok(Some(events))
    }

    /// Reads the events of `subject` from version `from` on, up to `limit`, stopping at
    /// `head` (the stream's last event when the read began).
    async fn read_subject(
        &self,
        subject: &str,
        from: Version,
        limit: usize,
        head: Head,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut reader = SubjectReader { subject, from, limit, previous: None, out: Vec::new() };
        if head.sequence == 0 {
            return Ok(reader.out);
        }
        if head.version <= DIRECT_READ_VERSION_COUNT_MAX {
            let mut sequence = 0u64;
            while sequence < head.sequence && !reader.full() {
                let Some(message) = self.get_next(subject, sequence + 1).await? else { break };
                sequence = message.sequence;
                if sequence > head.sequence {
                    break;
                }
                reader.take(sequence, Some(&message.headers), &message.payload)?;
            }
            return Ok(reader.out);
        }
        let consumer = self
            .events
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject.to_string(),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let name = consumer.cached_info().name.clone();
        let read = async {
            let mut messages = consumer.messages().await.map_err(backend)?;
            while !reader.full() {
                let message = tokio::time::timeout(self.config.request_timeout, messages.next())
                    .await
                    .map_err(|_| {
                        backend(Error::new(ErrorKind::Request, format!("reading {subject} timed out")))
                    })?
                    .ok_or(LogError::Closed)?
                    .map_err(backend)?;
                let info = message.info().map_err(backend)?;
                let (sequence, pending) = (info.stream_sequence, info.pending);
                reader.take(sequence, message.message.headers.as_ref(), &message.message.payload)?;
                if sequence >= head.sequence || pending == 0 {
                    break;
                }
            }
            Ok(reader.out)
        }
        .await;
        self.forget_consumer(&name).await;
        read
    }

    /// [`EventLog::read_stream`], and the stream's last version in JetStream (0: JetStream
    /// holds nothing of it), read by the same request: a reader that finds nothing new learns
    /// whether JetStream has the stream at all without asking again.
    pub async fn read_stream_and_version(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<(Vec<RecordedEvent>, Version), LogError> {
        let (head, last) = self.fetch_head_and_last(stream_id).await?;
        self.remember_head(stream_id, Some(head));
        let from = from.max(1);
        if limit == 0 || head.version == 0 || head.version < from {
            return Ok((Vec::new(), head.version));
        }
        let subject = stream_subject(stream_id);
        if let Some(last) = last.filter(|last| last.event.version == head.version)
            && head.version - from < DIRECT_READ_VERSION_COUNT_MAX
            && let Some(mut events) = self.read_back(&subject, from, last).await?
        {
            events.truncate(limit);
            return Ok((events, head.version));
        }
        Ok((self.read_subject(&subject, from, limit, head).await?, head.version))
    }

    /// Appends like [`EventLog::append`], treating a stream JetStream holds nothing of as being
    /// at version `floor`: the archive's last version of a stream that retention removed from
    /// JetStream entirely (see [`crate::ArchivedLog`]).
    pub async fn append_after(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        floor: Version,
    ) -> Result<AppendOutcome, LogError> {
        validate_batch(&events)?;
        let subject = stream_subject(stream_id);
        let floored =
            |head: Head| if head.sequence == 0 { Head { version: floor, sequence: 0 } } else { head };
        let mut head = match expected {
            ExpectedVersion::NoStream => floored(Head::EMPTY),
            _ => floored(self.head(stream_id).await?),
        };
        if self.atomic && events.len() > 1 {
            return self.append_atomic(stream_id, expected, events, head, floor).await;
        }
        let mut attempts = 0;
        'attempt: loop {
            attempts += 1;
            if !expected.admits(head.version) {
                // The cache may be stale: ask the server before refusing.
                head = floored(self.fetch_head(stream_id).await?);
                if !expected.admits(head.version) {
                    self.remember_head(stream_id, Some(head));
                    return self.refuse(stream_id, expected, head, &events).await;
                }
            }
            let mut version = head.version;
            let mut sequence = head.sequence;
            let mut first_version = None;
            let mut wrote = false;
            for (index, event) in events.iter().enumerate() {
                match self.publish(&subject, event, version + 1, sequence).await {
                    Ok(ack) if ack.duplicate => {
                        // Written before (same event id inside the duplicate window): resume
                        // after it, so a batch cut short by a crash is completed on retry. An
                        // id used by another event (another stream, or not where this batch
                        // would put it) is refused.
                        let stored = self.stored_version(&subject, ack.sequence).await?;
                        match stored {
                            Some(stored) if index == 0 || stored == version + 1 => version = stored,
                            _ => {
                                tracing::debug!(%subject, ack.sequence, ?stored, index, version, "event id already used");
                                return Err(LogError::DuplicateEventId { event_id: event.id });
                            }
                        }
                        sequence = ack.sequence;
                    }
                    Ok(ack) => {
                        version += 1;
                        sequence = ack.sequence;
                        wrote = true;
                    }
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                        self.remember_head(stream_id, None);
                        head = floored(self.fetch_head(stream_id).await?);
                        // Lost a race (any version will do), or the stream's version is still
                        // the one expected and only its last sequence moved (a message that is
                        // not an event was published on the subject): try again after it.
                        if index == 0
                            && (matches!(expected, ExpectedVersion::Any) || expected.admits(head.version))
                            && attempts < APPEND_ANY_RETRY_COUNT_MAX
                        {
                            continue 'attempt;
                        }
                        if index == 0 {
                            self.remember_head(stream_id, Some(head));
                            return self.refuse(stream_id, expected, head, &events).await;
                        }
                        // Another writer got in the middle of this batch: JetStream 2.9 has no
                        // atomic batch, so the first `index` events stay written.
                        return Err(LogError::Conflict {
                            stream_id: stream_id.clone(),
                            expected: ExpectedVersion::Exact(version),
                            actual: head.version,
                        });
                    }
                    Err(e) => {
                        self.remember_head(stream_id, None);
                        return Err(backend(e));
                    }
                }
                first_version.get_or_insert(version);
            }
            let head = Head { version, sequence };
            self.remember_head(stream_id, Some(head));
            return Ok(AppendOutcome {
                first_version: first_version.unwrap_or(version),
                last_version: version,
                last_position: sequence,
                duplicate: !wrote,
            });
        }
    }

    /// [`Self::append_after`] for a batch of several events, published atomically.
    async fn append_atomic(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        mut head: Head,
        floor: Version,
    ) -> Result<AppendOutcome, LogError> {
        let subject = stream_subject(stream_id);
        let floored =
            |head: Head| if head.sequence == 0 { Head { version: floor, sequence: 0 } } else { head };
        for _ in 0..APPEND_ANY_RETRY_COUNT_MAX {
            if !expected.admits(head.version) {
                head = floored(self.fetch_head(stream_id).await?);
                if !expected.admits(head.version) {
                    self.remember_head(stream_id, Some(head));
                    return self.refuse(stream_id, expected, head, &events).await;
                }
            }
            match self.publish_atomic(&subject, &events, head).await {
                Ok(Ok(outcome)) => {
                    self.remember_head(
                        stream_id,
                        Some(Head { version: outcome.last_version, sequence: outcome.last_position }),
                    );
                    return Ok(outcome);
                }
                Ok(Err(refusal)) => {
                    self.remember_head(stream_id, None);
                    head = floored(self.fetch_head(stream_id).await?);
                    let stale_but_admitted = refusal == AtomicRefusal::WrongLastSequence
                        && (matches!(expected, ExpectedVersion::Any) || expected.admits(head.version));
                    if !stale_but_admitted {
                        // Written before (found by its first event id), or a real conflict.
                        self.remember_head(stream_id, Some(head));
                        return self.refuse(stream_id, expected, head, &events).await;
                    }
                }
                Err(error) => {
                    self.remember_head(stream_id, None);
                    return Err(error);
                }
            }
        }
        Err(LogError::Conflict { stream_id: stream_id.clone(), expected, actual: head.version })
    }

    /// Replays every event from `from` (inclusive) through an ordered consumer, handing each to
    /// `each` until it returns false, the end of the log at the start of the call is reached,
    /// or `limit` events were handed. Returns how many were handed. Invalid messages are
    /// skipped with a warning.
    pub async fn replay<F>(&self, from: Position, limit: usize, mut each: F) -> Result<usize, LogError>
    where
        F: FnMut(RecordedEvent) -> bool + Send,
    {
        let (_, last) = self.bounds().await?;
        if last == 0 || last < from || limit == 0 {
            return Ok(0);
        }
        // A push ordered consumer: the server streams with flow control instead of answering
        // one pull request per batch, which replays several times faster.
        let consumer = self
            .events
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from.max(1) },
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let name = consumer.cached_info().name.clone();
        let replayed = async {
            let mut messages = consumer.messages().await.map_err(backend)?;
            let mut handed = 0;
            while handed < limit {
                let message = tokio::time::timeout(self.config.request_timeout, messages.next())
                    .await
                    .map_err(|_| backend(Error::new(ErrorKind::Request, "replay timed out")))?
                    .ok_or(LogError::Closed)?
                    .map_err(backend)?;
                let info = message.info().map_err(backend)?;
                let sequence = info.stream_sequence;
                let pending = info.pending;
                match decode_event(
                    &message.message.subject,
                    sequence,
                    message.message.headers.as_ref(),
                    &message.message.payload,
                ) {
                    Ok(event) => {
                        handed += 1;
                        if !each(event) {
                            break;
                        }
                    }
                    Err(reason) => tracing::warn!(sequence, %reason, "replay skips an invalid message"),
                }
                if sequence >= last || pending == 0 {
                    break;
                }
            }
            Ok(handed)
        }
        .await;
        // Ephemeral consumers outlive their subscription by the server's inactivity threshold,
        // receiving every new event meanwhile: delete it now (the registry replays every second).
        self.forget_consumer(&name).await;
        replayed
    }
}

/// Wraps any backend failure.
pub(crate) fn backend(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> LogError {
    LogError::Backend(error.into())
}

#[async_trait]
impl EventLog for NatsLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        self.append_after(stream_id, expected, events, 0).await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        Ok(self.read_stream_and_version(stream_id, from, limit).await?.0)
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        let mut out = Vec::with_capacity(limit.min(REPLAY_BATCH_COUNT_MAX));
        self.replay(from, limit, |event| {
            out.push(event);
            true
        })
        .await?;
        Ok(out)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<Version, LogError> {
        let head = self.fetch_head(stream_id).await?;
        self.remember_head(stream_id, Some(head));
        Ok(head.version)
    }

    async fn subscribe(
        &self,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, LogError> {
        validate_subscription_name(name)?;
        validate_filter(&options.filter)?;
        let subscription = NatsSubscription::open(
            self.js.clone(),
            self.events.clone(),
            Arc::clone(&self.config),
            name,
            options,
        )
        .await?;
        Ok(Box::new(subscription))
    }

    /// One consumer for the group: see [`crate::NatsGroup`].
    async fn subscribe_group(
        &self,
        name: &str,
        members: &[(String, SubscribeOptions)],
    ) -> Result<Option<Arc<dyn SubscriptionGroup>>, LogError> {
        let group =
            NatsGroup::open(self.js.clone(), self.events.clone(), Arc::clone(&self.config), name, members)
                .await?;
        Ok(Some(Arc::new(group)))
    }

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        validate_subscription_name(name)?;
        match self.events.delete_consumer(name).await {
            Ok(status) => Ok(status.success),
            Err(e)
                if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
                if j.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn subscription_stats(&self) -> Result<Vec<events::SubscriptionStats>, LogError> {
        use futures::TryStreamExt as _;
        let mut stats: Vec<events::SubscriptionStats> = self
            .events
            .consumers()
            .map_ok(|info| events::SubscriptionStats {
                name: info.name.clone(),
                pending: info.num_pending.saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(0)),
                redelivered: Some(u64::try_from(info.num_redelivered).unwrap_or(0)),
            })
            .try_collect()
            .await
            .map_err(backend)?;
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    }
}

/// Collects the events of one subject, checking that versions run without gaps.
/// A stream's last event and the sequence of the one before it, if its message names one.
struct Linked {
    event: RecordedEvent,
    previous: Option<u64>,
}

struct SubjectReader<'s> {
    subject: &'s str,
    from: Version,
    limit: usize,
    previous: Option<Version>,
    out: Vec<RecordedEvent>,
}

impl SubjectReader<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.limit
    }

    fn take(
        &mut self,
        sequence: u64,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Result<(), LogError> {
        let event = match decode_event(self.subject, sequence, headers, payload) {
            Ok(event) => event,
            Err(reason) => {
                tracing::warn!(subject = %self.subject, sequence, %reason, "skipping an invalid message");
                return Ok(());
            }
        };
        // Pair assertion: versions read back are gapless, as appends wrote them. The first one
        // read may be above 1 when retention has removed the stream's oldest events.
        let expected = self.previous.map_or(event.version, |v| v + 1);
        if event.version != expected {
            return Err(LogError::Corrupt {
                position: sequence,
                reason: format!("{} holds version {} where {expected} was due", self.subject, event.version),
            });
        }
        self.previous = Some(event.version);
        if event.version >= self.from && !self.full() {
            self.out.push(event);
        }
        Ok(())
    }
}
