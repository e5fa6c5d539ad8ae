//! Bad input on a pantheon subject — garbage bytes, a too-new schema version, missing headers
//! — and an event refused on every delivery are dead-lettered with the reason, and the
//! subscription carries on.

use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId, SubscribeOptions};
use nats::layout::{HEADER_DEAD_REASON, HEADER_DEAD_SUBJECT, HEADER_EMITTER, event_headers};
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

fn event(body: &str, schema_version: u32) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("task_submitted").unwrap(),
        schema_version,
        payload: rmp_serde::to_vec_named(&body).unwrap(),
        metadata: Metadata::now("dead-letter-test"),
    }
}

async fn raw_publish(log: &NatsLog, subject: &str, headers: Option<HeaderMap>, payload: &'static [u8]) {
    let js = log.jetstream();
    let ack = match headers {
        Some(headers) => {
            js.publish_with_headers(subject.to_string(), headers, Bytes::from_static(payload)).await
        }
        None => js.publish(subject.to_string(), Bytes::from_static(payload)).await,
    };
    ack.unwrap().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_and_the_consumer_carries_on() {
    let server = NatsServer::start().unwrap();
    let config = NatsLogConfig {
        schema_version_max: Some(1),
        max_deliver: 2,
        ack_wait: Duration::from_secs(1),
        redelivery_backoff: vec![Duration::from_millis(500)],
        ..NatsLogConfig::new(server.url())
    };
    let log = NatsLog::connect(config).await.unwrap();
    let good = StreamId::new("task-good").unwrap();
    let first = event("first", 1);
    log.append(&good, ExpectedVersion::NoStream, vec![first.clone()]).await.unwrap();

    // A foreign producer's mistakes, each on a stream of its own.
    raw_publish(&log, "pantheon.task.noheaders", None, b"garbage").await;
    raw_publish(
        &log,
        "pantheon.task.garbage",
        Some(event_headers(&event("x", 1), 1)),
        b"\xc1\xc1 not msgpack",
    )
    .await;
    let too_new = event("from the future", 2);
    raw_publish(&log, "pantheon.task.toonew", Some(event_headers(&too_new, 1)), b"\xa1x").await;
    let full = event_headers(&event("y", 1), 1);
    let mut stripped = HeaderMap::new();
    for (name, values) in full.iter() {
        let name: &str = name.as_ref();
        if name != HEADER_EMITTER {
            for value in values {
                stripped.append(name, value.as_str());
            }
        }
    }
    raw_publish(&log, "pantheon.task.noemitter", Some(stripped), b"\xa1y").await;

    let second = event("second", 1);
    log.append(&good, ExpectedVersion::Exact(1), vec![second.clone()]).await.unwrap();

    let mut subscription = log.subscribe("poison", SubscribeOptions::default()).await.unwrap();
    let next = async |subscription: &mut Box<dyn events::Subscription>| {
        tokio::time::timeout(Duration::from_secs(15), subscription.next()).await.unwrap().unwrap()
    };
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.event.id, first.id);
    subscription.ack(delivery.event.position).await.unwrap();
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.event.id, second.id, "the poison between them was not handed out");
    // Refused on each of its two allowed deliveries: dead-lettered too.
    subscription.nack(delivery.event.position).await.unwrap();
    let again = next(&mut subscription).await;
    assert_eq!((again.event.id, again.attempt), (second.id, 2));
    subscription.nack(again.event.position).await.unwrap();

    let third = event("third", 1);
    log.append(&good, ExpectedVersion::Exact(2), vec![third.clone()]).await.unwrap();
    let delivery = next(&mut subscription).await;
    assert_eq!(delivery.event.id, third.id, "the consumer carries on after dead letters");
    subscription.ack(delivery.event.position).await.unwrap();

    let dead = log.jetstream().get_stream("PANTHEON_DEAD").await.unwrap();
    let mut letters = Vec::new();
    for sequence in 1..=5 {
        let message = dead.direct_get(sequence).await.unwrap();
        assert_eq!(message.subject.as_str(), "pantheon-dead.poison");
        let reason = message.headers.get(HEADER_DEAD_REASON).unwrap().as_str().to_string();
        let subject = message.headers.get(HEADER_DEAD_SUBJECT).unwrap().as_str().to_string();
        letters.push((subject, reason));
    }
    let reason_of = |subject: &str| {
        letters.iter().find(|(s, _)| s == subject).map(|(_, r)| r.clone()).unwrap_or_default()
    };
    assert!(reason_of("pantheon.task.noheaders").contains("no headers"), "{letters:?}");
    assert!(reason_of("pantheon.task.garbage").contains("MessagePack"), "{letters:?}");
    assert!(reason_of("pantheon.task.toonew").contains("schema version 2"), "{letters:?}");
    assert!(reason_of("pantheon.task.noemitter").contains("missing header Pantheon-Emitter"), "{letters:?}");
    assert!(reason_of("pantheon.task.good").contains("refused on each of 2 deliveries"), "{letters:?}");
}
