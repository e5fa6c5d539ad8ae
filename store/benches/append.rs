//! Appends per second on SQLite (a temp file, WAL, synchronous=FULL) and PostgreSQL (a private
//! server with the default durability: every commit flushed), for 1-event and 100-event
//! batches. PostgreSQL is skipped, with a message, when its binaries are not installed.
//!
//! `cargo bench -p store --bench append -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use events::{EventId, EventLog, EventType, ExpectedVersion, Metadata, NewEvent, StreamId};
use tokio::runtime::Runtime;

/// Batch sizes measured.
const BATCH_SIZES: [usize; 2] = [1, 100];

/// Streams appended to in turn (appends of one stream serialise on its version anyway).
const STREAM_COUNT: usize = 64;

fn batch(size: usize) -> Vec<NewEvent> {
    let event_type = EventType::new("progress_reported").expect("valid type");
    (0..size)
        .map(|i| NewEvent {
            id: EventId::new(),
            event_type: event_type.clone(),
            schema_version: 1,
            // About the size of a progress event: a few ids, a percentage, a short message.
            payload: format!("{i:0>200}").into_bytes(),
            metadata: Metadata::now("bench"),
        })
        .collect()
}

fn bench_log(c: &mut Criterion, runtime: &Runtime, name: &str, log: Arc<dyn EventLog>) {
    let streams: Vec<StreamId> =
        (0..STREAM_COUNT).map(|_| StreamId::new(format!("bench-{}", EventId::new())).expect("id")).collect();
    let mut group = c.benchmark_group(format!("append/{name}"));
    for size in BATCH_SIZES {
        group.throughput(Throughput::Elements(size as u64));
        let mut turn = 0usize;
        group.bench_function(format!("batch_{size}"), |b| {
            b.to_async(runtime).iter_batched(
                || {
                    turn = (turn + 1) % STREAM_COUNT;
                    (streams[turn].clone(), batch(size))
                },
                |(stream_id, events)| {
                    let log = log.clone();
                    async move {
                        log.append(&stream_id, ExpectedVersion::Any, events).await.expect("append");
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn append(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let sqlite = runtime.block_on(store::open(&url)).expect("open sqlite");
    bench_log(c, &runtime, "sqlite", sqlite);

    if !testkit::postgres::available() {
        eprintln!("skipping PostgreSQL: initdb not found (install Debian's postgresql package)");
        return;
    }
    let server =
        testkit::PgServer::start_with(testkit::postgres::Durability::Durable).expect("start postgres");
    let url = runtime.block_on(server.fresh_database()).expect("database");
    let postgres = runtime.block_on(store::open(&url)).expect("open postgres");
    bench_log(c, &runtime, "postgres", postgres);
    drop(server);
}

criterion_group!(benches, append);
criterion_main!(benches);
