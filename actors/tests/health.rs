//! Matching with the read models, on a real log (an SQLite file) with the projections running
//! beside the pipeline: an agent that starts failing becomes unhealthy and is left out while
//! another agent with the same capability takes the tasks; after its cool-down it gets one
//! trial task (half-open) and returns when that succeeds. And the runtime's heartbeats: on the
//! log every interval, one per interval across a restart, read by the health projection,
//! stopped at shutdown.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::registry::{AgentAction, change_agent};
use actors::{
    AgentFailure, HEARTBEAT_INTERVAL_MS, HostedAgent, InProcessAgent, Progress, STANDING_REFRESH_MS, Worker,
};
use async_trait::async_trait;
use common::*;
use events::signals::{HeartbeatEvent, Liveness, heartbeat_stream};
use events::task::{AgentSelected, TaskEvent, TaskStatus};
use events::{
    AgentId, AgentStatus, DomainEvent, EventLog, KeyPair, ManualClock, TaskEnvelope, TaskId, TaskSpec, now_ms,
};
use projections::health::{HEARTBEAT_DEGRADED_MS, HEARTBEAT_UNHEALTHY_MS};
use projections::{Db, HealthReader, HealthStatus, LivenessTable, ProjectionName, Projections};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The cool-down of these tests: long enough for the "left out" part to run inside it.
const COOL_DOWN_MS: i64 = 8_000;

/// A worker that fails (the agent's fault) while `failing` is set, and echoes otherwise.
struct Switch {
    failing: AtomicBool,
}

#[async_trait]
impl Worker for Switch {
    async fn work(
        &self,
        envelope: &TaskEnvelope,
        _: &mpsc::Sender<Progress>,
    ) -> Result<serde_json::Value, AgentFailure> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AgentFailure::agent("broken for now"));
        }
        Ok(serde_json::Value::String(envelope.description.clone()))
    }
}

fn agent(id: &str, capabilities: &[&str], federation: &KeyPair, worker: Arc<dyn Worker>) -> HostedAgent {
    let key = KeyPair::generate();
    let agent_id = AgentId::new(id).unwrap();
    HostedAgent {
        id: agent_id.clone(),
        capabilities: capabilities.iter().map(|c| (*c).to_string()).collect(),
        max_concurrency: 16,
        public_key: key.public_key(),
        endpoint: Arc::new(InProcessAgent::new(agent_id, key, federation.public_key(), worker)),
    }
}

/// A log and its read models in one SQLite file.
async fn world() -> (tempfile::TempDir, Arc<dyn EventLog>, Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pantheon.db").display());
    let log = store::open(&url).await.expect("open the log");
    let db = Db::connect(&url).await.expect("open the read models");
    (dir, log, db)
}

/// The task's selections with their times, in order.
async fn selections(log: &dyn EventLog, task: TaskId) -> Vec<(AgentSelected, i64)> {
    events_of(log, task)
        .await
        .into_iter()
        .filter_map(|e| match TaskEvent::from_recorded(&e) {
            Ok(TaskEvent::AgentSelected(s)) => Some((s, e.metadata.occurred_at_ms)),
            _ => None,
        })
        .collect()
}

async fn wait_status(reader: &HealthReader, agent: &str, want: HealthStatus, within: Duration) -> i64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let report = reader.report_at(agent, now_ms()).await.unwrap();
        if report.status == want {
            return report.record.map_or(0, |r| r.state_since_ms);
        }
        assert!(tokio::time::Instant::now() < deadline, "{agent} is still {report:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_agent_status(runtime: &actors::Runtime, agent: &AgentId, want: AgentStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while runtime.registry().agent(agent).map(|a| a.status) != Some(want) {
        assert!(tokio::time::Instant::now() < deadline, "{agent} never became {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_agent_is_left_out_until_its_trial_succeeds() {
    let (_dir, log, db) = world().await;
    let key = Arc::new(KeyPair::generate());
    let stop = CancellationToken::new();
    let read_models = Projections::new(db.clone(), Arc::clone(&log), (*key).clone())
        .with_health_cool_down_ms(COOL_DOWN_MS)
        .spawn(stop.clone().cancelled_owned());
    let reader = HealthReader::new(db.clone()).with_cool_down_ms(COOL_DOWN_MS);

    let switch = Arc::new(Switch { failing: AtomicBool::new(true) });
    // flaky is the specialist (it fits better); steady also does chores.
    let (flaky, steady) = (AgentId::new("flaky").unwrap(), AgentId::new("steady").unwrap());
    let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&key));
    options.read_model = Some(db.clone());
    options.config.health.cool_down_ms = COOL_DOWN_MS.unsigned_abs();
    options.extra_agents = vec![
        agent("flaky", &["work"], &key, switch.clone()),
        agent("steady", &["work", "chores"], &key, Arc::new(Switch { failing: AtomicBool::new(false) })),
    ];
    let runtime = start(options).await;

    // 1. With steady out of the way, flaky fails all three attempts of a task: unhealthy.
    change_agent(log.as_ref(), &steady, AgentAction::Suspend, "test", "out of the way").await.unwrap();
    wait_agent_status(&runtime, &steady, AgentStatus::Suspended).await;
    let task = runtime.submit(TaskSpec::new("work", "meets a broken agent")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Failed, "{state:?}");
    assert_eq!(counts(log.as_ref(), task).await.get("execution_failed"), Some(&3));
    let unhealthy_since = wait_status(&reader, "flaky", HealthStatus::Unhealthy, WAIT).await;

    // 2. Within its cool-down flaky is not even a candidate: steady takes every task.
    change_agent(log.as_ref(), &steady, AgentAction::Reinstate, "test", "back").await.unwrap();
    wait_agent_status(&runtime, &steady, AgentStatus::Active).await;
    tokio::time::sleep(Duration::from_millis(2 * STANDING_REFRESH_MS)).await;
    for i in 0..3 {
        let task =
            runtime.submit(TaskSpec::new("work", format!("while flaky cools down {i}"))).await.unwrap();
        let state = runtime.wait_final(task, WAIT).await.unwrap();
        assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
        let picks = selections(log.as_ref(), task).await;
        assert_eq!(picks.len(), 1, "{picks:?}");
        let (selected, at) = &picks[0];
        assert!(*at < unhealthy_since + COOL_DOWN_MS, "the premise: selected within the cool-down");
        assert_eq!(selected.agent_id, steady);
        assert!(selected.candidates.iter().all(|c| c.agent_id != flaky), "{selected:?}");
    }

    // 3. flaky works again. After the cool-down it is half-open: of two tasks submitted
    //    together, the first selected is its one trial, and its success brings it back.
    switch.failing.store(false, Ordering::SeqCst);
    wait_status(
        &reader,
        "flaky",
        HealthStatus::HalfOpen,
        Duration::from_millis(COOL_DOWN_MS.unsigned_abs()) + WAIT,
    )
    .await;
    // Matching reads health from a cache refreshed every STANDING_REFRESH_MS: let it see
    // the half-open state the reader saw, or both tasks may be matched while it still reads
    // unhealthy.
    tokio::time::sleep(Duration::from_millis(2 * STANDING_REFRESH_MS)).await;
    let (a, b) = tokio::join!(
        runtime.submit(TaskSpec::new("work", "trial or not, a")),
        runtime.submit(TaskSpec::new("work", "trial or not, b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut picks = Vec::new();
    for task in [a, b] {
        let state = runtime.wait_final(task, WAIT).await.unwrap();
        assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
        let mut selected = selections(log.as_ref(), task).await;
        assert_eq!(selected.len(), 1, "{selected:?}");
        picks.push(selected.remove(0));
    }
    // The trial is the first selection; two matched in the same millisecond cannot be told
    // apart by time, so either may be it then.
    let trial = picks
        .iter()
        .position(|(selected, _)| selected.agent_id == flaky)
        .unwrap_or_else(|| panic!("the half-open agent gets one of the two as its trial: {picks:?}"));
    let other = &picks[1 - trial];
    assert!(picks[trial].1 <= other.1, "the half-open agent gets the next task: {picks:?}");
    let healthy_since = wait_status(&reader, "flaky", HealthStatus::Healthy, WAIT).await;
    let report = reader.report_at("flaky", now_ms()).await.unwrap();
    assert_eq!(report.record.as_ref().map(|r| r.consecutive_failures), Some(0), "{report:?}");
    // Only one trial: the other task went to steady, unless it was matched after flaky was
    // already back.
    assert!(other.0.agent_id == steady || other.1 >= healthy_since, "{picks:?}");

    // 4. Back among the candidates.
    tokio::time::sleep(Duration::from_millis(2 * STANDING_REFRESH_MS)).await;
    let task = runtime.submit(TaskSpec::new("work", "everyone welcome")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    let picks = selections(log.as_ref(), task).await;
    let candidate = picks[0].0.candidates.iter().find(|c| c.agent_id == flaky);
    let candidate = candidate.unwrap_or_else(|| panic!("flaky is a candidate again: {picks:?}"));
    assert_eq!(candidate.health, 1.0, "healthy: {candidate:?}");
    assert!(candidate.reputation < 0.5, "its failures still weigh on its reputation: {candidate:?}");

    runtime.shutdown().await;
    stop.cancel();
    read_models.join().await.unwrap();
}

/// The liveness changes recorded on `agent`'s heartbeat stream, in order.
async fn liveness_changes(log: &dyn EventLog, agent: &str) -> Vec<(Liveness, i64)> {
    let stream = heartbeat_stream(&AgentId::new(agent).unwrap());
    let mut changes = Vec::new();
    for event in log.read_stream(&stream, 1, 1_000).await.unwrap() {
        match HeartbeatEvent::from_recorded(&event) {
            Ok(HeartbeatEvent::LivenessChanged(change)) => {
                changes.push((change.liveness, change.last_seen_ms))
            }
            other => panic!("only liveness changes are recorded, not {other:?}"),
        }
    }
    changes
}

/// Waits until `agent`'s stream holds `count` changes.
async fn wait_changes(log: &dyn EventLog, agent: &str, count: usize) -> Vec<(Liveness, i64)> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(4 * HEARTBEAT_INTERVAL_MS);
    loop {
        let changes = liveness_changes(log, agent).await;
        if changes.len() >= count {
            return changes;
        }
        assert!(tokio::time::Instant::now() < deadline, "{agent}: {changes:?}, waiting for {count}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_stay_out_of_the_log_which_records_only_changes_of_liveness() {
    let (_dir, log, db) = world().await;
    let key = Arc::new(KeyPair::generate());
    let projections = Projections::new(db.clone(), Arc::clone(&log), (*key).clone());
    let reader = HealthReader::new(db.clone());
    let table = LivenessTable::new(db.clone());
    let t0 = now_ms();
    let clock = Arc::new(ManualClock::new(t0));
    let options = || {
        let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&key));
        options.read_model = Some(db.clone());
        options.clock = clock.clone();
        options
    };
    // An agent of another process, which beat once at t0.
    table.beat("remote", t0, 0).await.unwrap();

    // Start: the hosted echo beats into the table, and the first sight of each agent is
    // recorded as live, once.
    let runtime = start(options()).await;
    assert_eq!(liveness_changes(log.as_ref(), "echo").await, vec![(Liveness::Live, t0)]);
    assert_eq!(liveness_changes(log.as_ref(), "remote").await, vec![(Liveness::Live, t0)]);
    let echo = table.get("echo").await.unwrap().expect("echo's row");
    assert_eq!((echo.last_seen_ms, echo.recorded()), (t0, Some(Liveness::Live)));
    projections.catch_up(ProjectionName::Health).await.unwrap();
    let report = reader.report_at("echo", t0).await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");

    // Rounds and a restart beat again, into the table only: the log holds no new event.
    clock.advance(10_000);
    runtime.shutdown().await;
    let runtime = start(options()).await;
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS + 500)).await;
    assert_eq!(table.get("echo").await.unwrap().map(|r| r.last_seen_ms), Some(t0 + 10_000));
    assert_eq!(liveness_changes(log.as_ref(), "echo").await.len(), 1);
    // Readers take the table's newer beat, though the projection saw only the first.
    projections.catch_up(ProjectionName::Health).await.unwrap();
    let report = reader.report_at("echo", t0 + 10_000).await.unwrap();
    assert_eq!(report.record.as_ref().and_then(|r| r.last_heartbeat_ms), Some(t0 + 10_000), "{report:?}");

    // The remote agent's beats stopped at t0: stale past 15 s, lost past 60 s, each recorded
    // once by the watch, and the health projection reads the loss from the log.
    clock.set(t0 + HEARTBEAT_DEGRADED_MS + 1_000);
    let changes = wait_changes(log.as_ref(), "remote", 2).await;
    assert_eq!(changes[1], (Liveness::Stale, t0));
    clock.set(t0 + HEARTBEAT_UNHEALTHY_MS + 1_000);
    let changes = wait_changes(log.as_ref(), "remote", 3).await;
    assert_eq!(changes[2], (Liveness::Lost, t0));
    projections.catch_up(ProjectionName::Health).await.unwrap();
    let report = reader.report_at("remote", t0 + HEARTBEAT_UNHEALTHY_MS + 1_000).await.unwrap();
    assert_eq!(report.status, HealthStatus::Unhealthy, "{report:?}");
    assert!(report.reason.contains("no heartbeat"), "{report:?}");

    // It beats again: live, recorded once.
    let back = t0 + HEARTBEAT_UNHEALTHY_MS + 2_000;
    table.beat("remote", back, 0).await.unwrap();
    let changes = wait_changes(log.as_ref(), "remote", 4).await;
    assert_eq!(changes[3], (Liveness::Live, back));
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS + 500)).await;
    assert_eq!(liveness_changes(log.as_ref(), "remote").await.len(), 4);
    // The hosted echo kept beating on the runtime's clock all along: still one change.
    assert_eq!(liveness_changes(log.as_ref(), "echo").await.len(), 1);

    // Shutdown stops the beats.
    runtime.shutdown().await;
    let stopped = table.get("echo").await.unwrap().map(|r| r.last_seen_ms);
    clock.advance(1_000);
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS + 500)).await;
    assert_eq!(table.get("echo").await.unwrap().map(|r| r.last_seen_ms), stopped);
}
