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
    let archiver = Archiver::new(log.clone(), Arc::new(archive));
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
    let fallback = ArchivedLog::new(log.clone(), archive_log.clone());
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
