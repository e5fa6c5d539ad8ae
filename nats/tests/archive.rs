//! The archiver copies every JetStream event into the SQL store (SQLite here) exactly once, and
//! with a tiny retention the events JetStream dropped are still readable and replayable through
//! the fallback.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId};
use nats::{ArchivedLog, Archiver, NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

const STREAMS: usize = 5;
const PER_STREAM: usize = 20;
const RETAINED: i64 = 30;

fn event(i: usize) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("archived_thing").unwrap(),
        schema_version: 1,
        payload: rmp_serde::to_vec_named(&i).unwrap(),
        metadata: Metadata::now("archive-test"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_keeps_what_retention_drops() {
    let server = NatsServer::start().unwrap();
    let config = NatsLogConfig { max_messages: RETAINED, ..NatsLogConfig::new(server.url()) };
    let log = Arc::new(NatsLog::connect(config).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("archive.db").display());
    let archive = store::SqlLog::open(&url).await.unwrap();
    let archive_log = archive.clone().into_dyn();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let archiver = Archiver::new(log.clone(), Arc::new(archive.clone()));
    let running = tokio::spawn(async move {
        archiver
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    let streams: Vec<StreamId> = (0..STREAMS).map(|i| StreamId::new(format!("kept-{i}")).unwrap()).collect();
    let mut sent = Vec::new();
    // Append in rounds smaller than the retention, letting the archiver keep up: in production
    // retention is set far above the archiver's lag.
    for stream in &streams {
        for round in 0..PER_STREAM / 4 {
            let batch: Vec<NewEvent> = (0..4).map(|i| event(round * 4 + i)).collect();
            log.append(stream, ExpectedVersion::Any, batch.clone()).await.unwrap();
            sent.extend(batch.into_iter().map(|e| (stream.clone(), e.id)));
            let start = Instant::now();
            while archive_log.read_all(0, 10_000).await.unwrap().len() < sent.len() {
                assert!(start.elapsed() < Duration::from_secs(15), "the archiver fell behind");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stop.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.imported, (STREAMS * PER_STREAM) as u64);

    // JetStream kept only the newest events.
    let (first, last) = log.bounds().await.unwrap();
    assert_eq!(last - first + 1, RETAINED as u64);
    assert!(
        log.read_stream(&streams[0], 1, 100).await.unwrap().is_empty(),
        "stream 0 is gone from JetStream"
    );
    let partly = log.read_stream(&streams[STREAMS - 2], 1, 100).await.unwrap();
    assert_eq!(partly[0].version, 11, "the last but one stream kept only its newest events");

    // The archive holds every event exactly once.
    let archived = archive_log.read_all(0, 10_000).await.unwrap();
    assert_eq!(archived.len(), sent.len());
    let ids: HashSet<EventId> = archived.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), sent.len());

    // Through the fallback, every stream reads whole, in version order.
    let fallback = ArchivedLog::new(log.clone(), Arc::new(archive));
    for stream in &streams {
        let read = fallback.read_stream(stream, 1, 100).await.unwrap();
        let want: Vec<EventId> = sent.iter().filter(|(s, _)| s == stream).map(|(_, id)| *id).collect();
        assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), want, "{stream} reads whole");
        assert!(read.iter().enumerate().all(|(i, e)| e.version == i as u64 + 1));
        let tail = fallback.read_stream(stream, 7, 3).await.unwrap();
        assert_eq!(tail.iter().map(|e| e.version).collect::<Vec<_>>(), vec![7, 8, 9]);
    }
    // The whole history replays once, in order.
    let mut replayed = Vec::new();
    let count = fallback.replay_all(|e| replayed.push(e.id)).await.unwrap();
    assert_eq!(count as usize, sent.len());
    assert_eq!(replayed, sent.iter().map(|(_, id)| *id).collect::<Vec<_>>());

    // A stream JetStream forgot entirely continues its versions from the archive.
    assert_eq!(fallback.stream_version(&streams[0]).await.unwrap(), PER_STREAM as u64);
    let refused = fallback.append(&streams[0], ExpectedVersion::NoStream, vec![event(99)]).await;
    assert!(matches!(refused, Err(events::LogError::Conflict { actual, .. }) if actual == PER_STREAM as u64));
    let outcome = fallback
        .append(&streams[0], ExpectedVersion::Exact(PER_STREAM as u64), vec![event(100)])
        .await
        .unwrap();
    assert_eq!(outcome.first_version, PER_STREAM as u64 + 1);
}

/// Events appended for the seam tests: this many rounds of [`SEAM_BATCH`] events, the rounds
/// taking turns among [`STREAMS`] streams so JetStream's order interleaves them.
const SEAM_ROUNDS: usize = 20;
const SEAM_BATCH: usize = 5;

/// Pages through `history.read_all` from `from` with pages of `page` events until it answers
/// nothing; every page must be at most `page` long and continue the one before.
async fn read_all_paged(history: &ArchivedLog, from: u64, page: usize) -> Vec<events::RecordedEvent> {
    let mut from = from;
    let mut read = Vec::new();
    loop {
        let got = history.read_all(from, page).await.unwrap();
        let Some(last) = got.last() else { break };
        assert!(got.len() <= page, "a page of {page} answered {}", got.len());
        from = last.position + 1;
        read.extend(got);
    }
    read
}

/// With a retention of [`RETAINED`] messages, `read_all` from the beginning pages through the
/// whole history in JetStream's order: archived events below JetStream's first sequence carry
/// the sequences they had there, so paging by `last.position + 1` crosses into JetStream with
/// no gap and no repeat, whatever the page size. With JetStream emptied, the archive answers
/// alone.
async fn read_all_crosses_from_archive_to_jetstream(archive: store::SqlLog) {
    let server = NatsServer::start().unwrap();
    let config = NatsLogConfig { max_messages: RETAINED, ..NatsLogConfig::new(server.url()) };
    let stream_name = config.stream_name.clone();
    let log = Arc::new(NatsLog::connect(config).await.unwrap());

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let archiver = Archiver::new(log.clone(), Arc::new(archive.clone()));
    let running = tokio::spawn(async move {
        archiver
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    // An event of the SQL log's own, so its positions are not JetStream's sequences.
    let local = StreamId::new("local-0").unwrap();
    archive.append(&local, ExpectedVersion::NoStream, vec![event(0)]).await.unwrap();
    let streams: Vec<StreamId> = (0..STREAMS).map(|i| StreamId::new(format!("seam-{i}")).unwrap()).collect();
    // Every event in JetStream order (the order of the appends: one writer).
    let mut sent: Vec<EventId> = Vec::new();
    for round in 0..SEAM_ROUNDS {
        let batch: Vec<NewEvent> = (0..SEAM_BATCH).map(|i| event(round * SEAM_BATCH + i)).collect();
        sent.extend(batch.iter().map(|e| e.id));
        log.append(&streams[round % STREAMS], ExpectedVersion::Any, batch).await.unwrap();
        // Let the archiver keep up before retention drops anything it has not copied.
        let start = Instant::now();
        while archive.read_all(0, 10_000).await.unwrap().len() < 1 + sent.len() {
            assert!(start.elapsed() < Duration::from_secs(15), "the archiver fell behind");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().unwrap().imported, sent.len() as u64);

    let total = sent.len() as u64;
    let (first, last) = log.bounds().await.unwrap();
    assert_eq!((last, last - first + 1), (total, RETAINED as u64), "JetStream kept only the newest");
    let history = ArchivedLog::new(log.clone(), Arc::new(archive.clone()));
    let everything: Vec<u64> = (1..=total).collect();

    // Page sizes that end pages before, on and across the seam, and one that takes it all.
    for page in [1, 7, RETAINED as usize, 10_000] {
        let read = read_all_paged(&history, 1, page).await;
        assert_eq!(read.iter().map(|e| e.position).collect::<Vec<_>>(), everything, "pages of {page}");
        assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), sent, "pages of {page}");
    }
    // Position 0 is the beginning too.
    assert_eq!(history.read_all(0, 10_000).await.unwrap().len(), sent.len());
    // One page straddling the seam: the archive's last two, then JetStream's first three.
    let straddle = history.read_all(first - 2, 5).await.unwrap();
    assert_eq!(
        straddle.iter().map(|e| e.position).collect::<Vec<_>>(),
        (first - 2..first + 3).collect::<Vec<_>>()
    );
    let want = &sent[(first - 3) as usize..(first + 2) as usize];
    assert_eq!(straddle.iter().map(|e| e.id).collect::<Vec<_>>(), want);
    // Stream and version survive the trip through the archive.
    let archived = history.read_all(1, 1).await.unwrap();
    assert_eq!((archived[0].stream_id.clone(), archived[0].version), (streams[0].clone(), 1));
    // From inside JetStream, JetStream answers alone.
    let live = history.read_all(first + 1, 10_000).await.unwrap();
    assert_eq!(live.len(), RETAINED as usize - 1);
    assert!(history.read_all(total + 1, 10).await.unwrap().is_empty());
    // The archive's own positions are one past JetStream's (its own event came first).
    let own = archive.read_all(2, 1).await.unwrap();
    assert_eq!((own[0].id, own[0].position), (sent[0], 2));

    // JetStream emptied: the whole history comes from the archive, in the same positions.
    log.jetstream().get_stream(&stream_name).await.unwrap().purge().await.unwrap();
    assert_eq!(log.bounds().await.unwrap(), (0, 0));
    let read = read_all_paged(&history, 1, 9).await;
    assert_eq!(read.iter().map(|e| e.position).collect::<Vec<_>>(), everything);
    assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_all_crosses_the_seam_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("archive.db").display());
    read_all_crosses_from_archive_to_jetstream(store::SqlLog::open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_all_crosses_the_seam_on_postgres() {
    let url = testkit::postgres::fresh_database_url().await.unwrap();
    read_all_crosses_from_archive_to_jetstream(store::SqlLog::open(&url).await.unwrap()).await;
}

/// The pipeline asks "anything new?" of a task's stream on every event: when JetStream holds
/// the stream, the answer needs no archive, so an archive outage does not stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_new_is_answered_without_the_archive() {
    let server = NatsServer::start().expect("nats-server");
    let mut pg = testkit::PgServer::start().expect("postgres");
    let url = pg.fresh_database().await.expect("a database");
    let archive = store::SqlLog::open(&url).await.expect("archive");
    let live = Arc::new(NatsLog::connect(NatsLogConfig::new(server.url())).await.expect("connect"));
    let log = ArchivedLog::new(Arc::clone(&live), Arc::new(archive));
    let stream = StreamId::new("order-quiet").expect("stream");
    log.append(&stream, ExpectedVersion::NoStream, (0..3).map(event).collect()).await.expect("append");

    pg.stop(testkit::postgres::StopMode::Fast);
    let nothing = log.read_stream(&stream, 4, 100).await.expect("nothing new, without the archive");
    assert!(nothing.is_empty());
    let all = log.read_stream(&stream, 1, 100).await.expect("JetStream holds it all");
    assert_eq!(all.len(), 3);
    // A stream JetStream holds nothing of is the archive's to answer: it fails while the
    // archive is down, rather than answering "no such stream".
    let unknown = StreamId::new("order-elsewhere").expect("stream");
    assert!(log.read_stream(&unknown, 1, 100).await.is_err());
    pg.resume().expect("postgres again");
    assert!(log.read_stream(&unknown, 1, 100).await.expect("answered").is_empty());
}
