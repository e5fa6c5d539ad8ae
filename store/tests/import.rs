//! The archiver's idempotent import, keyed by stream and version, on both backends.

use events::{EventId, EventLog, EventType, ExpectedVersion, LogError, Metadata, RecordedEvent, StreamId};
use store::{ImportOutcome, SqlLog};

fn recorded(stream_id: &StreamId, version: u64, position: u64) -> RecordedEvent {
    RecordedEvent {
        stream_id: stream_id.clone(),
        version,
        position,
        id: EventId::new(),
        event_type: EventType::new("task_submitted").unwrap(),
        schema_version: 2,
        payload: vec![0x91, version as u8],
        metadata: Metadata::now("nats"),
    }
}

async fn import_is_idempotent_and_ordered(log: SqlLog) {
    let s = StreamId::new(format!("task-{}", EventId::new().0.simple())).unwrap();
    let first = recorded(&s, 1, 1_000);
    let second = recorded(&s, 2, 1_007);

    assert!(matches!(log.import(&first).await.unwrap(), ImportOutcome::Inserted { .. }));
    assert_eq!(log.import(&first).await.unwrap(), ImportOutcome::AlreadyPresent);
    match log.import(&recorded(&s, 3, 1_010)).await {
        Err(LogError::Conflict { expected: ExpectedVersion::Exact(2), actual: 1, .. }) => {}
        other => panic!("a gap must be a conflict, got {other:?}"),
    }
    let Ok(ImportOutcome::Inserted { position }) = log.import(&second).await else { panic!("second import") };
    match log.import(&recorded(&s, 2, 1_008)).await {
        Err(LogError::Corrupt { .. }) => {}
        other => panic!("another event at a taken version must be refused, got {other:?}"),
    }

    let read = log.read_stream(&s, 1, 10).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!((read[0].id, read[1].id), (first.id, second.id));
    assert_eq!(read[1].position, position, "positions are the SQL log's own");
    assert_eq!((read[1].payload.clone(), read[1].schema_version), (second.payload, 2));
    assert_eq!(read[1].metadata, second.metadata);
    // The imported stream continues with ordinary appends.
    let outcome = log
        .append(
            &s,
            ExpectedVersion::Exact(2),
            vec![events::NewEvent {
                id: EventId::new(),
                event_type: EventType::new("ingress_screened").unwrap(),
                schema_version: 1,
                payload: Vec::new(),
                metadata: Metadata::now("test"),
            }],
        )
        .await
        .unwrap();
    assert_eq!(outcome.first_version, 3);
}

#[tokio::test]
async fn sqlite_import() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    import_is_idempotent_and_ordered(SqlLog::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_in_memory_import() {
    import_is_idempotent_and_ordered(SqlLog::open("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn postgres_import() {
    let url = testkit::postgres::fresh_database_url().await.unwrap();
    import_is_idempotent_and_ordered(SqlLog::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    match SqlLog::open("mysql://user:secret@host/db").await {
        Err(store::Error::UnsupportedUrl { scheme }) => assert_eq!(scheme, "mysql"),
        other => panic!("expected an unsupported url error, got {other:?}"),
    }
}
