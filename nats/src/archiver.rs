//! [`Archiver`]: copies every JetStream event into the archive, through the durable consumer
//! [`ARCHIVER_SUBSCRIPTION`] that every process's archiver shares; [`ArchiverStatus`] tells how
//! far behind it is and what went wrong last.
//!
//! # Delivery, retries and dead letters
//! The archiver reads the consumer itself rather than through a [`crate::NatsSubscription`], to
//! decide per event how to answer the server:
//! - Imported, or archived already: acknowledged (waiting for the server's confirmation).
//! - The archive's database failed ([`ImportError::is_transient`]): negatively acknowledged
//!   with a delay that doubles with each delivery ([`ARCHIVE_RETRY_DELAY_MIN`] to
//!   [`ARCHIVE_RETRY_DELAY_MAX`]), the rest of the batch is given back with the same delay, and
//!   the archiver pauses as long before it asks for more: a database outage costs one attempt
//!   per pause, not a storm.
//! - The archive holds another event at its JetStream sequence
//!   ([`ImportError::SourcePositionTaken`], the stream was created again): sent back with the
//!   same growing delay until an operator retires the archive's sequences
//!   ([`crate::retire_archived_sequences`]); the status says so.
//! - A real conflict (another event at its stream and version, its id archived elsewhere, a row
//!   the database refuses as data), or a message that is not an event: dead-lettered to
//!   `pantheon-dead.archiver` with the reason, and terminated.
//!
//! Nothing is dead-lettered for a transient reason: the consumer has no delivery limit
//! (`max_deliver` -1, whatever [`crate::NatsLogConfig::max_deliver`] says) and no redelivery
//! backoff schedule of its own (the archiver's delays are the ones it asks for); an event held
//! by an archiver that died comes back after [`crate::NatsLogConfig::ack_wait`]. Order does not
//! matter: the archive accepts a stream's versions in any order ([`store::SqlLog::import`]), so
//! archivers of several processes share the consumer freely.
//!
//! # Supervision
//! [`Archiver::run`] returns at the first failure of NATS (a pull, an acknowledgement, a
//! dead-letter publish); [`Archiver::run_supervised`] starts it again after a pause that
//! doubles from [`ARCHIVER_RESTART_DELAY_MIN`] to [`ARCHIVER_RESTART_DELAY_MAX`] (back to the
//! minimum once a run has archived something), logging each restart, until shutdown.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::message::{AckKind, Message};
use futures::{FutureExt as _, StreamExt as _};

use events::{LogError, Position};
use store::{ImportError, ImportOutcome};

use crate::archive::Archive;
use crate::layout::{category_subject, decode_event};
use crate::log::{NatsLog, backend};
use crate::setup::{consumer_config, ensure_consumer};
use crate::subscription::{DROP_RELEASE_WAIT, IDLE_WAIT, dead_letter, position_and_attempt};

/// The durable consumer every archiver reads. Archivers of several processes share it and
/// the work: each event goes to one of them (and again to any after a failure; imports are
/// idempotent).
pub const ARCHIVER_SUBSCRIPTION: &str = "archiver";

/// The delay before an event the archive's database failed on is delivered again, on its
/// first failure; it doubles with every delivery after, up to [`ARCHIVE_RETRY_DELAY_MAX`].
/// Also the archiver's pause after such a failure.
pub const ARCHIVE_RETRY_DELAY_MIN: Duration = Duration::from_millis(100);

/// The longest delay before an event the archive could not take is delivered again, and the
/// longest pause of the archiver after a database failure: the worst time an archive that has
/// recovered waits to be used again.
pub const ARCHIVE_RETRY_DELAY_MAX: Duration = Duration::from_secs(10);

/// The pause before [`Archiver::run_supervised`] starts the archiver again after its first
/// failure in a row; it doubles with each failure after, up to
/// [`ARCHIVER_RESTART_DELAY_MAX`].
pub const ARCHIVER_RESTART_DELAY_MIN: Duration = Duration::from_millis(100);

/// The longest pause before a failed archiver starts again: how long it may stay idle after
/// NATS has come back.
pub const ARCHIVER_RESTART_DELAY_MAX: Duration = Duration::from_secs(10);

/// How often, at most, the archiver asks the server how far behind it is
/// ([`ArchiverSnapshot::lag`]): two small requests, so a reading is never older than this
/// plus one idle pull ([`IDLE_WAIT`]) while the archiver runs.
pub const ARCHIVER_LAG_READ_INTERVAL: Duration = Duration::from_secs(1);

/// What an archiver did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiverReport {
    /// Events written to the archive.
    pub imported: u64,
    /// Events that were in the archive already (redeliveries, or another archiver's).
    pub already_present: u64,
    /// Events dead-lettered because the archive refused them for good (a conflict, or a row
    /// the database cannot store).
    pub refused: u64,
    /// Messages dead-lettered because they are not events.
    pub not_events: u64,
    /// Events sent back to be delivered again later (the database failed, or their sequence
    /// is taken in the archive).
    pub retried: u64,
}

impl ArchiverReport {
    fn handled(&self) -> u64 {
        self.imported + self.already_present + self.refused + self.not_events
    }
}

/// How far the archive is behind JetStream, as the server counts it for the archiver's
/// consumer (so across every process sharing it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArchiverLag {
    /// The last sequence of the JetStream stream (0 when it is empty).
    pub jetstream_last: Position,
    /// Every event up to this sequence is archived, or dead-lettered: the consumer's
    /// acknowledgement floor (0 when it has acknowledged nothing, or does not exist).
    pub archived_through: Position,
    /// Events not archived yet: not delivered to an archiver yet, or delivered and not
    /// acknowledged (in progress, or waiting to be delivered again).
    pub unarchived_count: u64,
}

/// What an archiver is doing, as of the last change: read with [`ArchiverStatus::snapshot`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchiverSnapshot {
    /// Whether a run is under way: false before the first, between a failure and the restart,
    /// and after shutdown.
    pub running: bool,
    /// What every run of this archiver did, added up.
    pub report: ArchiverReport,
    /// How many times [`Archiver::run_supervised`] started the archiver again after a failure.
    pub restarts: u64,
    /// The last failure or refusal (of NATS, of the archive, of an event), with its causes.
    pub last_error: Option<String>,
    /// When `last_error` happened, ms since the Unix epoch.
    pub last_error_at_ms: Option<i64>,
    /// The highest JetStream sequence this archiver archived (acknowledged).
    pub last_archived_sequence: Position,
    /// How far behind the archive is, as read at `lag_read_at_ms`; `None` before the first
    /// reading.
    pub lag: Option<ArchiverLag>,
    /// When `lag` was read, ms since the Unix epoch.
    pub lag_read_at_ms: Option<i64>,
}

/// The status an [`Archiver`] keeps up to date, shared with whoever reports it
/// ([`Archiver::status`]). Reading it is a lock and a clone: cheap enough for every metrics
/// scrape and readiness probe.
#[derive(Debug, Default)]
pub struct ArchiverStatus {
    snapshot: Mutex<ArchiverSnapshot>,
}

impl ArchiverStatus {
    /// The status now.
    pub fn snapshot(&self) -> ArchiverSnapshot {
        match self.snapshot.lock() {
            Ok(snapshot) => snapshot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut ArchiverSnapshot)) {
        match self.snapshot.lock() {
            Ok(mut snapshot) => change(&mut snapshot),
            Err(poisoned) => change(&mut poisoned.into_inner()),
        }
    }

    fn failed(&self, error: &dyn std::error::Error) {
        let text = events::error_chain(error);
        self.update(|s| {
            s.last_error = Some(text);
            s.last_error_at_ms = Some(events::now_ms());
        });
    }
}

/// The delay after `failures` failures in a row: [`ARCHIVE_RETRY_DELAY_MIN`] doubled for each
/// after the first, at most [`ARCHIVE_RETRY_DELAY_MAX`].
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ARCHIVE_RETRY_DELAY_MIN.saturating_mul(1 << doublings).min(ARCHIVE_RETRY_DELAY_MAX)
}

/// What to do after one event.
enum Step {
    /// Go on with the next.
    Next,
    /// The archive's database failed: give the rest of the batch back and pause this long.
    Pause(Duration),
    /// Shutdown came while the event was being archived (it was given back): stop.
    Stop,
}

/// Copies every event of the JetStream log into the archive (see the module docs): at least
/// once from JetStream, exactly once in the archive (unique on stream and version).
#[derive(Debug)]
pub struct Archiver {
    log: Arc<NatsLog>,
    archive: Arc<dyn Archive>,
    status: Arc<ArchiverStatus>,
}

impl Archiver {
    /// An archiver from `log` into `archive`.
    pub fn new(log: Arc<NatsLog>, archive: Arc<dyn Archive>) -> Self {
        Self { log, archive, status: Arc::default() }
    }

    /// The status this archiver keeps up to date: its lag, its counts, its last error.
    pub fn status(&self) -> Arc<ArchiverStatus> {
        Arc::clone(&self.status)
    }

    /// Runs until `shutdown` completes (giving back the events it holds, so that another
    /// archiver takes them at once), or until NATS fails: then it returns the failure, and
    /// nothing archives in this process until it is run again. See [`Self::run_supervised`].
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<ArchiverReport, LogError> {
        tokio::pin!(shutdown);
        let mut report = ArchiverReport::default();
        let result = self.attempt(shutdown.as_mut(), &mut report).await;
        self.status.update(|s| s.running = false);
        if let Err(error) = &result {
            self.status.failed(error);
        }
        result.map(|()| report)
    }

    /// Runs until `shutdown` completes, starting again after every failure (see the module
    /// docs): it never gives up. Returns what all the runs did.
    pub async fn run_supervised(&self, shutdown: impl Future<Output = ()> + Send) -> ArchiverReport {
        tokio::pin!(shutdown);
        let mut report = ArchiverReport::default();
        let mut delay = ARCHIVER_RESTART_DELAY_MIN;
        loop {
            let handled = report.handled();
            let error = match self.attempt(shutdown.as_mut(), &mut report).await {
                Ok(()) => break,
                Err(error) => error,
            };
            if report.handled() > handled {
                // It got somewhere: this failure is a new one.
                delay = ARCHIVER_RESTART_DELAY_MIN;
            }
            self.status.failed(&error);
            let mut restarts = 0;
            self.status.update(|s| {
                s.running = false;
                s.restarts += 1;
                restarts = s.restarts;
            });
            tracing::warn!(
                error = %events::error_chain(&error),
                restarts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "the archiver failed; starting it again"
            );
            tokio::select! {
                biased;
                () = shutdown.as_mut() => break,
                () = tokio::time::sleep(delay) => {}
            }
            delay = delay.saturating_mul(2).min(ARCHIVER_RESTART_DELAY_MAX);
        }
        self.status.update(|s| s.running = false);
        report
    }

    /// One run: `Ok` at shutdown, `Err` at the first failure of NATS. Adds what it did to
    /// `report` and to the status as it goes.
    async fn attempt<F: Future<Output = ()>>(
        &self,
        mut shutdown: Pin<&mut F>,
        report: &mut ArchiverReport,
    ) -> Result<(), LogError> {
        let want = archiver_consumer_config(self.log.config());
        let consumer = tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok(()),
            consumer = ensure_consumer(self.log.events_stream(), want) => consumer?,
        };
        self.status.update(|s| s.running = true);
        let mut lag_read: Option<tokio::time::Instant> = None;
        let mut failures = 0u32;
        loop {
            if lag_read.is_none_or(|at| at.elapsed() >= ARCHIVER_LAG_READ_INTERVAL) {
                self.read_lag(&consumer).await;
                lag_read = Some(tokio::time::Instant::now());
            }
            let mut batch = tokio::select! {
                biased;
                () = shutdown.as_mut() => return Ok(()),
                batch = self.fetch(&consumer) => batch?,
            };
            while let Some(message) = batch.pop_front() {
                if shutdown.as_mut().now_or_never().is_some() {
                    batch.push_front(message);
                    release(batch, AckKind::Nak(None)).await;
                    return Ok(());
                }
                let step = match self.archive_one(message, shutdown.as_mut(), report, &mut failures).await {
                    Ok(step) => step,
                    Err(error) => {
                        release(batch, AckKind::Nak(None)).await;
                        return Err(error);
                    }
                };
                if let Step::Stop = step {
                    release(batch, AckKind::Nak(None)).await;
                    return Ok(());
                }
                if let Step::Pause(delay) = step {
                    for message in batch.drain(..) {
                        message.ack_with(AckKind::Nak(Some(delay))).await.map_err(backend)?;
                    }
                    tokio::select! {
                        biased;
                        () = shutdown.as_mut() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// The next events for this archiver: those waiting now, or else the first to come within
    /// [`IDLE_WAIT`] (none if none comes). A pull that does not end in time is a failure.
    async fn fetch(&self, consumer: &PullConsumer) -> Result<VecDeque<Message>, LogError> {
        let count = self.log.config().fetch_batch_count;
        let pull = async {
            let mut out = VecDeque::new();
            let mut batch = consumer.fetch().max_messages(count).messages().await.map_err(backend)?;
            while let Some(message) = batch.next().await {
                out.push_back(message.map_err(backend)?);
            }
            if out.is_empty() {
                let mut batch =
                    consumer.batch().max_messages(1).expires(IDLE_WAIT).messages().await.map_err(backend)?;
                while let Some(message) = batch.next().await {
                    out.push_back(message.map_err(backend)?);
                }
            }
            Ok(out)
        };
        let limit = IDLE_WAIT + self.log.config().request_timeout.saturating_mul(2);
        tokio::time::timeout(limit, pull).await.map_err(|_| {
            backend(format!("pulling events for the archiver took longer than {} ms", limit.as_millis()))
        })?
    }

    /// Archives one delivered message and answers the server (see the module docs).
    async fn archive_one<F: Future<Output = ()>>(
        &self,
        message: Message,
        shutdown: Pin<&mut F>,
        report: &mut ArchiverReport,
        failures: &mut u32,
    ) -> Result<Step, LogError> {
        let (sequence, attempt) = position_and_attempt(&message)?;
        let event = match decode_event(
            &message.message.subject,
            sequence,
            message.message.headers.as_ref(),
            &message.message.payload,
        ) {
            Ok(event) => event,
            Err(reason) => {
                let reason = format!("not an event: {reason}");
                self.status.failed(&backend(reason.clone()));
                self.dead_letter(message, sequence, &reason).await?;
                report.not_events += 1;
                self.status.update(|s| s.report.not_events += 1);
                return Ok(Step::Next);
            }
        };
        // An import can wait long on a database that is down (for a connection): shutdown does
        // not wait for it. Dropped half-way, its transaction rolls back.
        let imported = tokio::select! {
            biased;
            () = shutdown => {
                release(VecDeque::from([message]), AckKind::Nak(None)).await;
                return Ok(Step::Stop);
            }
            imported = self.archive.import(&event) => imported,
        };
        match imported {
            Ok(outcome) => {
                message.double_ack().await.map_err(backend)?;
                *failures = 0;
                let inserted = matches!(outcome, ImportOutcome::Inserted { .. });
                let count = |r: &mut ArchiverReport| {
                    if inserted {
                        r.imported += 1;
                    } else {
                        r.already_present += 1;
                    }
                };
                count(report);
                self.status.update(|s| {
                    count(&mut s.report);
                    s.last_archived_sequence = s.last_archived_sequence.max(sequence);
                });
                Ok(Step::Next)
            }
            Err(error) if error.is_transient() => {
                *failures = failures.saturating_add(1);
                let delay = retry_delay(attempt.max(*failures));
                tracing::warn!(
                    sequence,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    error = %events::error_chain(&error),
                    "the archive failed; the event comes back later"
                );
                self.send_back(message, delay, &error, report).await?;
                Ok(Step::Pause(retry_delay(*failures)))
            }
            Err(error @ ImportError::SourcePositionTaken { .. }) => {
                let delay = retry_delay(attempt);
                // Every such event comes back every few seconds until an operator acts: log
                // each at its 1st, 2nd, 4th, 8th… delivery.
                if attempt.is_power_of_two() {
                    tracing::error!(
                        sequence,
                        attempt,
                        error = %error,
                        "the archive holds another event at this sequence: was the JetStream stream created again? then retire the archive's sequences"
                    );
                }
                self.send_back(message, delay, &error, report).await?;
                Ok(Step::Next)
            }
            Err(error) => {
                let reason = format!("the archive refused it: {}", events::error_chain(&error));
                self.status.failed(&error);
                self.dead_letter(message, sequence, &reason).await?;
                report.refused += 1;
                self.status.update(|s| s.report.refused += 1);
                Ok(Step::Next)
            }
        }
    }

    /// Sends `message` back to be delivered again after `delay`.
    async fn send_back(
        &self,
        message: Message,
        delay: Duration,
        error: &ImportError,
        report: &mut ArchiverReport,
    ) -> Result<(), LogError> {
        self.status.failed(error);
        message.ack_with(AckKind::Nak(Some(delay))).await.map_err(backend)?;
        report.retried += 1;
        self.status.update(|s| s.report.retried += 1);
        Ok(())
    }

    async fn dead_letter(&self, message: Message, sequence: Position, reason: &str) -> Result<(), LogError> {
        dead_letter(self.log.jetstream(), ARCHIVER_SUBSCRIPTION, message, sequence, reason).await
    }

    /// Reads the lag into the status; a failure only leaves the last reading (the next pull
    /// will say whether NATS is failing).
    async fn read_lag(&self, consumer: &PullConsumer) {
        let lag = async {
            let info = consumer.get_info().await.map_err(backend)?;
            let (_, last) = self.log.bounds().await?;
            Ok::<_, LogError>(lag_of(&info, last))
        };
        match lag.await {
            Ok(lag) => self.status.update(|s| {
                s.lag = Some(lag);
                s.lag_read_at_ms = Some(events::now_ms());
            }),
            Err(error) => tracing::debug!(%error, "reading the archiver's lag failed"),
        }
    }
}

fn lag_of(info: &async_nats::jetstream::consumer::Info, jetstream_last: Position) -> ArchiverLag {
    ArchiverLag {
        jetstream_last,
        archived_through: info.ack_floor.stream_sequence,
        unarchived_count: info.num_pending.saturating_add(info.num_ack_pending as u64),
    }
}

/// How far the archive is behind JetStream now, asking the server (two requests): for a
/// process that runs no archiver, such as a check command. Without an archiver consumer
/// (no archiver ever ran, or [`crate::retire_archived_sequences`] reset it), nothing is
/// archived through it.
pub async fn read_archiver_lag(log: &NatsLog) -> Result<ArchiverLag, LogError> {
    let (first, last) = log.bounds().await?;
    match log.events_stream().consumer_info(ARCHIVER_SUBSCRIPTION).await {
        Ok(info) => Ok(lag_of(&info, last)),
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => Ok(ArchiverLag {
            jetstream_last: last,
            archived_through: 0,
            unarchived_count: if first == 0 { 0 } else { last - first + 1 },
        }),
        Err(e) => Err(backend(e)),
    }
}

/// The archiver's consumer: a subscription's, from the beginning, with no delivery limit and no
/// backoff schedule (see the module docs).
pub(crate) fn archiver_consumer_config(config: &crate::NatsLogConfig) -> pull::Config {
    pull::Config {
        max_deliver: -1,
        backoff: Vec::new(),
        ..consumer_config(config, ARCHIVER_SUBSCRIPTION, category_subject(None), DeliverPolicy::All)
    }
}

/// Gives `messages` back with `kind` (best effort, at most [`DROP_RELEASE_WAIT`]): what is not
/// given back comes back after the ack wait.
async fn release(messages: VecDeque<Message>, kind: AckKind) {
    let release = async move {
        for message in messages {
            if message.ack_with(kind).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DROP_RELEASE_WAIT, release).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let delays: Vec<u128> =
            [0, 1, 2, 3, 7, 8, 9, 1_000, u32::MAX].map(|n| retry_delay(n).as_millis()).to_vec();
        assert_eq!(delays, [100, 100, 200, 400, 6_400, 10_000, 10_000, 10_000, 10_000]);
    }
}
