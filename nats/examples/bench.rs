//! The JetStream log's cost beside raw async-nats, on one private nats-server in one run:
//! append throughput (one at a time, and pipelined with acks) and replay rate.
//!
//! `cargo run --release -p nats --example bench [events]` (default 20,000 events per case).
//! The server is `nats-server` on PATH (or `PANTHEON_NATS_SERVER`), default (2.9) settings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId};
use futures::{StreamExt, stream};
use nats::layout::event_headers;
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

/// Streams the events are spread over (a stream's appends never overlap in the pipelined case
/// because fewer than this many are in flight).
const STREAMS: usize = 1_000;
/// Appends in flight in the pipelined cases.
const IN_FLIGHT: usize = 256;
/// Rounds of every case, raw and log alternating; the best rate of each is reported, which
/// filters out the noise of other work on the machine.
const ROUNDS: usize = 3;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event(i: usize) -> NewEvent {
    let body = serde_json::json!({
        "task_id": EventId::new().to_string(),
        "capability": "summarize",
        "description": format!("event {i}: summarise the quarterly report for the operations review"),
        "labels": {"team": "ops", "priority": "normal"},
        "timeout_ms": 30_000,
    });
    NewEvent {
        id: EventId::new(),
        event_type: EventType::new("task_submitted").unwrap(),
        schema_version: 1,
        payload: events::codec::to_msgpack(&body).unwrap(),
        metadata: Metadata::now("bench"),
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let server = NatsServer::start().expect("start nats-server");
    println!(
        "nats-server {:?}, {count} events per case, payload ~{} bytes",
        server.version(),
        event(0).payload.len()
    );
    let log = Arc::new(NatsLog::connect(NatsLogConfig::new(server.url())).await.unwrap());
    let js = log.jetstream().clone();
    let streams = |prefix: &str| -> Vec<StreamId> {
        (0..STREAMS).map(|i| StreamId::new(format!("{prefix}-{i}")).unwrap()).collect()
    };

    // Raw: the same payload and headers (event id as Nats-Msg-Id, metadata), publish + ack.
    let raw_publish = |stream: &StreamId, e: &NewEvent, version: u64| {
        let js = js.clone();
        let subject = nats::layout::stream_subject(stream);
        let message = PublishMessage::build()
            .payload(Bytes::copy_from_slice(&e.payload))
            .headers(event_headers(e, version));
        async move { js.send_publish(subject, message).await.unwrap().await.unwrap() }
    };

    // Warm-up.
    let warm = streams("warm");
    for (i, e) in (0..2_000).map(event).enumerate() {
        log.append(&warm[i % STREAMS], ExpectedVersion::Any, vec![e]).await.unwrap();
    }

    let mut best = [[0f64; 2]; 3];
    let mut replayed = 0;
    for round in 0..ROUNDS {
        let raw_events: Vec<NewEvent> = (0..count).map(event).collect();
        let log_events: Vec<NewEvent> = (0..count).map(event).collect();
        let raw_piped_events: Vec<NewEvent> = (0..count).map(event).collect();
        let log_piped_events: Vec<NewEvent> = (0..count).map(event).collect();
        let raw_single = streams(&format!("rawsingle{}", char::from(b'a' + round as u8)));
        let start = Instant::now();
        for (i, e) in raw_events.iter().enumerate() {
            raw_publish(&raw_single[i % STREAMS], e, (i / STREAMS) as u64 + 1).await;
        }
        let raw_single_rate = rate(count, start.elapsed());

        let log_single = streams(&format!("logsingle{}", char::from(b'a' + round as u8)));
        let start = Instant::now();
        for (i, e) in log_events.iter().enumerate() {
            log.append(&log_single[i % STREAMS], ExpectedVersion::Any, vec![e.clone()]).await.unwrap();
        }
        let log_single_rate = rate(count, start.elapsed());

        let raw_piped = streams(&format!("rawpiped{}", char::from(b'a' + round as u8)));
        let start = Instant::now();
        stream::iter(raw_piped_events.iter().enumerate())
            .map(|(i, e)| raw_publish(&raw_piped[i % STREAMS], e, (i / STREAMS) as u64 + 1))
            .buffer_unordered(IN_FLIGHT)
            .for_each(|_| async {})
            .await;
        let raw_piped_rate = rate(count, start.elapsed());

        let log_piped = streams(&format!("logpiped{}", char::from(b'a' + round as u8)));
        let start = Instant::now();
        stream::iter(log_piped_events.iter().enumerate())
            .map(|(i, e)| {
                let log = log.clone();
                let stream = log_piped[i % STREAMS].clone();
                let e = e.clone();
                async move { log.append(&stream, ExpectedVersion::Any, vec![e]).await.unwrap() }
            })
            .buffer_unordered(IN_FLIGHT)
            .for_each(|_| async {})
            .await;
        let log_piped_rate = rate(count, start.elapsed());

        // Replay everything recorded so far.
        let (_, last) = log.bounds().await.unwrap();
        let start = Instant::now();
        replayed = 0usize;
        log.replay(1, usize::MAX, |_| {
            replayed += 1;
            true
        })
        .await
        .unwrap();
        let log_replay_rate = rate(replayed, start.elapsed());

        let events_stream = js.get_stream("PANTHEON").await.unwrap();
        let start = Instant::now();
        let consumer = events_stream
            .create_consumer(pull::OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut raw_replayed = 0usize;
        while let Some(message) = messages.next().await {
            let message = message.unwrap();
            raw_replayed += 1;
            if message.info().unwrap().stream_sequence >= last {
                break;
            }
        }
        let raw_replay_rate = rate(raw_replayed, start.elapsed());

        for (slot, (raw, log)) in best.iter_mut().zip([
            (raw_single_rate, log_single_rate),
            (raw_piped_rate, log_piped_rate),
            (raw_replay_rate, log_replay_rate),
        ]) {
            slot[0] = slot[0].max(raw);
            slot[1] = slot[1].max(log);
        }
        println!(
            "round {round}: single {raw_single_rate:.0}/{log_single_rate:.0}, pipelined {raw_piped_rate:.0}/{log_piped_rate:.0}, replay {raw_replay_rate:.0}/{log_replay_rate:.0} (raw/log ev/s)"
        );
    }
    println!();
    println!("best of {ROUNDS} rounds");
    println!("{:<34} {:>12} {:>12} {:>8}", "case", "raw ev/s", "log ev/s", "cost");
    for (case, [raw, log]) in [
        ("append, one at a time".to_string(), best[0]),
        (format!("append, pipelined ({IN_FLIGHT} in flight)"), best[1]),
        (format!("replay ({replayed} events)"), best[2]),
    ] {
        println!("{case:<34} {raw:>12.0} {log:>12.0} {:>7.2}x", raw / log);
    }
    println!();
    println!(
        "cost = raw rate / log rate (log time per event relative to raw); targets: appends <= 1.25x, replay >= 200,000 ev/s"
    );
}
