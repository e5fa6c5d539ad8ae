//! Test support: a real log (SQLite file or a fresh PostgreSQL database), and tasks driven
//! through their events with chosen times.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use events::agent::{AgentRegistered, AgentTransport, Slo};
use events::signals::{AgentHeartbeat, HeartbeatEvent, heartbeat_stream};
use events::task::{
    AgentSelected, CandidateScore, Channel, ContextGathered, EgressScreened, EnvelopeSealed, ExecutionFailed,
    ExecutionStarted, ExecutionTimedOut, FailureCause, IngressScreened, ResultReceived, ResultStored,
    ResultVerified, TaskCancelled, TaskCompleted, TaskSubmitted,
};
use events::{
    AgentEvent, AgentId, AgentResult, DomainEvent, EventId, EventLog, ExpectedVersion, KeyPair, Metadata,
    NewEvent, Passport, SealedEnvelope, SignedPassport, SignedResult, StreamId, TaskEnvelope, TaskEvent,
    TaskId, TaskSpec,
};
use projections::{Db, Projections};

/// A log and the read models' database.
pub struct World {
    pub log: Arc<dyn EventLog>,
    pub url: String,
    pub db: Db,
    pub key: KeyPair,
    _dir: Option<tempfile::TempDir>,
}

impl World {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("pantheon.db").display());
        Self::open(url, Some(dir)).await
    }

    pub async fn postgres() -> Self {
        let url = testkit::postgres::fresh_database_url().await.expect("a fresh PostgreSQL database");
        Self::open(url, None).await
    }

    pub async fn open(url: String, dir: Option<tempfile::TempDir>) -> Self {
        let log = store::open(&url).await.expect("open the log");
        let db = Db::connect(&url).await.expect("open the read models");
        Self { log, url, db, key: KeyPair::from_seed([7; 32]), _dir: dir }
    }

    pub fn projections(&self) -> Projections {
        Projections::new(self.db.clone(), self.log.clone(), self.key.clone())
    }

    pub async fn append<E: DomainEvent>(&self, stream: &StreamId, event: &E, at_ms: i64, emitter: &str) {
        let metadata = Metadata {
            occurred_at_ms: at_ms,
            causation_id: None,
            correlation_id: None,
            emitter: emitter.to_string(),
            traceparent: None,
        };
        let new = event.to_new_event(EventId::new(), metadata).expect("encode");
        self.log.append(stream, ExpectedVersion::Any, vec![new]).await.expect("append");
    }

    pub async fn register(&self, agent: &str, capabilities: &[&str], slo: Option<Slo>, at_ms: i64) {
        let agent_id = AgentId::new(agent).unwrap();
        let key = KeyPair::from_seed([9; 32]);
        let passport = Passport {
            agent_id: agent_id.clone(),
            public_key: key.public_key(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            not_before_ms: 0,
            not_after_ms: i64::MAX,
        };
        let passport =
            SignedPassport { passport, issued_by: self.key.public_key(), signature: self.key.sign(b"test") };
        let event = AgentEvent::Registered(AgentRegistered {
            passport,
            max_concurrency: 4,
            transport: AgentTransport::InProcess { builtin: "echo".into() },
            slo,
        });
        self.append(&StreamId::agent(&agent_id), &event, at_ms, "registry").await;
    }

    pub async fn heartbeat(&self, agent: &str, at_ms: i64) {
        let agent_id = AgentId::new(agent).unwrap();
        let beat = HeartbeatEvent::Beat(AgentHeartbeat {
            agent_id: agent_id.clone(),
            tasks_in_flight: 0,
            sent_at_ms: at_ms,
        });
        self.append(&heartbeat_stream(&agent_id), &beat, at_ms, agent).await;
    }

    /// Submits a task and runs one attempt by `agent` to `outcome`, starting at `t0_ms`.
    pub fn task_events(
        &self,
        capability: &str,
        description: &str,
        submitter: &str,
        agent: &str,
        outcome: Outcome,
        t0_ms: i64,
    ) -> (StreamId, Vec<NewEvent>, TaskId) {
        let task_id = TaskId::new();
        let stream = StreamId::task(task_id);
        let mut batch = Vec::new();
        let agent_id = AgentId::new(agent).unwrap();
        let mut spec = TaskSpec::new(capability, description);
        spec.submitter = submitter.to_string();
        let submitted = TaskEvent::Submitted(TaskSubmitted {
            task_id,
            spec,
            channel: Channel::Local,
            signed_by: self.key.public_key(),
            signature: self.key.sign(b"test"),
        });
        batch.push(new_event(&submitted, t0_ms, "gateway"));
        batch.push(new_event(
            &TaskEvent::IngressScreened(IngressScreened { findings: vec![], redacted_description: None }),
            t0_ms + 1,
            "security",
        ));
        if matches!(outcome, Outcome::CancelledBeforeMatching) {
            let cancel = TaskEvent::Cancelled(TaskCancelled {
                by: "operator".into(),
                reason: "no longer needed".into(),
            });
            batch.push(new_event(&cancel, t0_ms + 2, "gateway"));
            return (stream, batch, task_id);
        }
        let context = TaskEvent::ContextGathered(ContextGathered {
            similar_tasks: vec![],
            best_practices: vec![],
            pitfalls: vec![],
            complexity: 0.5,
            sources: vec![],
        });
        batch.push(new_event(&context, t0_ms + 2, "context"));
        let candidate = CandidateScore {
            agent_id: agent_id.clone(),
            total: 0.9,
            capability_fit: 1.0,
            load: 1.0,
            success_rate: 0.5,
            latency: 0.5,
            reputation: 0.5,
            health: 1.0,
        };
        let selected = TaskEvent::AgentSelected(AgentSelected {
            agent_id: agent_id.clone(),
            attempt: 1,
            candidates: vec![candidate],
        });
        batch.push(new_event(&selected, t0_ms + 3, "matching"));
        let envelope = TaskEnvelope {
            task_id,
            attempt: 1,
            agent_id: agent_id.clone(),
            capability: capability.to_string(),
            description: description.to_string(),
            input: serde_json::Value::Null,
            context: serde_json::Value::Null,
            issued_at_ms: t0_ms + 4,
            expires_at_ms: t0_ms + 30_000,
        };
        let sealed = SealedEnvelope::seal(envelope, &self.key).expect("seal");
        let envelope_hash = sealed.hash;
        batch.push(new_event(
            &TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope: sealed }),
            t0_ms + 4,
            "federation",
        ));
        batch.push(new_event(
            &TaskEvent::ExecutionStarted(ExecutionStarted { agent_id: agent_id.clone(), attempt: 1 }),
            t0_ms + 5,
            "execution",
        ));
        match outcome {
            Outcome::Success { latency_ms } => {
                let done = t0_ms + 5 + latency_ms;
                let result = AgentResult {
                    task_id,
                    attempt: 1,
                    agent_id: agent_id.clone(),
                    envelope_hash,
                    output: serde_json::json!({"ok": true}),
                    completed_at_ms: done,
                };
                let signed = SignedResult::sign(result, &KeyPair::from_seed([9; 32])).expect("sign");
                let hash = signed.hash;
                batch.push(new_event(
                    &TaskEvent::ResultReceived(ResultReceived { result: signed, redaction: None }),
                    done,
                    "execution",
                ));
                batch.push(new_event(
                    &TaskEvent::ResultVerified(ResultVerified {
                        agent_id: agent_id.clone(),
                        result_hash: hash,
                    }),
                    done + 1,
                    "federation",
                ));
                batch.push(new_event(
                    &TaskEvent::ResultStored(ResultStored { result_hash: hash, output_bytes: 10 }),
                    done + 2,
                    "federation",
                ));
                batch.push(new_event(
                    &TaskEvent::EgressScreened(EgressScreened { findings: vec![], redacted_output: None }),
                    done + 3,
                    "security",
                ));
                batch.push(new_event(
                    &TaskEvent::Completed(TaskCompleted {
                        agent_id,
                        output: serde_json::json!({"ok": true}),
                    }),
                    done + 4,
                    "security",
                ));
            }
            Outcome::Failure { cause, after_ms } => {
                let failed = TaskEvent::ExecutionFailed(ExecutionFailed {
                    agent_id,
                    attempt: 1,
                    cause,
                    reason: "it broke".into(),
                });
                batch.push(new_event(&failed, t0_ms + 5 + after_ms, "execution"));
            }
            Outcome::Timeout { timeout_ms } => {
                let timed_out =
                    TaskEvent::ExecutionTimedOut(ExecutionTimedOut { agent_id, attempt: 1, timeout_ms });
                batch.push(new_event(&timed_out, t0_ms + 5 + timeout_ms as i64, "execution"));
            }
            Outcome::CancelledBeforeMatching | Outcome::StillRunning => {}
        }
        (stream, batch, task_id)
    }

    /// Submits a task and runs one attempt by `agent` to `outcome`, starting at `t0_ms`: one
    /// append of all its events.
    pub async fn task(
        &self,
        capability: &str,
        description: &str,
        submitter: &str,
        agent: &str,
        outcome: Outcome,
        t0_ms: i64,
    ) -> TaskId {
        let (stream, batch, task_id) =
            self.task_events(capability, description, submitter, agent, outcome, t0_ms);
        self.log.append(&stream, ExpectedVersion::Any, batch).await.expect("append");
        task_id
    }
}

/// How a task's attempt ends.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    Success {
        latency_ms: i64,
    },
    Failure {
        cause: FailureCause,
        after_ms: i64,
    },
    Timeout {
        timeout_ms: u64,
    },
    CancelledBeforeMatching,
    /// Started on the agent and not finished.
    StillRunning,
}

/// An event with a chosen time and emitter.
pub fn new_event<E: DomainEvent>(event: &E, at_ms: i64, emitter: &str) -> NewEvent {
    let metadata = Metadata {
        occurred_at_ms: at_ms,
        causation_id: None,
        correlation_id: None,
        emitter: emitter.to_string(),
        traceparent: None,
    };
    event.to_new_event(EventId::new(), metadata).expect("encode")
}

pub fn ok(latency_ms: i64) -> Outcome {
    Outcome::Success { latency_ms }
}

pub fn fail() -> Outcome {
    Outcome::Failure { cause: FailureCause::Agent, after_ms: 10 }
}
