//! The pipeline on NATS JetStream (+ PostgreSQL as the archive), with servers the harness
//! starts: end to end with bad input on the submission subject, every input delivered twice,
//! and two runtimes side by side.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actors::config::ProducerConfig;
use common::*;
use events::task::TaskStatus;
use events::{EventLog, KeyPair, SignedSubmission, TaskId, TaskSpec};
use testkit::nats_server::NatsServer;

async fn nats_log(server: &NatsServer) -> Arc<nats::NatsLog> {
    Arc::new(nats::NatsLog::connect(nats::NatsLogConfig::new(server.url())).await.expect("connect"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_on_nats_with_submissions_and_the_archive() {
    let server = NatsServer::start().expect("nats-server");
    let nats = nats_log(&server).await;
    let log: Arc<dyn EventLog> = nats.clone();
    let key = Arc::new(KeyPair::generate());
    let producer = KeyPair::generate();
    let mut options = actors::RuntimeOptions::new(Arc::clone(&log), Arc::clone(&key));
    options
        .config
        .producers
        .push(ProducerConfig { name: "billing".into(), public_key: producer.public_key() });
    options.nats = Some(nats.client().clone());
    let runtime = start(options).await;

    let task = runtime.submit(TaskSpec::new("echo", "over jetstream")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    assert_exactly_once(log.as_ref(), task).await;

    // Submissions on NATS: signed by a registered producer, by a stranger, unsigned, garbage.
    let client = async_nats::connect(server.url()).await.unwrap();
    let request = |payload: Vec<u8>| {
        let client = client.clone();
        async move {
            let reply = client.request("pantheon-submit", payload.into()).await.expect("answer");
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let good =
        SignedSubmission::sign(TaskId::new(), TaskSpec::new("echo", "from billing"), &producer).unwrap();
    let answer = request(serde_json::to_vec(&good).unwrap()).await;
    assert_eq!(answer["accepted"], true, "{answer}");
    let state = runtime.wait_final(good.task_id, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed);

    let forged =
        SignedSubmission::sign(TaskId::new(), TaskSpec::new("echo", "stranger"), &KeyPair::generate())
            .unwrap();
    request(serde_json::to_vec(&forged).unwrap()).await;
    let state = runtime.wait_final(forged.task_id, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Rejected);
    assert!(state.end_reason.unwrap().contains("registered producer key"));

    let unsigned_id = TaskId::new();
    let answer = request(
        serde_json::to_vec(
            &serde_json::json!({"task_id": unsigned_id, "spec": {"capability": "echo", "description": "x"}}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(answer["accepted"], false);
    let state = runtime.wait_final(unsigned_id, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Rejected);
    assert!(state.end_reason.unwrap().contains("not signed"));

    let garbled_id = TaskId::new();
    let garbled =
        serde_json::json!({"task_id": garbled_id, "spec": 42, "signed_by": "00", "signature": "00"});
    let answer = request(serde_json::to_vec(&garbled).unwrap()).await;
    assert_eq!(answer["accepted"], false, "{answer}");
    assert_eq!(runtime.wait_final(garbled_id, WAIT).await.unwrap().status, TaskStatus::Rejected);
    let answer = request(b"not json at all".to_vec()).await;
    assert!(answer["error"].as_str().unwrap().contains("not a valid signed submission"), "{answer}");

    // PostgreSQL as the archive: every event copied exactly once.
    if testkit::postgres::available() {
        let url = testkit::postgres::fresh_database_url().await.unwrap();
        let archive = store::SqlLog::open(&url).await.unwrap();
        let archiver = nats::Archiver::new(Arc::clone(&nats), Arc::new(archive.clone()));
        let stop = tokio::time::sleep(Duration::from_secs(2));
        archiver.run(stop).await.unwrap();
        let archived = archive.into_dyn();
        assert_eq!(types(archived.as_ref(), task).await, HAPPY_PATH);
    }
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_delivered_twice_on_nats() {
    let server = NatsServer::start().expect("nats-server");
    let nats = nats_log(&server).await;
    let duplicates = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let log: Arc<dyn EventLog> =
        Arc::new(DoublingLog { inner: nats.clone(), duplicates: Arc::clone(&duplicates) });
    let runtime = start(actors::RuntimeOptions::new(Arc::clone(&log), Arc::new(KeyPair::generate()))).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        tasks.push(runtime.submit(TaskSpec::new("echo", format!("twice {i}"))).await.unwrap());
    }
    for task in &tasks {
        assert_eq!(runtime.wait_final(*task, WAIT).await.unwrap().status, TaskStatus::Completed);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for task in &tasks {
        assert_exactly_once(log.as_ref(), *task).await;
    }
    assert!(duplicates.load(std::sync::atomic::Ordering::Relaxed) >= 10 * 7);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runtimes_on_one_nats_produce_each_output_once() {
    let server = NatsServer::start().expect("nats-server");
    let key = Arc::new(KeyPair::generate());
    let first_log: Arc<dyn EventLog> = nats_log(&server).await;
    let second_log: Arc<dyn EventLog> = nats_log(&server).await;
    let first = start(actors::RuntimeOptions::new(Arc::clone(&first_log), Arc::clone(&key))).await;
    let second = start(actors::RuntimeOptions::new(Arc::clone(&second_log), Arc::clone(&key))).await;
    let mut tasks = Vec::new();
    for i in 0..30 {
        let runtime = if i % 2 == 0 { &first } else { &second };
        tasks.push(runtime.submit(TaskSpec::new("echo", format!("shared {i}"))).await.unwrap());
    }
    for task in &tasks {
        let state = first.wait_final(*task, WAIT).await.unwrap();
        assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for task in &tasks {
        assert_exactly_once(first_log.as_ref(), *task).await;
    }
    let (a, b) = (first.handled().await, second.handled().await);
    let total = |h: &[(&str, u64)]| h.iter().map(|(_, n)| n).sum::<u64>();
    assert!(total(&a) > 0 && total(&b) > 0, "both runtimes took work: {a:?} / {b:?}");
    first.shutdown().await;
    second.shutdown().await;
}
