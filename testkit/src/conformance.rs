//! The log conformance suite: what every [`EventLog`] backend must do, written once against the
//! trait. Each case is a `pub async fn` taking a [`Backend`]; [`crate::conformance_tests!`]
//! expands them into one `#[tokio::test]` each.
//!
//! The cases stay backend-neutral: they use fresh stream ids and categories of their own (so a
//! backend may share its storage between tests), never assume positions are contiguous, and
//! wait generously ([`WAIT`]) for deliveries.
//!
//! # Examples
//! ```ignore
//! struct Sqlite(tempfile::TempDir);
//!
//! #[async_trait::async_trait]
//! impl testkit::conformance::Backend for Sqlite {
//!     async fn open(&self) -> std::sync::Arc<dyn events::EventLog> {
//!         let url = format!("sqlite://{}?mode=rwc", self.0.path().join("log.db").display());
//!         store::open(&url).await.unwrap()
//!     }
//! }
//!
//! testkit::conformance_tests!(async { Sqlite(tempfile::tempdir().unwrap()) });
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::{
    APPEND_BATCH_COUNT_MAX, Delivery, EVENT_PAYLOAD_BYTES_MAX, EventId, EventLog, EventType, ExpectedVersion,
    Filter, LogError, Metadata, NewEvent, Position, RecordedEvent, StartFrom, StreamId, SubscribeOptions,
    Subscription,
};

/// How long a case waits for a delivery before failing: generous, for loaded CI machines and
/// for backends that deliver through a server.
pub const WAIT: Duration = Duration::from_secs(15);

/// How soon a waiting subscription must see a new event: well under any polling interval.
pub const WAKE_LATENCY_MAX: Duration = Duration::from_millis(1_000);

/// A log backend under test.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens the log on this backend's storage. Every call opens it again on the same storage,
    /// as a restarted process would.
    async fn open(&self) -> Arc<dyn EventLog>;

    /// Whether a batch is all or nothing when one of its later events is refused. The SQL log
    /// commits a batch in one transaction; JetStream before 2.12 publishes it event by event,
    /// so the events before the refused one stay written (a retry completes the batch).
    fn atomic_batches(&self) -> bool {
        true
    }
}

/// Expands into one `#[tokio::test]` per conformance case. The argument is an expression of a
/// future that makes the [`Backend`]; it is evaluated afresh for every test. The calling crate
/// needs `tokio` (with `macros` and `rt-multi-thread`) as a dev-dependency.
///
/// ```ignore
/// testkit::conformance_tests!(async { MyBackend::new().await });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@cases $backend;
            ordering,
            optimistic_concurrency,
            concurrent_writers,
            batch_atomicity,
            idempotent_reappend,
            racing_handles,
            reads_from_positions_with_limits,
            subscription_delivers_in_order_and_wakes,
            subscription_resumes_after_restart,
            nack_redelivers,
            filters,
            start_from_end_and_position,
            subscription_deletion,
            bad_input,
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $backend.await;
                $crate::conformance::$case(&backend).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// helpers

/// A random lowercase word, for stream categories private to one case.
fn word() -> String {
    EventId::new().0.simple().to_string().chars().rev().take(12).map(letter).collect()
}

fn letter(c: char) -> char {
    let value = c.to_digit(16).unwrap_or(0) as u8;
    char::from(b'a' + value)
}

/// A fresh category private to the calling case.
fn category() -> String {
    format!("c{}", word())
}

/// A fresh stream in `category`.
fn stream(category: &str) -> StreamId {
    StreamId::new(format!("{category}-{}", EventId::new().0.simple())).expect("valid stream id")
}

fn event_type(name: &str) -> EventType {
    EventType::new(name).expect("valid event type")
}

/// A new event of `kind` whose payload is `body`.
fn event(kind: &str, body: &str) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: event_type(kind),
        schema_version: 1,
        payload: body.as_bytes().to_vec(),
        metadata: Metadata::now("conformance"),
    }
}

fn events(kind: &str, count: usize) -> Vec<NewEvent> {
    (0..count).map(|i| event(kind, &format!("{kind} {i}"))).collect()
}

async fn next(subscription: &mut Box<dyn Subscription>) -> Delivery {
    match tokio::time::timeout(WAIT, subscription.next()).await {
        Ok(Ok(delivery)) => delivery,
        Ok(Err(error)) => panic!("subscription failed: {error}"),
        Err(_) => panic!("no delivery within {WAIT:?}"),
    }
}

/// Delivers and acknowledges until the event with id `last` arrives; returns the events.
async fn collect_until(subscription: &mut Box<dyn Subscription>, last: EventId) -> Vec<RecordedEvent> {
    let mut seen = Vec::new();
    loop {
        let delivery = next(subscription).await;
        subscription.ack(delivery.event.position).await.expect("ack");
        let done = delivery.event.id == last;
        seen.push(delivery.event);
        if done {
            return seen;
        }
    }
}

/// Every recorded event of `streams`, in `read_all` order.
async fn read_all_of(log: &dyn EventLog, streams: &[&StreamId]) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut from: Position = 0;
    loop {
        let page = log.read_all(from, 500).await.expect("read_all");
        let Some(last) = page.last() else { return out };
        from = last.position + 1;
        out.extend(page.into_iter().filter(|e| streams.contains(&&e.stream_id)));
    }
}

fn assert_same_event(recorded: &RecordedEvent, sent: &NewEvent) {
    assert_eq!(recorded.id, sent.id);
    assert_eq!(recorded.event_type, sent.event_type);
    assert_eq!(recorded.schema_version, sent.schema_version);
    assert_eq!(recorded.payload, sent.payload);
    assert_eq!(recorded.metadata, sent.metadata);
}

fn subscription_name(case: &str) -> String {
    format!("{case}-{}", word())
}

// ---------------------------------------------------------------------------------------------
// cases

/// Events come back in append order, per stream (versions 1, 2, …) and globally (increasing
/// positions), with everything that was written.
pub async fn ordering(backend: &dyn Backend) {
    let log = backend.open().await;
    let category = category();
    let (a, b) = (stream(&category), stream(&category));
    let mut sent_a = Vec::new();
    let mut sent_all = Vec::new();
    for round in 0..3 {
        for (stream_id, count) in [(&a, 2), (&b, 1)] {
            let mut batch = events("thing_happened", count);
            batch[0].metadata.causation_id = Some(EventId::new());
            let outcome = log.append(stream_id, ExpectedVersion::Any, batch.clone()).await.expect("append");
            assert!(!outcome.duplicate);
            assert_eq!(outcome.last_version - outcome.first_version + 1, count as u64);
            if stream_id == &a {
                assert_eq!(outcome.first_version, round * 2 + 1);
                sent_a.extend(batch.iter().cloned());
            }
            let recorded = log.read_stream(stream_id, outcome.last_version, 1).await.expect("read");
            assert_eq!(recorded[0].position, outcome.last_position, "outcome names the last position");
            sent_all.extend(batch.into_iter().map(|e| (stream_id.clone(), e)));
        }
    }
    let read_a = log.read_stream(&a, 1, 100).await.expect("read a");
    assert_eq!(read_a.len(), 6);
    for (i, (recorded, sent)) in read_a.iter().zip(&sent_a).enumerate() {
        assert_eq!(recorded.version, i as u64 + 1, "versions run 1, 2, 3, … without gaps");
        assert_eq!(recorded.stream_id, a);
        assert_same_event(recorded, sent);
    }
    assert_eq!(log.stream_version(&a).await.expect("version"), 6);
    assert_eq!(log.stream_version(&b).await.expect("version"), 3);

    let all = read_all_of(log.as_ref(), &[&a, &b]).await;
    assert_eq!(all.len(), sent_all.len());
    for (recorded, (stream_id, sent)) in all.iter().zip(&sent_all) {
        assert_eq!(&recorded.stream_id, stream_id, "global order is append order");
        assert_same_event(recorded, sent);
    }
    assert!(all.windows(2).all(|w| w[0].position < w[1].position), "positions increase");
}

/// `NoStream`, `Exact` and `Any` are enforced, conflicts are typed with expected and actual,
/// and a refused append writes nothing.
pub async fn optimistic_concurrency(backend: &dyn Backend) {
    let log = backend.open().await;
    let s = stream(&category());
    let conflict =
        |result: Result<_, LogError>, want_expected: ExpectedVersion, want_actual: u64| match result {
            Err(LogError::Conflict { stream_id, expected, actual }) => {
                assert_eq!(stream_id, s);
                assert_eq!(expected, want_expected);
                assert_eq!(actual, want_actual);
            }
            other => panic!("expected a conflict, got {other:?}"),
        };

    conflict(log.append(&s, ExpectedVersion::Exact(1), events("a", 1)).await, ExpectedVersion::Exact(1), 0);
    let first = log.append(&s, ExpectedVersion::NoStream, events("a", 1)).await.expect("create");
    assert_eq!((first.first_version, first.last_version), (1, 1));
    conflict(log.append(&s, ExpectedVersion::NoStream, events("a", 1)).await, ExpectedVersion::NoStream, 1);
    let second = log.append(&s, ExpectedVersion::Exact(1), events("a", 2)).await.expect("exact");
    assert_eq!((second.first_version, second.last_version), (2, 3));
    assert!(second.last_position > first.last_position);
    conflict(log.append(&s, ExpectedVersion::Exact(1), events("a", 1)).await, ExpectedVersion::Exact(1), 3);
    conflict(log.append(&s, ExpectedVersion::Exact(4), events("a", 1)).await, ExpectedVersion::Exact(4), 3);
    let third = log.append(&s, ExpectedVersion::Any, events("a", 1)).await.expect("any");
    assert_eq!(third.first_version, 4);
    assert_eq!(log.stream_version(&s).await.expect("version"), 4);
    assert_eq!(log.read_stream(&s, 1, 100).await.expect("read").len(), 4, "conflicts wrote nothing");
}

/// Eight writers race 1,000 single-event appends on one stream, each reading the version and
/// appending with `Exact`, retrying on conflict: every version from 1 to 1,000 is taken exactly
/// once and every writer's events are there once.
pub async fn concurrent_writers(backend: &dyn Backend) {
    const WRITERS: usize = 8;
    const TOTAL: usize = 1_000;
    let log = backend.open().await;
    let s = stream(&category());
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let log = log.clone();
        let s = s.clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for i in 0..TOTAL / WRITERS {
                let event = event("raced", &format!("writer {writer} event {i}"));
                append_at_next_version(log.as_ref(), &s, &event, writer).await;
                mine.push(event.id);
            }
            mine
        });
    }
    let mut sent = HashSet::new();
    while let Some(result) = tasks.join_next().await {
        let ids = result.expect("writer panicked");
        sent.extend(ids);
    }
    assert_eq!(sent.len(), TOTAL);
    let mut recorded = Vec::new();
    while recorded.len() < TOTAL + 1 {
        let page = log.read_stream(&s, recorded.len() as u64 + 1, 250).await.expect("read");
        if page.is_empty() {
            break;
        }
        recorded.extend(page);
    }
    assert_eq!(recorded.len(), TOTAL, "no version lost, none extra");
    for (i, event) in recorded.iter().enumerate() {
        assert_eq!(event.version, i as u64 + 1);
    }
    let ids: HashSet<EventId> = recorded.iter().map(|e| e.id).collect();
    assert_eq!(ids, sent, "every writer's events are there exactly once");
    assert_eq!(log.stream_version(&s).await.expect("version"), TOTAL as u64);
}

/// Appends `event` alone at the stream's next version, as a racing writer does: reads the
/// version, appends expecting exactly it, and on a conflict (someone else moved the stream
/// on) tries again. The version it won.
async fn append_at_next_version(log: &dyn EventLog, s: &StreamId, event: &NewEvent, writer: usize) -> u64 {
    loop {
        let version = log.stream_version(s).await.expect("version");
        let expected = if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
        match log.append(s, expected, vec![event.clone()]).await {
            Ok(outcome) => {
                assert!(!outcome.duplicate);
                assert_eq!(outcome.first_version, version + 1, "won exactly the version it expected");
                return outcome.first_version;
            }
            Err(LogError::Conflict { actual, .. }) => {
                assert!(actual > version, "a conflict means someone else moved the stream on");
            }
            Err(other) => panic!("writer {writer}: {other}"),
        }
    }
}

/// A batch that conflicts, or that holds one oversized event, writes none of its events.
pub async fn batch_atomicity(backend: &dyn Backend) {
    let log = backend.open().await;
    let s = stream(&category());
    log.append(&s, ExpectedVersion::NoStream, events("a", 2)).await.expect("append");

    let conflicting = events("b", 3);
    let result = log.append(&s, ExpectedVersion::Exact(1), conflicting.clone()).await;
    assert!(matches!(result, Err(LogError::Conflict { actual: 2, .. })), "{result:?}");

    let mut oversized = events("c", 3);
    oversized[2].payload = vec![0; EVENT_PAYLOAD_BYTES_MAX + 1];
    let result = log.append(&s, ExpectedVersion::Exact(2), oversized.clone()).await;
    assert!(matches!(result, Err(LogError::EventTooLarge { .. })), "{result:?}");

    let recorded = log.read_stream(&s, 1, 100).await.expect("read");
    assert_eq!(recorded.len(), 2, "refused batches wrote nothing");
    assert_eq!(log.stream_version(&s).await.expect("version"), 2);
    // The refused events are not recorded anywhere: appending them now works as new events.
    let outcome = log.append(&s, ExpectedVersion::Exact(2), conflicting).await.expect("append");
    assert!(!outcome.duplicate);
    assert_eq!((outcome.first_version, outcome.last_version), (3, 5));
    let at_limit = {
        let mut e = event("d", "");
        e.payload = vec![7; EVENT_PAYLOAD_BYTES_MAX];
        e
    };
    let outcome =
        log.append(&s, ExpectedVersion::Exact(5), vec![at_limit.clone()]).await.expect("at the limit");
    let read = log.read_stream(&s, outcome.first_version, 1).await.expect("read");
    assert_same_event(&read[0], &at_limit);
}

/// Appending a batch again (same first event id) returns the earlier outcome marked duplicate
/// and writes nothing, whatever the expected version.
pub async fn idempotent_reappend(backend: &dyn Backend) {
    let log = backend.open().await;
    let s = stream(&category());
    let batch = events("a", 3);
    let first = log.append(&s, ExpectedVersion::NoStream, batch.clone()).await.expect("append");
    assert!(!first.duplicate);
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any, ExpectedVersion::Exact(3)] {
        let again = log.append(&s, expected, batch.clone()).await.expect("re-append");
        assert!(again.duplicate, "re-append with {expected:?} is a duplicate");
        assert_eq!((again.first_version, again.last_version), (1, 3));
    }
    log.append(&s, ExpectedVersion::Exact(3), events("b", 1)).await.expect("append more");
    let again = log.append(&s, ExpectedVersion::Exact(4), batch.clone()).await.expect("re-append later");
    assert!(again.duplicate);
    assert_eq!(again.first_version, 1);
    let recorded = log.read_stream(&s, 1, 100).await.expect("read");
    assert_eq!(recorded.len(), 4, "duplicates wrote nothing");
    assert_eq!(log.stream_version(&s).await.expect("version"), 4);

    // The same batch on another stream is no re-append: its ids are taken.
    let other = stream(&category());
    for expected in [ExpectedVersion::Any, ExpectedVersion::NoStream] {
        match log.append(&other, expected, batch.clone()).await {
            Err(LogError::DuplicateEventId { event_id }) => assert_eq!(event_id, batch[0].id),
            result => panic!("another stream's event ids: {result:?}"),
        }
    }
    assert_eq!(log.stream_version(&other).await.expect("version"), 0, "nothing written");
}

/// Writers on two handles of one log (two connections' worth of state: pools, caches, for
/// SQLite two writer tasks on one file) race on one stream, and a batch whose later event id
/// is recorded already is refused whole: exactly one append wins each version, and the
/// backend's own uniqueness checks back the versions up.
pub async fn racing_handles(backend: &dyn Backend) {
    const WRITERS: usize = 4;
    const EACH: usize = 50;
    let logs = [backend.open().await, backend.open().await];
    let s = stream(&category());
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let log = logs[writer % 2].clone();
        let s = s.clone();
        tasks.spawn(async move {
            let mut won = Vec::new();
            for i in 0..EACH {
                let event = event("raced", &format!("writer {writer} event {i}"));
                won.push(append_at_next_version(log.as_ref(), &s, &event, writer).await);
            }
            won
        });
    }
    let mut versions = Vec::new();
    while let Some(won) = tasks.join_next().await {
        versions.extend(won.expect("writer panicked"));
    }
    versions.sort_unstable();
    let want: Vec<u64> = (1..=(WRITERS * EACH) as u64).collect();
    assert_eq!(versions, want, "each version won exactly once");
    for log in &logs {
        assert_eq!(log.stream_version(&s).await.expect("version"), (WRITERS * EACH) as u64);
    }

    // A batch whose first id is new but whose second is recorded (by the other handle).
    let taken = log_event_id(&logs[1], &s).await;
    let mut batch = events("late", 3);
    batch[1].id = taken;
    let before = logs[0].stream_version(&s).await.expect("version");
    match logs[0].append(&s, ExpectedVersion::Any, batch).await {
        Err(LogError::DuplicateEventId { event_id }) => assert_eq!(event_id, taken),
        result => panic!("a batch reusing a recorded id: {result:?}"),
    }
    let after = logs[1].stream_version(&s).await.expect("version");
    if backend.atomic_batches() {
        assert_eq!(after, before, "nothing written");
    } else {
        assert!(after <= before + 1, "at most the events before the refused one are written");
    }
}

/// The id of the stream's first event, read through `log`.
async fn log_event_id(log: &Arc<dyn EventLog>, s: &StreamId) -> EventId {
    log.read_stream(s, 1, 1).await.expect("read")[0].id
}

/// A deleted subscription is gone with its position: opened again under its name it starts
/// afresh; deleting it again, or a name never used, answers that nothing was there.
pub async fn subscription_deletion(backend: &dyn Backend) {
    let log = backend.open().await;
    let category = category();
    let s = stream(&category);
    let sent = events("a", 3);
    log.append(&s, ExpectedVersion::NoStream, sent.clone()).await.expect("append");
    let name = subscription_name("deleted");
    let options = || SubscribeOptions { filter: Filter::category(&category), start: StartFrom::Beginning };
    let mut sub = log.subscribe(&name, options()).await.expect("subscribe");
    for want in &sent {
        let delivery = next(&mut sub).await;
        assert_same_event(&delivery.event, want);
        sub.ack(delivery.event.position).await.expect("ack");
    }
    drop(sub);
    assert!(log.delete_subscription(&name).await.expect("delete"), "it existed");
    assert!(!log.delete_subscription(&name).await.expect("delete again"), "gone already");
    assert!(!log.delete_subscription(&subscription_name("never")).await.expect("delete unknown"));
    let mut again = log.subscribe(&name, options()).await.expect("subscribe again");
    assert_same_event(&next(&mut again).await.event, &sent[0]);
    match log.delete_subscription("has space").await {
        Err(LogError::InvalidSubscriptionName { .. }) => {}
        other => panic!("an invalid name: {other:?}"),
    }
}

/// `read_stream` and `read_all` start where asked (inclusive) and return at most `limit`.
pub async fn reads_from_positions_with_limits(backend: &dyn Backend) {
    let log = backend.open().await;
    let s = stream(&category());
    let sent = events("a", 10);
    log.append(&s, ExpectedVersion::NoStream, sent.clone()).await.expect("append");

    let middle = log.read_stream(&s, 4, 3).await.expect("read");
    assert_eq!(middle.iter().map(|e| e.version).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert_same_event(&middle[0], &sent[3]);
    assert_eq!(log.read_stream(&s, 9, 100).await.expect("read").len(), 2);
    assert!(log.read_stream(&s, 11, 100).await.expect("read").is_empty());
    assert!(log.read_stream(&s, 1, 0).await.expect("read").is_empty(), "limit 0 reads nothing");
    let unknown = stream(&category());
    assert!(log.read_stream(&unknown, 1, 10).await.expect("read").is_empty());
    assert_eq!(log.stream_version(&unknown).await.expect("version"), 0);

    let fifth = middle[1].position;
    let page = log.read_all(fifth, 3).await.expect("read_all");
    assert_eq!(page.len(), 3);
    assert_eq!(page[0].id, sent[4].id, "from is inclusive");
    assert!(page.windows(2).all(|w| w[0].position < w[1].position));
    let after_fifth = log.read_all(fifth + 1, 1).await.expect("read_all");
    assert_eq!(after_fifth[0].id, sent[5].id);
    let last = log.read_stream(&s, 10, 1).await.expect("read")[0].position;
    let tail = log.read_all(last, 100).await.expect("read_all");
    assert_eq!(tail[0].id, sent[9].id);
    assert!(tail.iter().skip(1).all(|e| e.stream_id != s));
}

/// A subscription delivers existing events in order, then wakes promptly for a new append.
pub async fn subscription_delivers_in_order_and_wakes(backend: &dyn Backend) {
    let log = backend.open().await;
    let category = category();
    let s = stream(&category);
    let sent = events("a", 5);
    log.append(&s, ExpectedVersion::NoStream, sent.clone()).await.expect("append");
    let options = SubscribeOptions { filter: Filter::category(&category), start: StartFrom::Beginning };
    let mut sub = log.subscribe(&subscription_name("order"), options).await.expect("subscribe");
    let mut last_position = 0;
    for (i, want) in sent.iter().enumerate() {
        let delivery = next(&mut sub).await;
        assert_eq!(delivery.attempt, 1);
        assert_eq!(delivery.event.version, i as u64 + 1);
        assert!(delivery.event.position > last_position);
        last_position = delivery.event.position;
        assert_same_event(&delivery.event, want);
        sub.ack(delivery.event.position).await.expect("ack");
    }
    for round in 0..3 {
        let waiting = tokio::spawn(async move {
            let delivery = next(&mut sub).await;
            (delivery, Instant::now(), sub)
        });
        tokio::time::sleep(Duration::from_millis(200)).await; // let it wait
        let new = event("b", &format!("late {round}"));
        let appended_at = Instant::now();
        log.append(&s, ExpectedVersion::Any, vec![new.clone()]).await.expect("append");
        let (delivery, delivered_at, back) = waiting.await.expect("subscriber");
        sub = back;
        assert_same_event(&delivery.event, &new);
        let latency = delivered_at.saturating_duration_since(appended_at);
        assert!(latency < WAKE_LATENCY_MAX, "woken after {latency:?}: subscribers must not wait for a poll");
        sub.ack(delivery.event.position).await.expect("ack");
    }
}

/// Reopened under the same name after the log itself was reopened (a process restart), a
/// subscription does not deliver what was acknowledged below its first unacknowledged event,
/// and delivers everything not acknowledged.
pub async fn subscription_resumes_after_restart(backend: &dyn Backend) {
    let category = category();
    let s = stream(&category);
    let name = subscription_name("resume");
    let options = SubscribeOptions { filter: Filter::category(&category), start: StartFrom::Beginning };
    let sent = events("a", 6);
    {
        let log = backend.open().await;
        log.append(&s, ExpectedVersion::NoStream, sent.clone()).await.expect("append");
        let mut sub = log.subscribe(&name, options.clone()).await.expect("subscribe");
        for (i, want) in sent.iter().enumerate() {
            let delivery = next(&mut sub).await;
            assert_eq!(delivery.event.id, want.id);
            // acknowledge 1, 2, 3 and 5; leave 4 and 6 unacknowledged
            if i != 3 && i != 5 {
                sub.ack(delivery.event.position).await.expect("ack");
            }
        }
    }
    let log = backend.open().await;
    let later = event("a", "after restart");
    log.append(&s, ExpectedVersion::Exact(6), vec![later.clone()]).await.expect("append");
    let mut sub = log.subscribe(&name, options).await.expect("resubscribe");
    let seen = collect_until(&mut sub, later.id).await;
    let ids: Vec<EventId> = seen.iter().map(|e| e.id).collect();
    for acked in &sent[..3] {
        assert!(!ids.contains(&acked.id), "acknowledged event {} was delivered again", acked.id);
    }
    assert_eq!(ids.first(), Some(&sent[3].id), "resumes at the first unacknowledged event");
    assert!(ids.contains(&sent[5].id), "unacknowledged event 6 is delivered again");
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position), "still in order");
    // Everything is acknowledged now: a third incarnation sees only new events.
    drop(sub);
    let mut sub = log
        .subscribe(
            &name,
            SubscribeOptions { filter: Filter::category(&category), start: StartFrom::Beginning },
        )
        .await
        .expect("resubscribe");
    let newest = event("a", "newest");
    log.append(&s, ExpectedVersion::Exact(7), vec![newest.clone()]).await.expect("append");
    assert_eq!(next(&mut sub).await.event.id, newest.id);
}

/// A refused (nacked) event is delivered again with a higher attempt number.
pub async fn nack_redelivers(backend: &dyn Backend) {
    let log = backend.open().await;
    let category = category();
    let s = stream(&category);
    let sent = events("a", 2);
    log.append(&s, ExpectedVersion::NoStream, sent.clone()).await.expect("append");
    let options = SubscribeOptions { filter: Filter::category(&category), start: StartFrom::Beginning };
    let mut sub = log.subscribe(&subscription_name("nack"), options).await.expect("subscribe");
    let first = next(&mut sub).await;
    assert_eq!((first.event.id, first.attempt), (sent[0].id, 1));
    sub.nack(first.event.position).await.expect("nack");
    let mut second_seen = false;
    let redelivered = loop {
        let delivery = next(&mut sub).await;
        if delivery.event.id == sent[0].id {
            break delivery;
        }
        assert_eq!(delivery.event.id, sent[1].id, "only the two events exist");
        second_seen = true;
        sub.ack(delivery.event.position).await.expect("ack");
    };
    assert!(redelivered.attempt >= 2, "a redelivery counts its attempts: {}", redelivered.attempt);
    assert_same_event(&redelivered.event, &sent[0]);
    sub.ack(redelivered.event.position).await.expect("ack");
    if !second_seen {
        let second = next(&mut sub).await;
        assert_eq!((second.event.id, second.attempt), (sent[1].id, 1));
        sub.ack(second.event.position).await.expect("ack");
    }
}

/// Filters by category and by event type deliver exactly the matching events.
pub async fn filters(backend: &dyn Backend) {
    let log = backend.open().await;
    let (cat_a, cat_b) = (category(), category());
    let (a, b) = (stream(&cat_a), stream(&cat_b));
    let mut sent: Vec<(String, NewEvent)> = Vec::new();
    for round in 0..3 {
        for (s, cat) in [(&a, &cat_a), (&b, &cat_b)] {
            for kind in ["x_happened", "y_happened"] {
                let e = event(kind, &format!("{cat} {kind} {round}"));
                log.append(s, ExpectedVersion::Any, vec![e.clone()]).await.expect("append");
                sent.push((cat.clone(), e));
            }
        }
    }
    // A closing marker of each type on each stream, so every filter has a last event to wait for.
    let mut markers = Vec::new();
    for (s, cat) in [(&a, &cat_a), (&b, &cat_b)] {
        for kind in ["x_happened", "y_happened"] {
            let e = event(kind, "marker");
            log.append(s, ExpectedVersion::Any, vec![e.clone()]).await.expect("append");
            sent.push((cat.clone(), e.clone()));
            markers.push((cat.clone(), e));
        }
    }
    let cases = [
        (Filter::category(&cat_a), Some(cat_a.clone()), None),
        (
            Filter {
                categories: vec![cat_a.clone(), cat_b.clone()],
                event_types: vec![event_type("x_happened")],
            },
            None,
            Some("x_happened"),
        ),
        (
            Filter::category(&cat_b).with_types([event_type("y_happened")]),
            Some(cat_b.clone()),
            Some("y_happened"),
        ),
    ];
    for (i, (filter, want_category, want_type)) in cases.into_iter().enumerate() {
        let matches = |cat: &String, e: &NewEvent| {
            want_category.as_ref().is_none_or(|c| c == cat)
                && want_type.is_none_or(|t| e.event_type.as_str() == t)
        };
        let expected: Vec<EventId> = sent.iter().filter(|(c, e)| matches(c, e)).map(|(_, e)| e.id).collect();
        let last = *expected.last().expect("some event matches");
        let options = SubscribeOptions { filter: filter.clone(), start: StartFrom::Beginning };
        let mut sub =
            log.subscribe(&subscription_name(&format!("filter{i}")), options).await.expect("subscribe");
        let seen: Vec<EventId> = collect_until(&mut sub, last).await.iter().map(|e| e.id).collect();
        assert_eq!(seen, expected, "filter {filter:?} delivers exactly its events, in order");
    }
}

/// `StartFrom::End` skips what exists; `StartFrom::Position` starts there (inclusive); a name
/// with a checkpoint ignores its start option.
pub async fn start_from_end_and_position(backend: &dyn Backend) {
    let log = backend.open().await;
    let category = category();
    let s = stream(&category);
    let old = events("a", 3);
    log.append(&s, ExpectedVersion::NoStream, old.clone()).await.expect("append");
    let filter = Filter::category(&category);

    let end_name = subscription_name("end");
    let mut from_end = log
        .subscribe(&end_name, SubscribeOptions { filter: filter.clone(), start: StartFrom::End })
        .await
        .expect("subscribe");
    let new = events("b", 2);
    log.append(&s, ExpectedVersion::Exact(3), new.clone()).await.expect("append");
    let first = next(&mut from_end).await;
    assert_eq!(first.event.id, new[0].id, "StartFrom::End delivers only later events");
    from_end.ack(first.event.position).await.expect("ack");
    drop(from_end);
    // Reopened with Beginning, the existing checkpoint wins.
    let mut again = log
        .subscribe(&end_name, SubscribeOptions { filter: filter.clone(), start: StartFrom::Beginning })
        .await
        .expect("resubscribe");
    assert_eq!(next(&mut again).await.event.id, new[1].id, "a checkpoint overrides the start option");

    let second = log.read_stream(&s, 2, 1).await.expect("read")[0].position;
    let mut from_position = log
        .subscribe(
            &subscription_name("position"),
            SubscribeOptions { filter, start: StartFrom::Position(second) },
        )
        .await
        .expect("subscribe");
    let delivery = next(&mut from_position).await;
    assert_eq!(delivery.event.id, old[1].id, "StartFrom::Position is inclusive");
}

/// Bad input gets typed errors and writes nothing.
pub async fn bad_input(backend: &dyn Backend) {
    let log = backend.open().await;
    let s = stream(&category());
    let refused = |result: Result<_, LogError>, what: &str, check: fn(&LogError) -> bool| match result {
        Err(error) => {
            assert!(check(&error), "{what}: unexpected error {error:?}");
            assert!(error.is_bad_input(), "{what}: {error:?} is the caller's fault");
        }
        Ok(outcome) => panic!("{what}: accepted ({outcome:?})"),
    };
    refused(log.append(&s, ExpectedVersion::Any, Vec::new()).await, "empty batch", |e| {
        matches!(e, LogError::EmptyBatch)
    });
    let mut oversized = event("a", "");
    oversized.payload = vec![1; EVENT_PAYLOAD_BYTES_MAX + 1];
    let oversized_id = oversized.id;
    match log.append(&s, ExpectedVersion::Any, vec![oversized]).await {
        Err(LogError::EventTooLarge { event_id, bytes, max }) => {
            assert_eq!(
                (event_id, bytes, max),
                (oversized_id, EVENT_PAYLOAD_BYTES_MAX + 1, EVENT_PAYLOAD_BYTES_MAX)
            );
        }
        other => panic!("oversized event: {other:?}"),
    }
    refused(
        log.append(&s, ExpectedVersion::Any, events("a", APPEND_BATCH_COUNT_MAX + 1)).await,
        "too many events",
        |e| matches!(e, LogError::BatchTooLarge { .. }),
    );
    let twice = event("a", "twice");
    refused(
        log.append(&s, ExpectedVersion::Any, vec![twice.clone(), event("a", "other"), twice]).await,
        "duplicate id in batch",
        |e| matches!(e, LogError::DuplicateInBatch { .. }),
    );
    for name in ["", "has space", "dotted.name", "wild*", &"n".repeat(65)] {
        let result = log.subscribe(name, SubscribeOptions::default()).await;
        match result {
            Err(LogError::InvalidSubscriptionName { name: given }) => assert_eq!(given, name),
            Err(other) => panic!("subscription name {name:?}: unexpected error {other:?}"),
            Ok(_) => panic!("subscription name {name:?} accepted"),
        }
    }
    for category in ["", "Task", "task.x", ">", "*"] {
        let options = SubscribeOptions { filter: Filter::category(category), start: StartFrom::Beginning };
        match log.subscribe(&subscription_name("filtered"), options).await {
            Err(LogError::InvalidFilter { reason }) => assert!(reason.contains("category"), "{reason}"),
            Err(other) => panic!("category {category:?}: unexpected error {other:?}"),
            Ok(_) => panic!("category {category:?} accepted"),
        }
    }
    for bad in ["", "task", "Task-1", "task-a b", "task-a.b", "task-*", "task->"] {
        // A stream id is checked where it is made, from text or from JSON, so the log is
        // never asked to append to an invalid one.
        assert!(
            matches!(StreamId::new(bad), Err(events::Error::InvalidStreamId { .. })),
            "stream id {bad:?} is refused before it reaches the log"
        );
        assert!(serde_json::from_value::<StreamId>(bad.into()).is_err(), "{bad:?} from JSON");
    }
    assert_eq!(log.stream_version(&s).await.expect("version"), 0, "nothing was written");
    assert!(log.read_stream(&s, 1, 10).await.expect("read").is_empty());
    // A full batch at the limit is fine.
    let full = events("a", APPEND_BATCH_COUNT_MAX);
    let outcome = log.append(&s, ExpectedVersion::NoStream, full).await.expect("a batch at the limit");
    assert_eq!(outcome.last_version, APPEND_BATCH_COUNT_MAX as u64);
}
