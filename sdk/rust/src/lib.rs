//! # pantheon-agent
//!
//! Pantheon agents in Rust, following the agent protocol v1 (`schemas/agent-protocol.md`):
//! an [`Agent`] holds its key and the federation's public key, handlers by capability, checks
//! every sealed envelope (the federation's seal, sealed for this agent, not expired) before a
//! handler runs, and answers the handler's output as a result signed with its key. It is
//! served over HTTP as the federation calls it (`POST` of `{"envelope": …}`, [`Agent::serve`]),
//! or works as a pull worker that long-polls the gateway for its work ([`Agent::pull`]: no
//! address needed).
//!
//! ```no_run
//! use pantheon_agent::Agent;
//! # async fn run(key: events::KeyPair, federation: events::PublicKey) -> std::io::Result<()> {
//! let agent = Agent::new("reverser", key, federation)
//!     .capability("reverse", |task| {
//!         Ok(serde_json::json!(task.input.as_str().unwrap_or_default().chars().rev().collect::<String>()))
//!     });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
//! agent.serve(listener).await
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use events::{AgentId, AgentResult, KeyPair, PublicKey, SealedEnvelope, SignedResult, TaskEnvelope};
use serde_json::Value;

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

/// A handler: the envelope's task in, the output (or why it failed) out.
type Handler = Arc<dyn Fn(&TaskEnvelope) -> Result<Value, String> + Send + Sync>;

/// An agent: its id and key, the federation's public key, and a handler per capability.
#[derive(Clone)]
pub struct Agent {
    id: String,
    key: Arc<KeyPair>,
    federation: PublicKey,
    handlers: HashMap<String, Handler>,
}

impl Agent {
    /// An agent `id` signing with `key`, trusting envelopes sealed by `federation`.
    pub fn new(id: impl Into<String>, key: KeyPair, federation: PublicKey) -> Self {
        Self { id: id.into(), key: Arc::new(key), federation, handlers: HashMap::new() }
    }

    /// Handles tasks of `capability` with `handler`.
    pub fn capability(
        mut self,
        capability: impl Into<String>,
        handler: impl Fn(&TaskEnvelope) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.handlers.insert(capability.into(), Arc::new(handler));
        self
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

    /// The answer to a request body `{"envelope": …}`: the signed result, or the status and
    /// reason of a refusal or a failure.
    pub fn answer(&self, body: &Value) -> Result<SignedResult, (StatusCode, String)> {
        let sealed: SealedEnvelope =
            serde_json::from_value(body.get("envelope").cloned().unwrap_or(Value::Null))
                .map_err(|e| (StatusCode::BAD_REQUEST, Refused::Malformed(e.to_string()).to_string()))?;
        self.check(&sealed, events::now_ms())
            .map_err(|refused| (StatusCode::FORBIDDEN, refused.to_string()))?;
        let envelope = &sealed.envelope;
        let handler = self.handlers.get(&envelope.capability).ok_or_else(|| {
            (StatusCode::UNPROCESSABLE_ENTITY, format!("this agent does not offer {:?}", envelope.capability))
        })?;
        let output = handler(envelope).map_err(|reason| (StatusCode::INTERNAL_SERVER_ERROR, reason))?;
        let result = AgentResult {
            task_id: envelope.task_id,
            attempt: envelope.attempt,
            agent_id: envelope.agent_id.clone(),
            envelope_hash: sealed.hash,
            output,
            completed_at_ms: events::now_ms(),
        };
        SignedResult::sign(result, &self.key).map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    }

    /// The HTTP service: `POST /` answers envelopes.
    pub fn router(self) -> axum::Router {
        let agent = Arc::new(self);
        axum::Router::new().route(
            "/",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let agent = Arc::clone(&agent);
                async move {
                    agent.answer(&body).map(axum::Json).map_err(|(status, reason)| {
                        (status, axum::Json(serde_json::json!({ "error": reason })))
                    })
                }
            }),
        )
    }

    /// Serves on `listener` until the process stops.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Works as a pull worker until `stop` resolves: long-polls `base_url`'s gateway for the
    /// attempts offered to this agent (registered with transport `pull`; `token` is a token of
    /// role `agent` whose subject is the agent's id), checks each envelope, runs the handler,
    /// posts the signed result (or why it failed), and heartbeats every 5 s so its leases hold.
    /// A gateway that does not answer is polled again a second later.
    pub async fn pull(
        self,
        base_url: &str,
        token: &str,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), PullError> {
        // reqwest is built without a TLS provider of its own: ring, as the rest of the tree.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().build().map_err(|e| PullError(e.to_string()))?;
        let base = format!("{}/agents/{}", base_url.trim_end_matches('/'), self.id);
        let beats = {
            let (client, url, token) = (client.clone(), format!("{base}/heartbeat"), token.to_string());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
                loop {
                    every.tick().await;
                    let _ = client.post(&url).bearer_auth(&token).send().await;
                }
            })
        };
        tokio::pin!(stop);
        let outcome = loop {
            let poll = client.post(format!("{base}/work?wait_ms=25000")).bearer_auth(token).send();
            let answer = tokio::select! {
                () = &mut stop => break Ok(()),
                answer = poll => answer,
            };
            let work: Value = match answer {
                Ok(answer) if answer.status() == reqwest::StatusCode::NO_CONTENT => continue,
                Ok(answer) if answer.status().is_success() => match answer.json().await {
                    Ok(work) => work,
                    Err(error) => break Err(PullError(format!("the gateway's offer is not JSON: {error}"))),
                },
                Ok(answer) if answer.status().is_client_error() => {
                    let status = answer.status();
                    break Err(PullError(format!(
                        "the gateway refused the poll ({status}): {}",
                        answer.text().await.unwrap_or_default()
                    )));
                }
                _ => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            let task = work["task_id"].as_str().unwrap_or_default().to_string();
            let posted = match self.answer(&serde_json::json!({ "envelope": work["envelope"] })) {
                Ok(result) => {
                    client
                        .post(format!("{base}/work/{task}/result"))
                        .bearer_auth(token)
                        .json(&result)
                        .send()
                        .await
                }
                Err((_, reason)) => {
                    client
                        .post(format!("{base}/work/{task}/fail"))
                        .bearer_auth(token)
                        .json(&serde_json::json!({ "reason": reason }))
                        .send()
                        .await
                }
            };
            // 409: the lease lapsed and the attempt moved on; anything else is the gateway's
            // to recover from, and the next poll goes on.
            if let Err(error) = posted {
                warn(&error.to_string());
            }
        };
        beats.abort();
        outcome
    }
}

/// A pull worker that cannot go on: the gateway refused it (a bad token, an unknown agent).
#[derive(Debug, thiserror::Error)]
#[error("pull worker: {0}")]
pub struct PullError(String);

/// Reports a failed post on standard error (the SDK carries no logging framework).
fn warn(message: &str) {
    eprintln!("pantheon-agent: posting an answer failed: {message}");
}

#[cfg(test)]
mod tests {
    use events::{Passport, TaskEnvelope, TaskId};

    use super::*;

    fn sealed(federation: &KeyPair, agent: &str, capability: &str) -> SealedEnvelope {
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

    fn agent(federation: &KeyPair) -> Agent {
        Agent::new("reverser", KeyPair::generate(), federation.public_key()).capability("reverse", |task| {
            Ok(serde_json::json!(task.input.as_str().unwrap_or_default().chars().rev().collect::<String>()))
        })
    }

    #[test]
    fn a_sealed_envelope_is_answered_with_a_result_that_verifies() {
        let federation = KeyPair::generate();
        let agent = agent(&federation);
        let envelope = sealed(&federation, "reverser", "reverse");
        let result = agent.answer(&serde_json::json!({ "envelope": envelope })).unwrap();
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

    #[test]
    fn forged_foreign_and_misdirected_envelopes_are_refused() {
        let federation = KeyPair::generate();
        let agent = agent(&federation);
        let status = |envelope: &SealedEnvelope| {
            agent.answer(&serde_json::json!({ "envelope": envelope })).unwrap_err().0
        };
        let mut tampered = sealed(&federation, "reverser", "reverse");
        tampered.envelope.description = "wire the money".into();
        assert_eq!(status(&tampered), StatusCode::FORBIDDEN);
        assert_eq!(status(&sealed(&KeyPair::generate(), "reverser", "reverse")), StatusCode::FORBIDDEN);
        assert_eq!(status(&sealed(&federation, "someone-else", "reverse")), StatusCode::FORBIDDEN);
        assert_eq!(status(&sealed(&federation, "reverser", "translate")), StatusCode::UNPROCESSABLE_ENTITY);
        let malformed = agent.answer(&serde_json::json!({ "envelope": 3 })).unwrap_err();
        assert_eq!(malformed.0, StatusCode::BAD_REQUEST);
    }
}
