//! # pantheon-agent
//!
//! Pantheon agents in Rust, following the agent protocol v1 (`schemas/agent-protocol.md`):
//! an [`Agent`] holds its key and the federation's public key and a handler per capability,
//! checks every sealed envelope (the federation's seal, sealed for this agent, not expired)
//! before a handler runs, and answers the handler's output as a result signed with its key.
//! A handler is given a [`Task`]: the envelope's fields, and [`Task::progress`] to report how
//! it goes.
//!
//! The same agent runs in every mode the federation speaks:
//! - **push over HTTP** ([`Agent::serve`], [`Agent::router`]): the federation `POST`s each
//!   envelope; the answer streams the progress reports, then the signed result (NDJSON);
//! - **pull over HTTP** ([`Agent::pull`]): no address needed, the agent long-polls the
//!   gateway for its work, holds a lease, heartbeats;
//! - **push over NATS** ([`Agent::serve_nats`]): the agent answers requests on its subject,
//!   in a queue group with its other workers;
//! - **pull over NATS** ([`Agent::pull_nats`]): the agent asks the federation's processes
//!   for its work on `pantheon.work.<id>.*`, connecting out only.
//!
//! [`Client`] submits tasks to a gateway and follows them: waiting for the answer, polling,
//! or streaming its events as they happen.
//!
//! ```no_run
//! use pantheon_agent::Agent;
//! # async fn run(key: events::KeyPair, federation: events::PublicKey) -> std::io::Result<()> {
//! let agent = Agent::new("reverser", key, federation)
//!     .capability("reverse", |task| {
//!         task.progress(Some(50), "reversing");
//!         Ok(serde_json::json!(task.input.as_str().unwrap_or_default().chars().rev().collect::<String>()))
//!     });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! agent.serve(listener).await
//! # }
//! ```

mod client;
mod http;
mod nats;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use events::{AgentId, AgentResult, KeyPair, PublicKey, SealedEnvelope, SignedResult, TaskEnvelope};
use serde_json::Value;
use tokio::sync::mpsc;

pub use client::{Client, ClientError, EventStream};

/// Why an envelope is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Not a sealed envelope.
    #[error("not a sealed envelope: {0}")]
    Malformed(String),
    /// Sealed by a key other than the federation's.
    #[error("sealed by another key than the federation's")]
    ForeignSeal,
    /// The seal does not verify, or the envelope expired.
    #[error("{0}")]
    Seal(String),
    /// Sealed for another agent.
    #[error("sealed for agent {0}")]
    OtherAgent(AgentId),
}

/// A progress report: percent done if known, and what the handler is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// 0 to 100, if known.
    pub percent: Option<u8>,
    /// What it is doing.
    pub message: String,
}

/// What a handler is given: the envelope's task (its fields through `Deref`), and where its
/// progress goes.
pub struct Task {
    envelope: TaskEnvelope,
    progress: Option<mpsc::UnboundedSender<Progress>>,
}

impl Task {
    /// The envelope the federation sealed.
    pub fn envelope(&self) -> &TaskEnvelope {
        &self.envelope
    }

    /// Reports progress to the federation (recorded as `progress_reported` on the task and
    /// streamed to its followers); `percent` is capped at 100. In every mode, reports reach
    /// the federation in the order made, before the result.
    pub fn progress(&self, percent: Option<u8>, message: impl Into<String>) {
        if let Some(progress) = &self.progress {
            let _ = progress.send(Progress { percent: percent.map(|p| p.min(100)), message: message.into() });
        }
    }
}

impl std::ops::Deref for Task {
    type Target = TaskEnvelope;

    fn deref(&self) -> &TaskEnvelope {
        &self.envelope
    }
}

/// What a handler answers: its output, or why it failed.
pub type Outcome = Result<Value, String>;

type Handler = Arc<dyn Fn(Task) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// An agent: its id and key, the federation's public key, and a handler per capability.
#[derive(Clone)]
pub struct Agent {
    id: String,
    key: Arc<KeyPair>,
    federation: PublicKey,
    handlers: HashMap<String, Handler>,
}

/// An envelope that passed the checks, with the handler that runs it.
struct Admitted {
    sealed: SealedEnvelope,
    handler: Handler,
}

impl Agent {
    /// An agent `id` signing with `key`, trusting envelopes sealed by `federation`.
    pub fn new(id: impl Into<String>, key: KeyPair, federation: PublicKey) -> Self {
        Self { id: id.into(), key: Arc::new(key), federation, handlers: HashMap::new() }
    }

    /// Handles tasks of `capability` with `handler`, a function that returns at once (it runs
    /// on the async runtime: work that blocks belongs in [`Agent::capability_async`] with
    /// `tokio::task::spawn_blocking`).
    pub fn capability(
        mut self,
        capability: impl Into<String>,
        handler: impl Fn(&Task) -> Outcome + Send + Sync + 'static,
    ) -> Self {
        let handler = Arc::new(handler);
        self.handlers.insert(
            capability.into(),
            Arc::new(move |task: Task| {
                let handler = Arc::clone(&handler);
                Box::pin(async move { handler(&task) })
            }),
        );
        self
    }

    /// Handles tasks of `capability` with an async `handler` (one that calls other services).
    pub fn capability_async<F>(
        mut self,
        capability: impl Into<String>,
        handler: impl Fn(Task) -> F + Send + Sync + 'static,
    ) -> Self
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        self.handlers.insert(capability.into(), Arc::new(move |task: Task| Box::pin(handler(task))));
        self
    }

    /// The agent's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public key results are signed with (what the agent registers with).
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The envelope of `sealed` when it is the federation's, for this agent, and valid at
    /// `now_ms`; why not otherwise.
    pub fn check(&self, sealed: &SealedEnvelope, now_ms: i64) -> Result<(), Refused> {
        if sealed.sealed_by != self.federation {
            return Err(Refused::ForeignSeal);
        }
        sealed.verify(&self.federation, now_ms).map_err(|e| Refused::Seal(e.to_string()))?;
        if sealed.envelope.agent_id.as_str() != self.id {
            return Err(Refused::OtherAgent(sealed.envelope.agent_id.clone()));
        }
        Ok(())
    }

    /// The checks before any work: a sealed envelope, valid, for this agent, of a capability
    /// it offers; the status and reason of the refusal otherwise.
    fn admit(&self, envelope: &Value) -> Result<Admitted, (StatusCode, String)> {
        let sealed: SealedEnvelope = serde_json::from_value(envelope.clone())
            .map_err(|e| (StatusCode::BAD_REQUEST, Refused::Malformed(e.to_string()).to_string()))?;
        self.check(&sealed, events::now_ms())
            .map_err(|refused| (StatusCode::FORBIDDEN, refused.to_string()))?;
        let handler = self.handlers.get(&sealed.envelope.capability).cloned().ok_or_else(|| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("this agent does not offer {:?}", sealed.envelope.capability),
            )
        })?;
        Ok(Admitted { sealed, handler })
    }

    /// Runs an admitted envelope: the handler's output signed, or why it failed.
    async fn work(
        &self,
        admitted: Admitted,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<SignedResult, String> {
        let Admitted { sealed, handler } = admitted;
        let task = Task { envelope: sealed.envelope.clone(), progress };
        let output = handler(task).await?;
        let envelope = &sealed.envelope;
        let result = AgentResult {
            task_id: envelope.task_id,
            attempt: envelope.attempt,
            agent_id: envelope.agent_id.clone(),
            envelope_hash: sealed.hash,
            output,
            completed_at_ms: events::now_ms(),
        };
        SignedResult::sign(result, &self.key).map_err(|e| e.to_string())
    }

    /// Runs `admitted`, handing each progress report to `report` as it comes and in order,
    /// the last before the outcome is returned.
    async fn work_reporting<F, R>(&self, admitted: Admitted, mut report: F) -> Result<SignedResult, String>
    where
        F: FnMut(Progress) -> R,
        R: Future<Output = ()>,
    {
        let (progress, mut reports) = mpsc::unbounded_channel();
        let work = self.work(admitted, Some(progress));
        tokio::pin!(work);
        loop {
            tokio::select! {
                Some(progress) = reports.recv() => report(progress).await,
                outcome = &mut work => {
                    while let Ok(progress) = reports.try_recv() {
                        report(progress).await;
                    }
                    return outcome;
                }
            }
        }
    }

    /// The answer to a request body `{"envelope": …}`: the signed result, or the status and
    /// reason of a refusal (4xx) or a failure (500). Progress reports are dropped.
    pub async fn answer(&self, body: &Value) -> Result<SignedResult, (StatusCode, String)> {
        let admitted = self.admit(body.get("envelope").unwrap_or(&Value::Null))?;
        self.work(admitted, None).await.map_err(|reason| (StatusCode::INTERNAL_SERVER_ERROR, reason))
    }
}

/// Reports a failed call on standard error (the SDK carries no logging framework).
fn warn(message: &str) {
    eprintln!("pantheon-agent: {message}");
}

#[cfg(test)]
mod tests {
    use events::{Passport, TaskEnvelope, TaskId};

    use super::*;

    pub(crate) fn sealed(federation: &KeyPair, agent: &str, capability: &str) -> SealedEnvelope {
        let now = events::now_ms();
        let envelope = TaskEnvelope {
            task_id: TaskId::new(),
            attempt: 1,
            agent_id: AgentId::new(agent).unwrap(),
            capability: capability.into(),
            description: "reverse it".into(),
            input: serde_json::json!("drawer"),
            context: Value::Null,
            issued_at_ms: now,
            expires_at_ms: now + 60_000,
        };
        SealedEnvelope::seal(envelope, federation).unwrap()
    }

    pub(crate) fn agent(federation: &KeyPair) -> Agent {
        Agent::new("reverser", KeyPair::generate(), federation.public_key()).capability("reverse", |task| {
            task.progress(Some(50), "halfway");
            Ok(serde_json::json!(task.input.as_str().unwrap_or_default().chars().rev().collect::<String>()))
        })
    }

    #[tokio::test]
    async fn a_sealed_envelope_is_answered_with_a_result_that_verifies() {
        let federation = KeyPair::generate();
        let agent = agent(&federation);
        let envelope = sealed(&federation, "reverser", "reverse");
        let result = agent.answer(&serde_json::json!({ "envelope": envelope })).await.unwrap();
        assert_eq!(result.result.output, "reward");
        let passport = Passport {
            agent_id: AgentId::new("reverser").unwrap(),
            public_key: agent.public_key(),
            capabilities: vec!["reverse".into()],
            not_before_ms: 0,
            not_after_ms: i64::MAX,
        };
        result.verify(&passport, &envelope).expect("the federation accepts it");
    }

    #[tokio::test]
    async fn an_async_handler_answers_and_its_failure_is_the_reason() {
        let federation = KeyPair::generate();
        let agent = Agent::new("reverser", KeyPair::generate(), federation.public_key()).capability_async(
            "reverse",
            |task: Task| async move {
                tokio::task::yield_now().await;
                match task.input.as_str() {
                    Some("fail") => Err("asked to fail".to_string()),
                    _ => Ok(serde_json::json!("ok")),
                }
            },
        );
        let mut envelope = sealed(&federation, "reverser", "reverse");
        let ok = agent.answer(&serde_json::json!({ "envelope": envelope })).await.unwrap();
        assert_eq!(ok.result.output, "ok");
        envelope.envelope.input = serde_json::json!("fail");
        let envelope = SealedEnvelope::seal(envelope.envelope, &federation).unwrap();
        let failed = agent.answer(&serde_json::json!({ "envelope": envelope })).await.unwrap_err();
        assert_eq!(failed, (StatusCode::INTERNAL_SERVER_ERROR, "asked to fail".to_string()));
    }

    #[tokio::test]
    async fn forged_foreign_and_misdirected_envelopes_are_refused() {
        let federation = KeyPair::generate();
        let agent = agent(&federation);
        let status = async |envelope: &SealedEnvelope| {
            agent.answer(&serde_json::json!({ "envelope": envelope })).await.unwrap_err().0
        };
        let mut tampered = sealed(&federation, "reverser", "reverse");
        tampered.envelope.description = "wire the money".into();
        assert_eq!(status(&tampered).await, StatusCode::FORBIDDEN);
        assert_eq!(status(&sealed(&KeyPair::generate(), "reverser", "reverse")).await, StatusCode::FORBIDDEN);
        assert_eq!(status(&sealed(&federation, "someone-else", "reverse")).await, StatusCode::FORBIDDEN);
        assert_eq!(
            status(&sealed(&federation, "reverser", "translate")).await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let malformed = agent.answer(&serde_json::json!({ "envelope": 3 })).await.unwrap_err();
        assert_eq!(malformed.0, StatusCode::BAD_REQUEST);
    }
}
