//! The archiver's idempotent import, keyed by stream and version, in any order, on both
//! backends; source positions and their generations.

use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, RecordedEvent, StreamId};
use store::{ImportError, ImportOutcome, RetiredSourcePositions, SqlLog, VersionGap};

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

async fn import_is_idempotent_in_any_order(log: SqlLog) {
    let s = StreamId::new(format!("task-{}", EventId::new().0.simple())).unwrap();
    let first = recorded(&s, 1, 1_000);
    let second = recorded(&s, 2, 1_007);
    let third = recorded(&s, 3, 1_010);

    assert!(matches!(log.import(&first).await.unwrap(), ImportOutcome::Inserted { .. }));
    assert_eq!(log.import(&first).await.unwrap(), ImportOutcome::AlreadyPresent);
    // Out of order: version 3 before version 2 leaves a gap until 2 comes.
    assert!(matches!(log.import(&third).await.unwrap(), ImportOutcome::Inserted { .. }));
    let gap = VersionGap { stream_id: s.clone(), first: 2, last: 2 };
    assert_eq!(log.version_gaps(100).await.unwrap(), vec![gap]);
    let Ok(ImportOutcome::Inserted { position }) = log.import(&second).await else { panic!("second import") };
    assert!(log.version_gaps(100).await.unwrap().is_empty());
    match log.import(&recorded(&s, 2, 1_008)).await {
        Err(ImportError::VersionTaken { version: 2, archived, .. }) => {
            assert_eq!(archived, second.id.to_string())
        }
        other => panic!("another event at a taken version must be refused, got {other:?}"),
    }

    let read = log.read_stream(&s, 1, 10).await.unwrap();
    assert_eq!(read.len(), 3);
    assert_eq!((read[0].id, read[1].id, read[2].id), (first.id, second.id, third.id));
    assert_eq!(read[1].position, position, "positions are the SQL log's own");
    assert_eq!((read[1].payload.clone(), read[1].schema_version), (second.payload, 2));
    assert_eq!(read[1].metadata, second.metadata);
    // The imported stream continues with ordinary appends.
    let outcome = log
        .append(
            &s,
            ExpectedVersion::Exact(3),
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
    assert_eq!(outcome.first_version, 4);
}

/// Imports keep the position each event had in its source, and `read_imported` reads them
/// back by it: in source order, within `from..before`, answering source positions, never an
/// event appended here or imported without a position. A source position holds one event.
async fn imports_are_read_by_source_position(log: SqlLog) {
    let a = StreamId::new("task-a").unwrap();
    let b = StreamId::new("task-b").unwrap();
    let local = StreamId::new("task-local").unwrap();
    // Appended here first: positions here run one ahead of the source's order below.
    log.append(
        &local,
        ExpectedVersion::NoStream,
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
    // In source order, with gaps between the source's positions.
    let imported = [recorded(&a, 1, 3), recorded(&b, 1, 4), recorded(&a, 2, 5), recorded(&b, 2, 9)];
    for event in &imported {
        let Ok(ImportOutcome::Inserted { position }) = log.import(event).await else { panic!("import") };
        assert_ne!(position, event.position, "positions here are the SQL log's own");
    }
    let no_position = recorded(&StreamId::new("task-unpositioned").unwrap(), 1, 0);
    assert!(matches!(log.import(&no_position).await.unwrap(), ImportOutcome::Inserted { .. }));

    let read = |from, before, limit| {
        let log = log.clone();
        async move {
            let events = log.read_imported(from, before, limit).await.unwrap();
            events.iter().map(|e| (e.id, e.position)).collect::<Vec<_>>()
        }
    };
    let answer = |range: std::ops::Range<usize>| {
        imported[range].iter().map(|e| (e.id, e.position)).collect::<Vec<_>>()
    };
    assert_eq!(read(0, u64::MAX, 100).await, answer(0..4));
    assert_eq!(read(4, 9, 100).await, answer(1..3), "before is exclusive");
    assert_eq!(read(4, u64::MAX, 2).await, answer(1..3), "limited");
    assert_eq!(read(6, u64::MAX, 100).await, answer(3..4), "from a position between two");
    assert!(read(10, u64::MAX, 100).await.is_empty());
    assert!(read(5, 5, 100).await.is_empty());
    assert!(read(9, 3, 100).await.is_empty());
    // The whole event comes back, only its position is the source's.
    let whole = log.read_imported(9, 10, 1).await.unwrap();
    let original = &imported[3];
    assert_eq!((&whole[0].stream_id, whole[0].version, whole[0].id), (&b, 2, original.id));
    assert_eq!((&whole[0].payload, &whole[0].metadata), (&original.payload, &original.metadata));

    // A redelivery changes nothing; another event from a taken source position is refused
    // and writes nothing.
    assert_eq!(log.import(&imported[0]).await.unwrap(), ImportOutcome::AlreadyPresent);
    let c = StreamId::new("task-c").unwrap();
    match log.import(&recorded(&c, 1, 4)).await {
        Err(error @ ImportError::SourcePositionTaken { source_position: 4, .. }) => {
            assert!(!error.is_transient());
            assert!(error.to_string().contains("source position 4"), "{error}");
        }
        other => panic!("a taken source position must be refused, got {other:?}"),
    }
    assert!(log.read_stream(&c, 1, 10).await.unwrap().is_empty());
    // An event id recorded already is still reported as such.
    let mut again = recorded(&c, 1, 12);
    again.id = imported[1].id;
    match log.import(&again).await {
        Err(ImportError::EventIdTaken { event_id, archived_version: 1, .. }) => {
            assert_eq!(event_id, imported[1].id)
        }
        other => panic!("a recorded event id must be refused, got {other:?}"),
    }
    assert_eq!(read(0, u64::MAX, 100).await, answer(0..4));

    // The source numbers its events again (a JetStream stream created again): a new
    // generation takes the same positions, the old one keeps its own.
    assert_eq!(log.source_generation().await.unwrap(), 0);
    let retired = log.retire_source_positions().await.unwrap();
    assert_eq!(retired, RetiredSourcePositions { generation: 1, retired_count: 4 });
    assert!(read(0, u64::MAX, 100).await.is_empty(), "reads by source position see the new generation");
    let old = log.read_generation(Some(0), 0, u64::MAX, 100).await.unwrap();
    assert_eq!(old.iter().map(|e| (e.id, e.position)).collect::<Vec<_>>(), answer(0..4));
    let renumbered = recorded(&c, 1, 4);
    assert!(matches!(log.import(&renumbered).await.unwrap(), ImportOutcome::Inserted { .. }));
    // An event of the old generation met again in the new source takes its new position.
    let mut met_again = imported[2].clone();
    met_again.position = 7;
    assert_eq!(log.import(&met_again).await.unwrap(), ImportOutcome::AlreadyPresent);
    assert_eq!(read(0, u64::MAX, 100).await, vec![(renumbered.id, 4), (met_again.id, 7)]);
    assert_eq!(log.source_generation().await.unwrap(), 1);
    // Nothing was deleted: every stream reads whole.
    assert_eq!(log.read_stream(&a, 1, 10).await.unwrap().len(), 2);
    // The event appended here and the one imported without a position have none.
    let unsourced = log.read_unsourced(0, 100).await.unwrap();
    assert_eq!(unsourced.len(), 2);
    assert_eq!(unsourced[1].id, no_position.id);
    assert!(log.read_unsourced(unsourced[1].position + 1, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_import() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    import_is_idempotent_in_any_order(SqlLog::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_in_memory_import() {
    import_is_idempotent_in_any_order(SqlLog::open("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn postgres_import() {
    let url = testkit::postgres::fresh_database_url().await.unwrap();
    import_is_idempotent_in_any_order(SqlLog::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_imports_are_read_by_source_position() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    imports_are_read_by_source_position(SqlLog::open(&url).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_imports_are_read_by_source_position() {
    let url = testkit::postgres::fresh_database_url().await.unwrap();
    imports_are_read_by_source_position(SqlLog::open(&url).await.unwrap()).await;
}

/// An archive written before source positions were kept upgrades in place: its events stay
/// readable by stream and have no source position; new imports get one.
#[tokio::test]
async fn sqlite_archive_from_before_source_positions_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let old = StreamId::new("task-old").unwrap();
    let legacy = EventId::new();
    {
        // The schema as migration 0001 left it, with one imported event.
        let first_only = tempfile::tempdir().unwrap();
        let source =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite/0001_events.sql");
        std::fs::copy(source, first_only.path().join("0001_events.sql")).unwrap();
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::migrate::Migrator::new(first_only.path()).await.unwrap().run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, payload, metadata) \
             VALUES ('task-old', 1, $1, 'task_submitted', 1, x'90', $2)",
        )
        .bind(legacy.to_string())
        .bind(serde_json::to_string(&Metadata::now("test")).unwrap())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let log = SqlLog::open(&url).await.unwrap();
    assert_eq!(log.read_stream(&old, 1, 10).await.unwrap().len(), 1);
    assert!(log.read_imported(0, u64::MAX, 10).await.unwrap().is_empty());
    let continued = recorded(&old, 2, 40);
    assert!(matches!(log.import(&continued).await.unwrap(), ImportOutcome::Inserted { .. }));
    let read = log.read_imported(0, u64::MAX, 10).await.unwrap();
    assert_eq!(read.iter().map(|e| (e.id, e.position)).collect::<Vec<_>>(), vec![(continued.id, 40)]);
    // Delivered again with its source position, the old event takes it.
    let mut again = recorded(&old, 1, 39);
    again.id = legacy;
    assert_eq!(log.import(&again).await.unwrap(), ImportOutcome::AlreadyPresent);
    let read = log.read_imported(0, u64::MAX, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|e| (e.id, e.position)).collect::<Vec<_>>(),
        vec![(legacy, 39), (continued.id, 40)]
    );
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    match SqlLog::open("mysql://user:secret@host/db").await {
        Err(store::Error::UnsupportedUrl { scheme }) => assert_eq!(scheme, "mysql"),
        other => panic!("expected an unsupported url error, got {other:?}"),
    }
}
