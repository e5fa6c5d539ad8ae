//! What `/metrics` reads of JetStream consumers: the events a subscription has yet to
//! acknowledge, and the deliveries made again after an acknowledgement did not come in time.

use std::time::Duration;

use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId, SubscribeOptions};
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

fn event(n: u32) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("task_submitted").unwrap(),
        schema_version: 1,
        payload: rmp_serde::to_vec_named(&n).unwrap(),
        metadata: Metadata::now("stats-test"),
    }
}

async fn stats(log: &NatsLog, name: &str) -> events::SubscriptionStats {
    let all = log.subscription_stats().await.unwrap();
    all.into_iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no consumer {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_and_redelivered_follow_the_consumer() {
    let server = NatsServer::start().unwrap();
    let config = NatsLogConfig {
        ack_wait: Duration::from_secs(1),
        redelivery_backoff: vec![Duration::from_millis(300)],
        ..NatsLogConfig::new(server.url())
    };
    let log = NatsLog::connect(config).await.unwrap();
    for n in 0..3 {
        let stream = StreamId::new(format!("task-s{n}")).unwrap();
        log.append(&stream, ExpectedVersion::NoStream, vec![event(n)]).await.unwrap();
    }
    let mut subscription = log.subscribe("stats", SubscribeOptions::default()).await.unwrap();
    assert_eq!(stats(&log, "stats").await.pending, 3);
    assert_eq!(stats(&log, "stats").await.redelivered, Some(0));

    // Two acknowledged; the third left unacknowledged until it comes again.
    let first = subscription.next().await.unwrap();
    subscription.ack(first.event.position).await.unwrap();
    let second = subscription.next().await.unwrap();
    subscription.ack(second.event.position).await.unwrap();
    let third = subscription.next().await.unwrap();
    let again = tokio::time::timeout(Duration::from_secs(10), subscription.next()).await.unwrap().unwrap();
    assert_eq!(again.event.position, third.event.position, "redelivered");
    let now = stats(&log, "stats").await;
    assert_eq!(now.pending, 1, "{now:?}");
    assert!(now.redelivered >= Some(1), "{now:?}");
    subscription.ack(again.event.position).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stats(&log, "stats").await.pending != 0 {
        assert!(std::time::Instant::now() < deadline, "the acknowledgement never counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
