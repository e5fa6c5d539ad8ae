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
