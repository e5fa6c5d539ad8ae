//! What the pipeline's tests share: logs on real backends, a runtime with test agents, and
//! assertions over a task's events.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actors::{Runtime, RuntimeOptions};
use events::{EventLog, KeyPair, RecordedEvent, StreamId, TaskId};

/// An SQLite log in a fresh temp dir (kept alive by the returned dir).
pub async fn sqlite_log() -> (tempfile::TempDir, Arc<dyn EventLog>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pantheon.db").display());
    let log = store::open(&url).await.expect("open sqlite log");
    (dir, log)
}

/// Options for an SQLite-backed runtime.
pub fn sqlite_options(log: Arc<dyn EventLog>, key: Arc<KeyPair>) -> RuntimeOptions {
    let mut options = RuntimeOptions::new(log, key);
    options.next_is_cancel_safe = true;
    options
}

/// Every event of a task.
pub async fn events_of(log: &dyn EventLog, task: TaskId) -> Vec<RecordedEvent> {
    log.read_stream(&StreamId::task(task), 1, 10_000).await.expect("read task")
}

/// How many times each event type appears in a task's stream.
pub async fn counts(log: &dyn EventLog, task: TaskId) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for event in events_of(log, task).await {
        *out.entry(event.event_type.to_string()).or_insert(0) += 1;
    }
    out
}

/// The event types of a task, in order.
pub async fn types(log: &dyn EventLog, task: TaskId) -> Vec<String> {
    events_of(log, task).await.into_iter().map(|e| e.event_type.to_string()).collect()
}

/// Waits until the task's stream holds an event of `event_type`.
pub async fn wait_for_event(log: &dyn EventLog, task: TaskId, event_type: &str) {
    let started = std::time::Instant::now();
    while !types(log, task).await.iter().any(|t| t == event_type) {
        assert!(started.elapsed() < WAIT, "task {task} never got {event_type}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The event types of a completed echo task, in order.
pub const HAPPY_PATH: &[&str] = &[
    "task_submitted",
    "ingress_screened",
    "context_gathered",
    "agent_selected",
    "envelope_sealed",
    "execution_started",
    "result_received",
    "result_verified",
    "result_stored",
    "egress_screened",
    "task_completed",
];

pub const WAIT: Duration = Duration::from_secs(30);

/// Serves `app` on a free port of 127.0.0.1 for the rest of the test; its base URL.
pub async fn serve_http(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Starts a runtime, panicking on failure.
pub async fn start(options: RuntimeOptions) -> Runtime {
    Runtime::start(options).await.expect("runtime starts")
}

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use actors::{AgentEndpoint, AgentFailure, HostedAgent, InProcessAgent, Progress, Worker};
use async_trait::async_trait;
use events::{
    AgentId, AgentResult, AppendOutcome, Delivery, ExpectedVersion, LogError, NewEvent, Position,
    SealedEnvelope, SignedResult, SubscribeOptions, Subscription, TaskEnvelope, Version,
};
use tokio::sync::mpsc;

/// Fails its first `failures` calls (the agent's fault), then echoes.
pub struct Flaky {
    pub failures: u32,
    pub calls: AtomicU32,
}

#[async_trait]
impl Worker for Flaky {
    async fn work(
        &self,
        envelope: &TaskEnvelope,
        _: &mpsc::Sender<Progress>,
    ) -> Result<serde_json::Value, AgentFailure> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if call < self.failures {
            return Err(AgentFailure::agent(format!("flaky failure {}", call + 1)));
        }
        Ok(serde_json::Value::String(envelope.description.clone()))
    }
}

/// Reports progress, then sleeps, then echoes.
pub struct Slow(pub Duration);

#[async_trait]
impl Worker for Slow {
    async fn work(
        &self,
        envelope: &TaskEnvelope,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<serde_json::Value, AgentFailure> {
        let _ = progress.send(Progress { percent: Some(10), message: "warming up".into() }).await;
        tokio::time::sleep(self.0).await;
        Ok(serde_json::Value::String(envelope.description.clone()))
    }
}

/// Always fails, blaming the task.
pub struct Refuser;

#[async_trait]
impl Worker for Refuser {
    async fn work(
        &self,
        _: &TaskEnvelope,
        _: &mpsc::Sender<Progress>,
    ) -> Result<serde_json::Value, AgentFailure> {
        Err(AgentFailure::task("this input can never work"))
    }
}

/// A hosted in-process agent running `worker`.
pub fn hosted(id: &str, capability: &str, federation: &KeyPair, worker: Arc<dyn Worker>) -> HostedAgent {
    let key = KeyPair::generate();
    let public_key = key.public_key();
    let agent_id = AgentId::new(id).unwrap();
    HostedAgent {
        id: agent_id.clone(),
        capabilities: vec![capability.into()],
        max_concurrency: 16,
        public_key,
        endpoint: Arc::new(InProcessAgent::new(agent_id, key, federation.public_key(), worker)),
    }
}

/// How a misbehaving agent cheats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cheat {
    /// Signs with a key its passport does not name.
    Forge,
    /// Changes the output after signing.
    Tamper,
    /// Answers with a genuine result it gave for an earlier envelope.
    Replay,
}

/// An agent that cheats on its results.
pub struct Cheater {
    pub id: AgentId,
    pub key: KeyPair,
    pub cheat: Cheat,
    pub last: std::sync::Mutex<Option<SignedResult>>,
}

#[async_trait]
impl AgentEndpoint for Cheater {
    async fn execute(
        &self,
        envelope: &SealedEnvelope,
        _: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        let result = AgentResult {
            task_id: envelope.envelope.task_id,
            attempt: envelope.envelope.attempt,
            agent_id: self.id.clone(),
            envelope_hash: envelope.hash,
            output: serde_json::json!("trust me"),
            completed_at_ms: events::now_ms(),
        };
        let honest = SignedResult::sign(result.clone(), &self.key).unwrap();
        let previous = self.last.lock().unwrap().replace(honest.clone());
        Ok(match self.cheat {
            Cheat::Forge => SignedResult::sign(result, &KeyPair::generate()).unwrap(),
            Cheat::Tamper => {
                let mut tampered = honest;
                tampered.result.output = serde_json::json!("something else");
                tampered
            }
            Cheat::Replay => previous.unwrap_or(honest),
        })
    }
}

pub fn cheater(id: &str, capability: &str, cheat: Cheat) -> HostedAgent {
    let key = KeyPair::generate();
    let agent_id = AgentId::new(id).unwrap();
    HostedAgent {
        id: agent_id.clone(),
        capabilities: vec![capability.into()],
        max_concurrency: 16,
        public_key: key.public_key(),
        endpoint: Arc::new(Cheater { id: agent_id, key, cheat, last: std::sync::Mutex::new(None) }),
    }
}

/// A real log whose subscriptions deliver every event twice (at-least-once taken literally).
#[derive(Debug)]
pub struct DoublingLog {
    pub inner: Arc<dyn EventLog>,
    pub duplicates: Arc<AtomicU64>,
}

struct DoublingSubscription {
    inner: Box<dyn Subscription>,
    again: Option<Delivery>,
    duplicates: Arc<AtomicU64>,
}

#[async_trait]
impl Subscription for DoublingSubscription {
    async fn next(&mut self) -> Result<Delivery, LogError> {
        if let Some(mut again) = self.again.take() {
            again.attempt += 1;
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return Ok(again);
        }
        let delivery = self.inner.next().await?;
        self.again = Some(delivery.clone());
        Ok(delivery)
    }

    async fn ack(&mut self, position: Position) -> Result<(), LogError> {
        self.inner.ack(position).await
    }

    async fn nack(&mut self, position: Position) -> Result<(), LogError> {
        self.inner.nack(position).await
    }
}

#[async_trait]
impl EventLog for DoublingLog {
    async fn append(
        &self,
        s: &StreamId,
        e: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendOutcome, LogError> {
        self.inner.append(s, e, events).await
    }
    async fn read_stream(
        &self,
        s: &StreamId,
        from: Version,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_stream(s, from, limit).await
    }
    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        self.inner.read_all(from, limit).await
    }
    async fn stream_version(&self, s: &StreamId) -> Result<Version, LogError> {
        self.inner.stream_version(s).await
    }
    async fn subscribe(
        &self,
        name: &str,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscription>, LogError> {
        let inner = self.inner.subscribe(name, options).await?;
        Ok(Box::new(DoublingSubscription { inner, again: None, duplicates: Arc::clone(&self.duplicates) }))
    }

    async fn delete_subscription(&self, name: &str) -> Result<bool, LogError> {
        self.inner.delete_subscription(name).await
    }
}

/// Asserts that a completed echo task has each phase's output exactly once.
pub async fn assert_exactly_once(log: &dyn EventLog, task: TaskId) {
    let types = types(log, task).await;
    assert_eq!(types, HAPPY_PATH, "task {task}");
}
