//! The archive stays complete and gap-free with several archivers on one consumer and under
//! faults: an archiver killed mid-batch, nats-server killed and started again, the archive's
//! database refusing connections, the JetStream stream deleted and created again. Nothing is
//! dead-lettered for any of these, and [`nats::compare`] finds the archive equal to JetStream
//! (and finds it when it is not). Real nats-server, SQLite file and PostgreSQL throughout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{
    EventId, EventLog, EventType, ExpectedVersion, Filter, LogError, Metadata, NewEvent, StartFrom, StreamId,
};
use nats::{
    ARCHIVER_SUBSCRIPTION, Archive, ArchivedLog, Archiver, ArchiverSnapshot, Divergence, NatsLog,
    NatsLogConfig, compare, retire_archived_sequences,
};
use sqlx::{AssertSqlSafe, Connection, Executor};
use testkit::nats_server::NatsServer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for the archive to catch up before it fails.
const CATCH_UP: Duration = Duration::from_secs(60);

/// Short waits, so that events held by a killed archiver come back within the test.
fn config(url: String) -> NatsLogConfig {
    NatsLogConfig {
        ack_wait: Duration::from_secs(2),
        redelivery_backoff: vec![Duration::from_secs(1)],
        request_timeout: Duration::from_secs(2),
        ..NatsLogConfig::new(url)
    }
}

fn event(i: usize) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("archived_thing").unwrap(),
        schema_version: 1,
        payload: rmp_serde::to_vec_named(&i).unwrap(),
        metadata: Metadata::now("archivers-test"),
    }
}

/// Where an archive lives: opened again by every "process" of a test.
#[derive(Clone, Debug)]
struct ArchiveAt {
    url: String,
    dir: Option<Arc<tempfile::TempDir>>,
}

impl ArchiveAt {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("archive.db").display());
        Self { url, dir: Some(Arc::new(dir)) }
    }

    async fn postgres() -> Self {
        Self { url: testkit::postgres::fresh_database_url().await.unwrap(), dir: None }
    }

    /// Another, empty archive on the same kind of database.
    async fn another(&self) -> Self {
        if self.dir.is_some() { Self::sqlite() } else { Self::postgres().await }
    }

    async fn open(&self) -> store::SqlLog {
        store::SqlLog::open(&self.url).await.unwrap()
    }
}

/// An archiver as one `pantheon up` process runs it: its own NATS connection and archive
/// handle, supervised, until `stop`.
struct Process {
    stop: CancellationToken,
    status: Arc<nats::ArchiverStatus>,
    task: JoinHandle<nats::ArchiverReport>,
}

async fn start_archiver(nats_url: &str, archive: &ArchiveAt) -> Process {
    let log = Arc::new(NatsLog::connect(config(nats_url.to_string())).await.unwrap());
    let archiver = Archiver::new(log, Arc::new(archive.open().await));
    let stop = CancellationToken::new();
    let status = archiver.status();
    let until = stop.clone();
    let task = tokio::spawn(async move { archiver.run_supervised(until.cancelled_owned()).await });
    Process { stop, status, task }
}

impl Process {
    async fn stop(self) -> nats::ArchiverReport {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}

/// Appends `count` events over `streams`, from `writers` tasks at once, in batches of one to
/// three, retrying what a server outage refuses; returns how many were appended.
async fn append_concurrently(
    log: Arc<NatsLog>,
    prefix: &str,
    streams: usize,
    writers: usize,
    count: usize,
) -> usize {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let log = Arc::clone(&log);
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut appended = 0;
            let mut i = writer;
            while i < count {
                let stream = StreamId::new(format!("{prefix}-{}", i % streams)).unwrap();
                let batch: Vec<NewEvent> = (0..1 + i % 3).map(|k| event(i * 10 + k)).collect();
                let size = batch.len();
                let mut tries = 0;
                loop {
                    match log.append(&stream, ExpectedVersion::Any, batch.clone()).await {
                        Ok(_) => break,
                        Err(LogError::Backend(error)) => {
                            tries += 1;
                            assert!(tries < 200, "append kept failing: {error}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(other) => panic!("append: {other}"),
                    }
                }
                appended += size;
                i += writers;
            }
            appended
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

/// Waits until `compare` finds the archive equal to JetStream with nothing pending, and
/// returns that comparison.
async fn caught_up(log: &NatsLog, archive: &dyn Archive) -> nats::ArchiveComparison {
    let start = Instant::now();
    loop {
        let comparison = compare(log, archive).await.unwrap();
        let (_, last) = log.bounds().await.unwrap();
        if comparison.is_consistent() && comparison.pending_count == 0 && comparison.jetstream_last == last {
            return comparison;
        }
        assert!(start.elapsed() < CATCH_UP, "the archive did not catch up: {comparison:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Messages in the dead-letter stream.
async fn dead_letters(log: &NatsLog) -> u64 {
    let mut dead = log.jetstream().get_stream(&log.config().dead_letter_stream_name).await.unwrap();
    dead.info().await.unwrap().state.messages
}

/// Every JetStream event is in the archive under its sequence, as it is.
async fn assert_archive_equals_jetstream(log: &NatsLog, archive: &dyn Archive) {
    let (first, last) = log.bounds().await.unwrap();
    let mut from = first;
    let mut count = 0;
    while from <= last {
        let live = log.read_all(from, 500).await.unwrap();
        let Some(page_last) = live.last().map(|e| e.position) else { break };
        let mut archived = Vec::new();
        let mut next = from;
        while next <= page_last {
            let page = archive.read_imported(next, page_last + 1, 500).await.unwrap();
            let Some(end) = page.last().map(|e| e.position) else { break };
            next = end + 1;
            archived.extend(page);
        }
        assert_eq!(archived, live, "the archive holds JetStream's events {from}..={page_last} as they are");
        count += live.len();
        from = page_last + 1;
    }
    assert_eq!(count as u64, last - first + 1);
}

/// Three archivers on one consumer while eight writers append to forty streams; one archiver
/// is killed mid-way (its held events come back after the ack wait). The archiver consumer
/// existed before with a subscription's delivery limit, which the archivers lift.
async fn concurrent_archivers_archive_everything(archive: ArchiveAt) {
    let server = NatsServer::start().unwrap();
    let log = Arc::new(NatsLog::connect(config(server.url())).await.unwrap());
    // The consumer as an archiver of an earlier version left it: a plain subscription.
    let options = events::SubscribeOptions { filter: Filter::all(), start: StartFrom::Beginning };
    drop(log.subscribe(ARCHIVER_SUBSCRIPTION, options).await.unwrap());

    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(start_archiver(&server.url(), &archive).await);
    }
    let writing = tokio::spawn(append_concurrently(Arc::clone(&log), "busy", 40, 8, 1_500));
    // Let the archivers get going, then kill one: it holds a batch it never acknowledges.
    let start = Instant::now();
    while processes[0].status.snapshot().report.imported == 0 {
        assert!(start.elapsed() < CATCH_UP, "the first archiver never archived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = processes.remove(0);
    killed.task.abort();
    let appended = writing.await.unwrap();

    let reader = archive.open().await;
    let comparison = caught_up(&log, &reader).await;
    assert_eq!(comparison.matching_count, appended as u64);
    assert_archive_equals_jetstream(&log, &reader).await;
    assert!(reader.version_gaps(10).await.unwrap().is_empty());
    assert_eq!(dead_letters(&log).await, 0, "nothing was dead-lettered");
    let stream = log.jetstream().get_stream("PANTHEON").await.unwrap();
    let info = stream.consumer_info(ARCHIVER_SUBSCRIPTION).await.unwrap();
    assert_eq!((info.config.max_deliver, info.config.backoff.len()), (-1, 0), "no delivery limit");

    for process in processes {
        let report = process.stop().await;
        assert_eq!((report.refused, report.not_events), (0, 0), "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_archivers_archive_everything_on_sqlite() {
    concurrent_archivers_archive_everything(ArchiveAt::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_archivers_archive_everything_on_postgres() {
    concurrent_archivers_archive_everything(ArchiveAt::postgres().await).await;
}

/// nats-server is killed for longer than a request timeout and started again while the
/// supervised archiver runs and events keep coming: the archiver fails, starts again, and
/// catches up; its status says what happened and how far behind it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_archiver_survives_a_nats_restart() {
    let mut server = NatsServer::start().unwrap();
    let log = Arc::new(NatsLog::connect(config(server.url())).await.unwrap());
    let archive = ArchiveAt::sqlite();
    let process = start_archiver(&server.url(), &archive).await;
    let reader = archive.open().await;

    append_concurrently(Arc::clone(&log), "before", 10, 2, 100).await;
    caught_up(&log, &reader).await;

    server.kill();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    server.resume().unwrap();
    let appended = append_concurrently(Arc::clone(&log), "after", 10, 2, 100).await;
    assert!(appended >= 100);
    let comparison = caught_up(&log, &reader).await;
    assert_archive_equals_jetstream(&log, &reader).await;

    let start = Instant::now();
    let snapshot: ArchiverSnapshot = loop {
        let snapshot = process.status.snapshot();
        let lag = snapshot.lag.unwrap_or_default();
        if snapshot.running && lag.unarchived_count == 0 && lag.archived_through == comparison.jetstream_last
        {
            break snapshot;
        }
        assert!(start.elapsed() < CATCH_UP, "the lag never read zero: {snapshot:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(snapshot.restarts >= 1, "the archiver was started again: {snapshot:?}");
    assert!(snapshot.last_error.is_some(), "{snapshot:?}");
    assert_eq!(snapshot.last_archived_sequence, comparison.jetstream_last);
    assert_eq!(dead_letters(&log).await, 0);
    let report = process.stop().await;
    assert_eq!(report.refused + report.not_events, 0);
    let lag = nats::read_archiver_lag(&log).await.unwrap();
    assert_eq!((lag.unarchived_count, lag.archived_through), (0, comparison.jetstream_last));
}

/// The archive's PostgreSQL refuses connections for a while (and drops the ones it had):
/// events appended meanwhile are sent back with growing delays, not dead-lettered, and are
/// archived once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_delays_but_loses_nothing() {
    let server = NatsServer::start().unwrap();
    let log = Arc::new(NatsLog::connect(config(server.url())).await.unwrap());
    let archive = ArchiveAt::postgres().await;
    let process = start_archiver(&server.url(), &archive).await;
    let (admin_url, database) =
        archive.url.rsplit_once('/').map(|(root, db)| (format!("{root}/postgres"), db.to_string())).unwrap();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();

    append_concurrently(Arc::clone(&log), "steady", 5, 1, 20).await;
    let reader = archive.open().await;
    caught_up(&log, &reader).await;
    drop(reader);

    // The test's own database name (digits, letters and underscores): safe to format in.
    admin
        .execute(AssertSqlSafe(format!("ALTER DATABASE {database} WITH ALLOW_CONNECTIONS false")))
        .await
        .unwrap();
    admin
        .execute(AssertSqlSafe(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        )))
        .await
        .unwrap();
    append_concurrently(Arc::clone(&log), "outage", 5, 1, 40).await;
    let start = Instant::now();
    while process.status.snapshot().report.retried == 0 {
        assert!(start.elapsed() < CATCH_UP, "the archiver never met the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    admin
        .execute(AssertSqlSafe(format!("ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true")))
        .await
        .unwrap();

    let reader = archive.open().await;
    caught_up(&log, &reader).await;
    assert_archive_equals_jetstream(&log, &reader).await;
    assert_eq!(dead_letters(&log).await, 0, "an outage dead-letters nothing");
    let snapshot = process.status.snapshot();
    assert!(
        snapshot.last_error.as_deref().is_some_and(|e| e.contains("archive database failed")),
        "{snapshot:?}"
    );
    let report = process.stop().await;
    assert_eq!(report.refused + report.not_events, 0, "{report:?}");
}

/// `compare` finds an event the archive lacks, an event the archive holds differently, and an
/// archived event where JetStream has none; events the archiver has not reached are pending.
async fn compare_finds_divergences(archive: ArchiveAt) {
    let server = NatsServer::start().unwrap();
    let log = Arc::new(NatsLog::connect(config(server.url())).await.unwrap());
    let complete = archive.open().await;
    let process = start_archiver(&server.url(), &archive).await;
    append_concurrently(Arc::clone(&log), "checked", 4, 1, 30).await;
    caught_up(&log, &complete).await;
    process.stop().await;

    // A second archive filled by hand with every event but one, and one that differs.
    let partial_at = archive.another().await;
    let partial = partial_at.open().await;
    let everything = log.read_all(1, 1_000).await.unwrap();
    let (left_out, changed) = (&everything[7], &everything[12]);
    for event in &everything {
        if event.id == left_out.id {
            continue;
        }
        let mut copy = event.clone();
        if event.id == changed.id {
            copy.id = EventId::new();
        }
        partial.import(&copy).await.unwrap();
    }
    let comparison = compare(&log, &partial).await.unwrap();
    assert_eq!(comparison.divergence_count, 2, "{comparison:?}");
    assert_eq!(comparison.compared_count, everything.len() as u64);
    assert_eq!(comparison.matching_count, everything.len() as u64 - 2);
    assert!(comparison.divergences.contains(&Divergence::Missing {
        sequence: left_out.position,
        stream_id: left_out.stream_id.clone(),
        version: left_out.version,
        event_id: left_out.id,
    }));
    assert!(
        comparison
            .divergences
            .iter()
            .any(|d| matches!(d, Divergence::SequenceTaken { sequence, jetstream, .. }
            if *sequence == changed.position && *jetstream == changed.id)),
        "{comparison:?}"
    );

    // An event archived at a sequence JetStream has not reached.
    let mut ahead = everything[0].clone();
    ahead.position = 10_000;
    ahead.version = 1_000;
    ahead.id = EventId::new();
    partial.import(&ahead).await.unwrap();
    let comparison = compare(&log, &partial).await.unwrap();
    assert!(
        comparison
            .divergences
            .iter()
            .any(|d| matches!(d, Divergence::NotInJetStream { sequence: 10_000, .. })),
        "{comparison:?}"
    );

    // The complete archive is consistent, and a new event, not archived yet, is pending.
    log.append(&StreamId::new("checked-0").unwrap(), ExpectedVersion::Any, vec![event(99)]).await.unwrap();
    let comparison = compare(&log, &complete).await.unwrap();
    assert!(comparison.is_consistent(), "{comparison:?}");
    assert_eq!((comparison.pending_count, comparison.matching_count), (1, everything.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_finds_divergences_on_sqlite() {
    compare_finds_divergences(ArchiveAt::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_finds_divergences_on_postgres() {
    compare_finds_divergences(ArchiveAt::postgres().await).await;
}

/// The JetStream stream is deleted and created again while the archiver runs: the new
/// stream's sequences are taken in the archive, so the archiver holds back (it dead-letters
/// nothing) and says why, until an operator retires the archive's sequences; then the new
/// stream is archived, and the whole history, old stream first, stays readable.
async fn a_recreated_stream_is_archived_after_retiring_sequences(archive: ArchiveAt) {
    let server = NatsServer::start().unwrap();
    let old_log = Arc::new(NatsLog::connect(config(server.url())).await.unwrap());
    let process = start_archiver(&server.url(), &archive).await;
    let reader = archive.open().await;
    append_concurrently(Arc::clone(&old_log), "old", 3, 1, 10).await;
    let old_events = old_log.read_all(1, 1_000).await.unwrap();
    caught_up(&old_log, &reader).await;

    old_log.jetstream().delete_stream("PANTHEON").await.unwrap();
    let log = Arc::new(NatsLog::connect(config(server.url())).await.unwrap());
    // More events than the old stream had: the last ones take free sequences at first.
    append_concurrently(Arc::clone(&log), "new", 3, 1, 14).await;
    let new_events = log.read_all(1, 1_000).await.unwrap();
    assert_eq!(new_events[0].position, 1, "the new stream numbers from 1 again");
    let start = Instant::now();
    loop {
        let snapshot = process.status.snapshot();
        if snapshot.last_error.as_deref().is_some_and(|e| e.contains("source position"))
            && snapshot.report.retried > 0
        {
            break;
        }
        assert!(start.elapsed() < CATCH_UP, "the archiver never met the taken sequences: {snapshot:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let comparison = compare(&log, &reader).await.unwrap();
    assert!(
        comparison.divergences.iter().any(|d| matches!(d, Divergence::SequenceTaken { .. })),
        "{comparison:?}"
    );
    assert_eq!(dead_letters(&log).await, 0, "taken sequences are not dead-lettered");

    let retired = retire_archived_sequences(&log, &reader).await.unwrap();
    assert_eq!(retired.generation, 1);
    assert!(retired.retired_count >= old_events.len() as u64);
    caught_up(&log, &reader).await;
    assert_archive_equals_jetstream(&log, &reader).await;
    assert_eq!(dead_letters(&log).await, 0);

    // The whole history: the old stream's events first, in their order, then the new ones.
    let history = ArchivedLog::new(Arc::clone(&log), Arc::new(archive.open().await));
    let mut replayed = Vec::new();
    history.replay_all(|e| replayed.push(e.id)).await.unwrap();
    let want: Vec<EventId> = old_events.iter().chain(&new_events).map(|e| e.id).collect();
    assert_eq!(replayed, want);
    let old_stream = reader.read_stream(&old_events[0].stream_id, 1, 100).await.unwrap();
    assert!(!old_stream.is_empty() && old_stream.iter().enumerate().all(|(i, e)| e.version == i as u64 + 1));
    process.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_stream_is_archived_after_retiring_sequences_on_sqlite() {
    a_recreated_stream_is_archived_after_retiring_sequences(ArchiveAt::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_stream_is_archived_after_retiring_sequences_on_postgres() {
    a_recreated_stream_is_archived_after_retiring_sequences(ArchiveAt::postgres().await).await;
}
