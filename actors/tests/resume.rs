//! Every phase resumes from any prefix of its own output: the log cuts every multi-event batch
//! short once (after each of its events in turn, [`testkit::faults::CutLog`]), as a crash
//! between two publishes of a JetStream batch would, and every task still ends exactly once
//! with each phase's output exactly once — on SQLite, PostgreSQL and JetStream. Also: the
//! deadline sweeper fails a task nothing will wake, exactly once, with two processes sweeping.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use events::task::{Channel, FailureCode, TaskEvent, TaskStatus};
use events::{DomainEvent, EventLog, KeyPair, TaskSpec};
use testkit::faults::CutLog;
use testkit::nats_server::NatsServer;

/// Tasks per backend: enough for every cut point of every multi-event output.
const TASKS: usize = 12;

/// Runs `TASKS` echo tasks through a runtime on `inner` with every multi-event batch cut once;
/// asserts each completes with the happy path exactly once, and that cuts happened.
async fn every_cut_batch_is_completed(
    inner: Arc<dyn EventLog>,
    options: impl Fn(Arc<dyn EventLog>) -> actors::RuntimeOptions,
) {
    let cut = Arc::new(CutLog::new(inner));
    let log: Arc<dyn EventLog> = cut.clone();
    let runtime = start(options(Arc::clone(&log))).await;
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        tasks.push(runtime.submit(TaskSpec::new("echo", format!("resume {i}"))).await.expect("submit"));
    }
    for task in &tasks {
        let state = runtime.wait_final(*task, WAIT).await.expect("the task ends");
        assert_eq!(state.status, TaskStatus::Completed, "task {task}: {state:?}");
    }
    for task in &tasks {
        assert_exactly_once(log.as_ref(), *task).await;
    }
    let cuts = cut.cuts();
    assert!(cuts.len() >= TASKS, "every task's verification batch was cut: {cuts:?}");
    assert!(
        cuts.iter().any(|c| c.types.iter().any(|t| t.as_str() == "result_verified") && c.written == 1),
        "a result was left verified and not stored: {cuts:?}"
    );
    runtime.shutdown().await;
}

fn options_for(key: Arc<KeyPair>, cancel_safe: bool) -> impl Fn(Arc<dyn EventLog>) -> actors::RuntimeOptions {
    move |log| {
        let mut options = actors::RuntimeOptions::new(log, Arc::clone(&key));
        options.next_is_cancel_safe = cancel_safe;
        options
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_batches_are_completed_on_sqlite() {
    let (_dir, log) = sqlite_log().await;
    every_cut_batch_is_completed(log, options_for(Arc::new(KeyPair::generate()), true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_batches_are_completed_on_postgres() {
    let url = testkit::postgres::fresh_database_url().await.expect("a fresh database");
    let log = store::open(&url).await.expect("open postgres log");
    every_cut_batch_is_completed(log, options_for(Arc::new(KeyPair::generate()), true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_batches_are_completed_on_jetstream() {
    let server = NatsServer::start().expect("nats-server");
    let nats = nats::NatsLog::connect(nats::NatsLogConfig::new(server.url())).await.expect("connect");
    every_cut_batch_is_completed(Arc::new(nats), options_for(Arc::new(KeyPair::generate()), false)).await;
}

/// A task whose screening input was consumed and lost (as a dead-lettered input would be):
/// nothing but the sweeper can end it, and with two processes sweeping it fails once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_fails_a_stuck_task_once_with_two_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pantheon.db").display());
    let log = store::open(&url).await.expect("open sqlite log");
    let read_model = projections::Db::connect(&url).await.expect("read models");
    let key = Arc::new(KeyPair::generate());
    let stop = tokio_util::sync::CancellationToken::new();
    let read_models = projections::Projections::new(read_model.clone(), Arc::clone(&log), (*key).clone())
        .spawn(stop.clone().cancelled_owned());

    let mut spec = TaskSpec::new("echo", "stuck");
    spec.timeout_ms = 500;
    let task =
        actors::client::submit(log.as_ref(), &key, spec, Channel::Local, "test").await.expect("submit");
    // The screening phase's subscription takes the submission and acknowledges it without
    // handling it: the task stays `submitted`.
    let options = events::SubscribeOptions {
        filter: events::Filter::category("task")
            .with_types([events::EventType::new("task_submitted").expect("a type")]),
        start: events::StartFrom::Beginning,
    };
    let mut screening = log.subscribe("phase-screening", options).await.expect("subscribe");
    let delivery = screening.next().await.expect("the submission");
    assert_eq!(delivery.event.stream_id, events::StreamId::task(task));
    screening.ack(delivery.event.position).await.expect("ack");
    drop(screening);

    let mut runtimes = Vec::new();
    for _ in 0..2 {
        let mut options = actors::RuntimeOptions::new(Arc::clone(&log), Arc::clone(&key));
        options.next_is_cancel_safe = true;
        options.read_model = Some(read_model.clone());
        runtimes.push(start(options).await);
    }
    let state = runtimes[1].wait_final(task, WAIT).await.expect("the sweeper ends the task");
    assert_eq!(state.status, TaskStatus::Failed, "{state:?}");
    // Both processes sweep past it a few more times; it failed once.
    tokio::time::sleep(Duration::from_millis(actors::SWEEP_INTERVAL_MS * 3)).await;
    let events = events_of(log.as_ref(), task).await;
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["task_submitted", "task_failed"]);
    let TaskEvent::Failed(failed) = TaskEvent::from_recorded(&events[1]).expect("decodes") else {
        unreachable!()
    };
    assert_eq!(failed.code, FailureCode::DeadlineExceeded);
    assert_eq!(events[1].metadata.emitter, "sweeper");
    assert!(failed.reason.contains("500 ms") && failed.reason.contains("submitted"), "{}", failed.reason);
    for runtime in runtimes {
        runtime.shutdown().await;
    }
    stop.cancel();
    let _ = read_models.join().await;
}
