//! A subscriber is woken by appends made through another log on the same PostgreSQL database
//! (another process, in production): `LISTEN/NOTIFY`, not the in-process channel.

use std::time::{Duration, Instant};

use events::{
    EventId, EventType, ExpectedVersion, Filter, Metadata, NewEvent, StartFrom, StreamId, SubscribeOptions,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_appends_wake_subscribers_of_other_logs() {
    let url = testkit::postgres::fresh_database_url().await.unwrap();
    let reader = store::open(&url).await.unwrap();
    let writer = store::open(&url).await.unwrap();
    let options = SubscribeOptions { filter: Filter::category("task"), start: StartFrom::Beginning };
    let mut subscription = reader.subscribe("across", options).await.unwrap();
    let waiting = tokio::spawn(async move {
        let delivery = subscription.next().await.unwrap();
        (delivery, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stream = StreamId::new("task-wake").unwrap();
    let event = NewEvent {
        id: EventId::new(),
        event_type: EventType::new("task_submitted").unwrap(),
        schema_version: 1,
        payload: vec![1, 2, 3],
        metadata: Metadata::now("test"),
    };
    let appended_at = Instant::now();
    writer.append(&stream, ExpectedVersion::NoStream, vec![event.clone()]).await.unwrap();
    let (delivery, delivered_at) =
        tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap();
    assert_eq!(delivery.event.id, event.id);
    let latency = delivered_at - appended_at;
    assert!(
        latency < Duration::from_millis(store::SUBSCRIPTION_POLL_MS / 2),
        "woken after {latency:?}: NOTIFY must wake before the fallback poll"
    );
}
