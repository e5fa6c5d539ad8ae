//! What the gateway's tests share: a gateway on a real socket over a throwaway SQLite log,
//! with the projections' read models running beside it as in `pantheon up`, tokens, and a
//! test-only pipeline driver.
//!
//! The driver is a stand-in for the `actors` pipeline, which is built separately: it consumes
//! `TaskSubmitted` from the log and appends the phase events a real run would, by capability —
//! `fail` fails, `slow` starts running and reports progress but never finishes (for timeouts,
//! cancels and streams), any other capability (`echo`) completes with the input as output. It writes real, valid,
//! signed events to the real log; nothing is mocked.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use events::envelope::TaskEnvelope;
use events::task::*;
use events::{
    AgentId, AgentResult, DomainEvent, EventId, EventLog, ExpectedVersion, Filter, KeyPair, Metadata,
    SealedEnvelope, SignedResult, StartFrom, StreamId, SubscribeOptions, TaskEvent,
};
use gateway::{AuthConfig, GatewayConfig, VerifyingKey};
use serde_json::json;
use tokio::sync::oneshot;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A token for `subject` with `roles`, HS256 with the test secret.
pub fn token(subject: &str, roles: &[&str]) -> String {
    gateway::auth::issue_hs256_token(SECRET, subject, roles, 3_600).expect("token")
}

pub struct TestGateway {
    pub base: String,
    pub addr: SocketAddr,
    pub log: Arc<dyn EventLog>,
    pub http: reqwest::Client,
    pub admin: String,
    /// The read models' database the gateway reads (and the projections write).
    pub views: projections::Db,
    stop: Option<oneshot::Sender<()>>,
    stop_views: Option<oneshot::Sender<()>>,
    /// The projections beside the gateway (task views, audit ledger, …), until stopped.
    projections: Option<projections::RunningProjections>,
    /// The key the audit ledger's tree heads are signed with.
    pub audit_key: KeyPair,
    server: Option<tokio::task::JoinHandle<gateway::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop_views.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

pub fn auth_config() -> AuthConfig {
    let mut keys = vec![VerifyingKey::hs256(SECRET)];
    keys.push(
        VerifyingKey::rs256_pem(&std::fs::read(fixture("rs256.pub.pem")).expect("pem")).expect("rsa key"),
    );
    keys.push(
        VerifyingKey::eddsa_pem(&std::fs::read(fixture("ed25519.pub.pem")).expect("pem")).expect("ed key"),
    );
    AuthConfig::with_keys(keys)
}

pub fn config() -> GatewayConfig {
    let mut config = GatewayConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        auth_config(),
        KeyPair::generate(),
        b"webhook master secret for tests".to_vec(),
    );
    config.webhooks.allow_loopback = true;
    config.webhooks.backoff_initial = Duration::from_millis(50);
    config.webhooks.backoff_max = Duration::from_millis(200);
    config.webhooks.attempts_max = 3;
    config.webhooks.request_timeout = Duration::from_secs(2);
    config
}

impl TestGateway {
    /// Stops the server as `pantheon up` does on a signal, and waits for it to finish.
    pub async fn stop(mut self) -> gateway::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("the server task"),
            None => Ok(()),
        }
    }

    /// Stops the projections and waits for them (before checking the audit ledger as
    /// `pantheon audit verify` does, with no other writer on it).
    pub async fn stop_projections(&mut self) {
        if let Some(stop) = self.stop_views.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.projections.take() {
            running.join().await.expect("the projections stop cleanly");
        }
    }

    /// The SQLite file of the gateway's log.
    pub fn log_file(&self) -> PathBuf {
        self._dir.path().join("log.db")
    }

    pub async fn start() -> Self {
        Self::start_with(config()).await
    }

    pub async fn start_with(config: GatewayConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
        let log = store::open(&url).await.expect("log");
        Self::start_on_log(config, log, dir).await
    }

    pub async fn start_on_log(config: GatewayConfig, log: Arc<dyn EventLog>, dir: tempfile::TempDir) -> Self {
        let views_url = format!("sqlite://{}?mode=rwc", dir.path().join("views.db").display());
        Self::start_with_views(config, log, &views_url, dir).await
    }

    /// A gateway whose log and read models are both in a fresh database of testkit's
    /// throwaway PostgreSQL server (as `pantheon up --database postgres://…` runs).
    pub async fn start_on_postgres() -> Self {
        let url = testkit::postgres::fresh_database_url().await.expect("a fresh PostgreSQL database");
        let log = store::open(&url).await.expect("log");
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_with_views(config(), log, &url, dir).await
    }

    /// A gateway on `log` with its read models in the database at `views_url`.
    pub async fn start_with_views(
        mut config: GatewayConfig,
        log: Arc<dyn EventLog>,
        views_url: &str,
        dir: tempfile::TempDir,
    ) -> Self {
        gateway::webhooks::install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("PANTHEON_LOG")
                    .unwrap_or_else(|_| "gateway=error".into()),
            )
            .with_test_writer()
            .try_init();
        let views = projections::Db::connect(views_url).await.expect("read models");
        config.read_model = Some(views.clone());
        if config.agent_admin.is_none() {
            config.agent_admin =
                Some(Arc::new(LogAdmin { log: log.clone(), federation: KeyPair::from_seed([1; 32]) }));
        }
        let (stop_views, views_stopped) = oneshot::channel::<()>();
        let audit_key = KeyPair::generate();
        let running =
            projections::Projections::new(views.clone(), log.clone(), audit_key.clone()).spawn(async move {
                let _ = views_stopped.await;
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(gateway::serve_on(listener, config, log.clone(), async move {
            let _ = stopped.await;
        }));
        let gateway = Self {
            base: format!("http://{addr}"),
            addr,
            log,
            http: reqwest::Client::builder().no_proxy().build().expect("client"),
            admin: token("root", &["admin"]),
            views,
            stop: Some(stop),
            stop_views: Some(stop_views),
            projections: Some(running),
            audit_key,
            server: Some(server),
            _dir: dir,
        };
        for _ in 0..100 {
            if gateway.http.get(format!("{}/healthz", gateway.base)).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        gateway
    }

    /// `GET path` until the answer's `tasks` holds `count` tasks (the task view follows the
    /// log within moments); the last answer.
    pub async fn list_tasks(&self, path: &str, token: &str, count: usize) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let response = self.get(path, token).await;
            assert_eq!(response.status(), 200, "GET {path}");
            let page: serde_json::Value = response.json().await.expect("json");
            if page["tasks"].as_array().map(Vec::len) == Some(count) || std::time::Instant::now() > deadline {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, token: &str, body: serde_json::Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(&body).send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// Submits a task as `token`'s principal; returns its id.
    pub async fn submit(&self, token: &str, body: serde_json::Value) -> String {
        let response = self.post_json("/tasks/submit", token, body).await;
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.expect("json");
        body["task_id"].as_str().expect("task_id").to_string()
    }

    /// Waits until the task's stream holds an event of `event_type`.
    pub async fn wait_for_event(&self, task_id: &str, event_type: &str) -> Vec<events::RecordedEvent> {
        let stream = StreamId::new(format!("task-{task_id}")).expect("stream");
        // Generous: on a loaded 2-core machine a webhook's first attempt can take seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let events = self.log.read_stream(&stream, 1, 1_000).await.expect("read");
            if events.iter().any(|e| e.event_type.as_str() == event_type) {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {task_id} never got {event_type} in 30 s");
    }
}

/// Asserts an error response: status, JSON body, stable code.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(content_type.starts_with("application/json"), "content-type {content_type}");
    let body: serde_json::Value = response.json().await.expect("json body");
    assert_eq!(body["error"]["code"], code, "body {body}");
    body
}

/// The test-only pipeline driver (see the module doc).
pub struct Driver {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Driver {
    pub async fn start(log: Arc<dyn EventLog>) -> Self {
        let options = SubscribeOptions {
            filter: Filter::category("task")
                .with_types([events::EventType::new("task_submitted").expect("type")]),
            start: StartFrom::Beginning,
        };
        let name = format!("test-driver-{}", uuid::Uuid::new_v4().simple());
        let mut subscription = log.subscribe(&name, options).await.expect("subscribe");
        let task = tokio::spawn(async move {
            while let Ok(delivery) = subscription.next().await {
                let position = delivery.event.position;
                if let Ok(TaskEvent::Submitted(submitted)) = TaskEvent::from_recorded(&delivery.event) {
                    let log = log.clone();
                    tokio::spawn(async move { drive(log, submitted).await });
                }
                let _ = subscription.ack(position).await;
            }
        });
        Self { task }
    }
}

async fn drive(log: Arc<dyn EventLog>, submitted: TaskSubmitted) {
    let federation = KeyPair::from_seed([1; 32]);
    let agent_key = KeyPair::from_seed([2; 32]);
    let task_id = submitted.task_id;
    let agent = AgentId::new("echo").expect("agent id");
    let stream = StreamId::task(task_id);
    let spec = submitted.spec.clone();
    let envelope = SealedEnvelope::seal(
        TaskEnvelope {
            task_id,
            attempt: 1,
            agent_id: agent.clone(),
            capability: spec.capability.clone(),
            description: spec.description.clone(),
            input: spec.input.clone(),
            context: json!({}),
            issued_at_ms: events::now_ms(),
            expires_at_ms: i64::MAX,
        },
        &federation,
    )
    .expect("seal");
    let mut phases = vec![
        TaskEvent::IngressScreened(IngressScreened { findings: vec![], redacted_description: None }),
        TaskEvent::ContextGathered(ContextGathered {
            similar_tasks: vec![],
            best_practices: vec![],
            pitfalls: vec![],
            complexity: 0.1,
            sources: vec![],
        }),
        TaskEvent::AgentSelected(AgentSelected { agent_id: agent.clone(), attempt: 1, candidates: vec![] }),
        TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope: envelope.clone() }),
        TaskEvent::ExecutionStarted(ExecutionStarted { agent_id: agent.clone(), attempt: 1 }),
        TaskEvent::ProgressReported(ProgressReported {
            agent_id: agent.clone(),
            attempt: 1,
            percent: Some(50),
            message: "half way".into(),
        }),
    ];
    match spec.capability.as_str() {
        "slow" => {}
        // Refused at ingress, as the pipeline refuses a capability no agent offers.
        "teleport" => {
            phases = vec![TaskEvent::Rejected(events::task::TaskRejected {
                code: events::task::RejectionCode::UnknownCapability,
                reason: "no registered agent offers the capability \"teleport\"".into(),
                findings: vec![],
            })];
        }
        "fail" => phases.push(TaskEvent::Failed(TaskFailed {
            code: FailureCode::TaskError,
            reason: "asked to fail".into(),
        })),
        // Ends as the pipeline ends a task nobody answered: failed a moment after its deadline.
        "deadline" => phases.push(TaskEvent::Failed(TaskFailed {
            code: FailureCode::DeadlineExceeded,
            reason: "the agent did not answer before the deadline".into(),
        })),
        _ => {
            let result = SignedResult::sign(
                AgentResult {
                    task_id,
                    attempt: 1,
                    agent_id: agent.clone(),
                    envelope_hash: envelope.hash,
                    output: spec.input.clone(),
                    completed_at_ms: events::now_ms(),
                },
                &agent_key,
            )
            .expect("sign");
            phases.extend([
                TaskEvent::ResultReceived(ResultReceived { result: result.clone(), redaction: None }),
                TaskEvent::ResultVerified(ResultVerified {
                    agent_id: agent.clone(),
                    result_hash: result.hash,
                }),
                TaskEvent::ResultStored(ResultStored { result_hash: result.hash, output_bytes: 1 }),
                TaskEvent::EgressScreened(EgressScreened { findings: vec![], redacted_output: None }),
                TaskEvent::Completed(TaskCompleted { agent_id: agent, output: spec.input.clone() }),
            ]);
        }
    }
    // One append per phase, as the pipeline's actors do: streams see them arrive one by one.
    for event in phases {
        if spec.capability == "deadline" && matches!(event, TaskEvent::Failed(_)) {
            tokio::time::sleep(Duration::from_millis(spec.timeout_ms + 500)).await;
        }
        let so_far = log.read_stream(&stream, 1, 1_000).await.expect("read");
        if so_far.iter().any(|e| e.event_type.as_str() == "task_cancelled") {
            return; // cancelled meanwhile: the pipeline stops
        }
        let version = so_far.last().map_or(0, |e| e.version);
        let new_event = event.to_new_event(EventId::new(), Metadata::now("test-driver")).expect("encode");
        if log.append(&stream, ExpectedVersion::Exact(version), vec![new_event]).await.is_err() {
            return; // cancelled (or otherwise changed) meanwhile: the driver stops, as a phase would
        }
    }
}

/// What `pantheon up` gives the gateway to manage agents, for a gateway without the pipeline:
/// registrations and changes appended to the agents' streams, passports issued with the test
/// federation key (the driver's).
#[derive(Debug)]
pub struct LogAdmin {
    pub log: Arc<dyn EventLog>,
    pub federation: KeyPair,
}

impl LogAdmin {
    async fn append(
        &self,
        agent: &events::AgentId,
        event: events::AgentEvent,
    ) -> Result<(), gateway::AgentAdminError> {
        use events::{Aggregate, DomainEvent};
        let stream = StreamId::agent(agent);
        let recorded = self
            .log
            .read_stream(&stream, 1, 1_000)
            .await
            .map_err(|e| gateway::AgentAdminError::Failed(e.to_string()))?;
        let mut state = events::AgentState::default();
        for event in &recorded {
            if let Ok(decoded) = events::AgentEvent::from_recorded(event) {
                let _ = state.apply(&decoded);
            }
        }
        let registering =
            matches!(event, events::AgentEvent::Registered(_) | events::AgentEvent::PassportRenewed(_));
        if recorded.is_empty() && !registering {
            return Err(gateway::AgentAdminError::NotFound(format!("agent {agent}")));
        }
        let event = match (registering, state.registration.is_some(), event) {
            (true, true, events::AgentEvent::Registered(r)) => {
                events::AgentEvent::PassportRenewed(events::agent::PassportRenewed { passport: r.passport })
            }
            (_, _, event) => event,
        };
        state.apply(&event).map_err(|e| gateway::AgentAdminError::Conflict(e.to_string()))?;
        let expected = if recorded.is_empty() {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(recorded.len() as u64)
        };
        let new = event
            .to_new_event(EventId::new(), Metadata::now("test-admin"))
            .map_err(|e| gateway::AgentAdminError::Failed(e.to_string()))?;
        self.log
            .append(&stream, expected, vec![new])
            .await
            .map_err(|e| gateway::AgentAdminError::Failed(e.to_string()))?;
        Ok(())
    }
}

impl gateway::AgentAdmin for LogAdmin {
    fn register(
        &self,
        request: gateway::routes::agents::RegisterAgent,
        _by: String,
    ) -> futures::future::BoxFuture<'_, Result<events::SignedPassport, gateway::AgentAdminError>> {
        Box::pin(async move {
            let agent = events::AgentId::new(request.agent_id.as_str())
                .map_err(|e| gateway::AgentAdminError::Failed(e.to_string()))?;
            let now = events::now_ms();
            let passport = events::SignedPassport::issue(
                events::Passport {
                    agent_id: agent.clone(),
                    public_key: request.public_key,
                    capabilities: request.capabilities,
                    not_before_ms: now - 60_000,
                    not_after_ms: now + 86_400_000,
                },
                &self.federation,
            )
            .map_err(|e| gateway::AgentAdminError::Failed(e.to_string()))?;
            let event = events::AgentEvent::Registered(events::agent::AgentRegistered {
                passport: passport.clone(),
                max_concurrency: request.max_concurrency.unwrap_or(4),
                transport: request.transport,
                slo: None,
            });
            self.append(&agent, event).await?;
            Ok(passport)
        })
    }

    fn change(
        &self,
        agent: events::AgentId,
        change: gateway::AgentChange,
        by: String,
        reason: String,
    ) -> futures::future::BoxFuture<'_, Result<(), gateway::AgentAdminError>> {
        use events::agent::{AgentReinstated, AgentRetired, AgentSuspended};
        Box::pin(async move {
            let event = match change {
                gateway::AgentChange::Suspend => events::AgentEvent::Suspended(AgentSuspended { reason, by }),
                gateway::AgentChange::Reinstate => {
                    events::AgentEvent::Reinstated(AgentReinstated { reason, by })
                }
                gateway::AgentChange::Retire => events::AgentEvent::Retired(AgentRetired { reason, by }),
            };
            self.append(&agent, event).await
        })
    }
}
