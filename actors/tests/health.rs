//! Matching with the read models, on a real log (an SQLite file) with the projections running
//! beside the pipeline: an agent that starts failing becomes unhealthy and is left out while
//! another agent with the same capability takes the tasks; after its cool-down it gets one
//! trial task (half-open) and returns when that succeeds. And the runtime's heartbeats: on the
//! log every interval, one per interval across a restart, read by the health projection,
//! stopped at shutdown.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actors::registry::{AgentAction, change_agent};
use actors::{
    AgentFailure, HEARTBEAT_INTERVAL_MS, HostedAgent, InProcessAgent, Progress, STANDING_REFRESH_MS, Worker,
};
use async_trait::async_trait;
use common::*;
use events::signals::{HeartbeatEvent, heartbeat_stream};
use events::task::{AgentSelected, TaskEvent, TaskStatus};
use events::{AgentId, AgentStatus, DomainEvent, EventLog, KeyPair, TaskEnvelope, TaskId, TaskSpec, now_ms};
use projections::{Db, HealthReader, HealthStatus, ProjectionName, Projections};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_agents_beat_on_the_log_and_the_health_projection_reads_it() {
    let (_dir, log, db) = world().await;
    let key = Arc::new(KeyPair::generate());
    let echo = AgentId::new("echo").unwrap();
    let stream = heartbeat_stream(&echo);
    let projections = Projections::new(db.clone(), Arc::clone(&log), (*key).clone());
    let reader = HealthReader::new(db.clone());
    let options = || {
        let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&key));
        options.read_model = Some(db.clone());
        options
    };

    // The first beat is sent at start.
    let runtime = start(options()).await;
    let beats = log.read_stream(&stream, 1, 1_000).await.unwrap();
    assert_eq!(beats.len(), 1, "{beats:?}");
    let Ok(HeartbeatEvent::Beat(beat)) = HeartbeatEvent::from_recorded(&beats[0]) else {
        panic!("not a heartbeat: {:?}", beats[0])
    };
    assert_eq!(beat.agent_id, echo);
    projections.catch_up(ProjectionName::Health).await.unwrap();
    let report = reader.report_at("echo", now_ms()).await.unwrap();
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert_eq!(report.record.and_then(|r| r.last_heartbeat_ms), Some(beats[0].metadata.occurred_at_ms));

    // A restart beats again at once, but never twice for one interval; then every interval.
    runtime.shutdown().await;
    let runtime = start(options()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(3 * HEARTBEAT_INTERVAL_MS);
    let beats = loop {
        let beats = log.read_stream(&stream, 1, 1_000).await.unwrap();
        if beats.len() >= 3 {
            break beats;
        }
        assert!(tokio::time::Instant::now() < deadline, "too few beats: {beats:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let interval = i64::try_from(HEARTBEAT_INTERVAL_MS).unwrap();
    let intervals: HashSet<i64> = beats.iter().map(|b| b.metadata.occurred_at_ms / interval).collect();
    assert_eq!(intervals.len(), beats.len(), "one beat per interval: {beats:?}");
    projections.catch_up(ProjectionName::Health).await.unwrap();
    let last = beats.iter().map(|b| b.metadata.occurred_at_ms).max();
    let record = reader.report_at("echo", now_ms()).await.unwrap().record;
    assert!(record.and_then(|r| r.last_heartbeat_ms) >= last);

    // Shutdown stops them.
    runtime.shutdown().await;
    let stopped = log.read_stream(&stream, 1, 1_000).await.unwrap().len();
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS + 1_000)).await;
    assert_eq!(log.read_stream(&stream, 1, 1_000).await.unwrap().len(), stopped);
}
