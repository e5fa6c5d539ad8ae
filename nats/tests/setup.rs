//! Provisioning at start-up: streams are created once and a second start changes nothing; an
//! existing stream that differs is refused with the fields named, or updated when allowed;
//! retention set by an operator is accepted unless this process manages it.

use std::time::Duration;

use async_nats::jetstream::stream::StorageType;
use events::{EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId};
use nats::{ErrorKind, NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

fn event() -> NewEvent {
    NewEvent {
        id: events::EventId::new(),
        event_type: EventType::new("noted").unwrap(),
        schema_version: 1,
        payload: rmp_serde::to_vec(&"x").unwrap(),
        metadata: Metadata::now("test"),
    }
}

async fn stream_config(server: &NatsServer) -> async_nats::jetstream::stream::Config {
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_stream("PANTHEON").await.unwrap().info().await.unwrap().config.clone()
}

async fn edit_stream(server: &NatsServer, edit: impl FnOnce(&mut async_nats::jetstream::stream::Config)) {
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut config = js.get_stream("PANTHEON").await.unwrap().info().await.unwrap().config.clone();
    edit(&mut config);
    js.update_stream(&config).await.unwrap();
}

async fn refusal(config: NatsLogConfig) -> nats::Error {
    match NatsLog::connect(config).await {
        Ok(_) => panic!("the differing stream was accepted"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_second_start_changes_nothing() {
    let server = NatsServer::start().unwrap();
    let log = NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap();
    let stream = StreamId::new("task-1").unwrap();
    log.append(&stream, ExpectedVersion::NoStream, vec![event()]).await.unwrap();
    let before = stream_config(&server).await;
    drop(log);
    let again = NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap();
    assert_eq!(stream_config(&server).await, before);
    assert_eq!(again.read_stream(&stream, 1, 10).await.unwrap().len(), 1, "events are kept");
}

#[tokio::test]
async fn a_differing_stream_is_refused_by_name_or_updated_when_allowed() {
    let server = NatsServer::start().unwrap();
    drop(NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap());
    edit_stream(&server, |c| c.duplicate_window = Duration::from_secs(60)).await;
    let error = refusal(NatsLogConfig::new(server.url())).await;
    assert_eq!(error.kind(), ErrorKind::IncompatibleStream);
    assert!(error.to_string().contains("duplicate_window"), "{error}");
    assert_eq!(stream_config(&server).await.duplicate_window, Duration::from_secs(60), "left alone");

    let update = NatsLogConfig { update_existing: true, ..NatsLogConfig::new(server.url()) };
    NatsLog::connect(update).await.unwrap();
    assert_eq!(stream_config(&server).await.duplicate_window, Duration::from_secs(10 * 60));
}

#[tokio::test]
async fn a_field_that_cannot_change_is_refused_even_with_update() {
    let server = NatsServer::start().unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "PANTHEON".into(),
        subjects: vec!["pantheon.>".into()],
        storage: StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let update = NatsLogConfig { update_existing: true, ..NatsLogConfig::new(server.url()) };
    let error = refusal(update).await;
    assert_eq!(error.kind(), ErrorKind::IncompatibleStream);
    assert!(error.to_string().contains("storage"), "{error}");
    assert!(error.to_string().contains("cannot be changed"), "{error}");
}

#[tokio::test]
async fn retention_is_the_operators_unless_managed() {
    let server = NatsServer::start().unwrap();
    drop(NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap());
    // An operator limits the stream; clients that do not manage retention accept it.
    edit_stream(&server, |c| c.max_messages = 500).await;
    NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap();
    let update = NatsLogConfig { update_existing: true, ..NatsLogConfig::new(server.url()) };
    NatsLog::connect(update).await.unwrap();
    assert_eq!(stream_config(&server).await.max_messages, 500, "an unmanaged client keeps it");

    // A process that manages retention refuses a differing one, or applies its own.
    let managed = || NatsLogConfig {
        manage_retention: true,
        max_messages: 20,
        max_age: Duration::from_secs(3_600),
        ..NatsLogConfig::new(server.url())
    };
    let error = refusal(managed()).await;
    assert!(error.to_string().contains("max_messages") && error.to_string().contains("max_age"), "{error}");
    NatsLog::connect(NatsLogConfig { update_existing: true, ..managed() }).await.unwrap();
    let config = stream_config(&server).await;
    assert_eq!((config.max_messages, config.max_age), (20, Duration::from_secs(3_600)));
}
