//! A subscription whose filter matches nothing still stores its progress, so a restart does
//! not scan the whole log again.

use std::time::Duration;

use events::{
    EventId, EventType, ExpectedVersion, Filter, Metadata, NewEvent, StartFrom, StreamId, SubscribeOptions,
};

#[tokio::test]
async fn skipped_events_advance_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let log = store::open(&url).await.unwrap();
    let stream = StreamId::new("agent-busy").unwrap();
    for _ in 0..3 {
        let batch = (0..250)
            .map(|_| NewEvent {
                id: EventId::new(),
                event_type: EventType::new("heartbeat").unwrap(),
                schema_version: 1,
                payload: Vec::new(),
                metadata: Metadata::now("test"),
            })
            .collect();
        log.append(&stream, ExpectedVersion::Any, batch).await.unwrap();
    }
    let options = SubscribeOptions { filter: Filter::category("task"), start: StartFrom::Beginning };
    let mut subscription = log.subscribe("tasks-only", options).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), subscription.next()).await.is_err());

    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let checkpoint: i64 =
        sqlx::query_scalar("SELECT checkpoint FROM subscriptions WHERE name = 'tasks-only'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(checkpoint >= 512, "progress over unmatched events is stored (checkpoint {checkpoint})");
}

fn events_of(event_type: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|_| NewEvent {
            id: EventId::new(),
            event_type: EventType::new(event_type).unwrap(),
            schema_version: 1,
            payload: event_type.as_bytes().to_vec(),
            metadata: Metadata::now("test"),
        })
        .collect()
}

/// A subscription by event type that reads the database (another handle's appends, so its
/// ring holds none of them) gets exactly its events, in order, across stretches of other
/// events longer than one query scans and runs of its own longer than one read takes, and goes
/// on to events appended later.
#[tokio::test]
async fn a_type_filter_reads_only_its_events_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let writer = store::open(&url).await.unwrap();
    let stream = StreamId::new("task-mixed").unwrap();
    let mut wanted = Vec::new();
    // Stretches of 1, 300 and 9,000 other events (the last longer than a query's scan window)
    // between the wanted ones, and some at the very start and end.
    for noise in [0usize, 1, 300, 9_000, 0, 2] {
        for chunk in events_of("noise", noise).chunks(500) {
            writer.append(&stream, ExpectedVersion::Any, chunk.to_vec()).await.unwrap();
        }
        let outcome = writer.append(&stream, ExpectedVersion::Any, events_of("wanted", 1)).await.unwrap();
        wanted.push(outcome.last_position);
    }
    // More wanted events in a row than a subscription takes per read.
    for _ in 0..3 {
        let outcome = writer.append(&stream, ExpectedVersion::Any, events_of("wanted", 200)).await.unwrap();
        wanted.extend(outcome.last_position - 199..=outcome.last_position);
    }
    writer.append(&stream, ExpectedVersion::Any, events_of("noise", 40)).await.unwrap();

    let reader = store::open(&url).await.unwrap();
    let filter = Filter::all().with_types([EventType::new("wanted").unwrap()]);
    let options = SubscribeOptions { filter, start: StartFrom::Beginning };
    let mut subscription = reader.subscribe("wanted-only", options).await.unwrap();
    let mut delivered = Vec::new();
    for _ in 0..wanted.len() {
        let delivery =
            tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap();
        assert_eq!(delivery.event.event_type.as_str(), "wanted");
        assert_eq!(delivery.event.payload, b"wanted");
        subscription.ack(delivery.event.position).await.unwrap();
        delivered.push(delivery.event.position);
    }
    assert_eq!(delivered, wanted);
    assert!(tokio::time::timeout(Duration::from_millis(300), subscription.next()).await.is_err(), "no more");

    // Appended later by the other handle: found by the reader's next look at the database.
    writer.append(&stream, ExpectedVersion::Any, events_of("noise", 10)).await.unwrap();
    let later = writer.append(&stream, ExpectedVersion::Any, events_of("wanted", 1)).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap();
    assert_eq!(delivery.event.position, later.last_position);
}
