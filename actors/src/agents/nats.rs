//! An agent reached over NATS request/reply: the executor sends `{"envelope": <sealed
//! envelope>}` as JSON to the agent's subject and takes its signed result (a `SignedResult` as
//! JSON) from the reply, or `{"error": "<reason>"}` when the agent refuses or fails. Several
//! workers may serve one subject in a queue group: one of them answers each request.
//!
//! The federation verifies the result's signature against the agent's passport in the
//! verification phase, as for every agent. No responder on the subject is a transport failure
//! (another agent may be tried); the attempt's deadline bounds the wait.

use async_trait::async_trait;
use events::{SealedEnvelope, SignedResult};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{AgentEndpoint, AgentFailure, ExecuteRequest, Progress};

/// What an agent answers: its signed result, or why it has none.
#[derive(Deserialize)]
#[serde(untagged)]
enum Reply {
    Result(Box<SignedResult>),
    Error { error: String },
}

/// An agent listening on a NATS subject.
#[derive(Debug)]
pub struct NatsAgent {
    subject: String,
    client: async_nats::Client,
}

impl NatsAgent {
    /// The agent on `subject`, reached through `client`.
    pub fn new(client: async_nats::Client, subject: impl Into<String>) -> Self {
        Self { subject: subject.into(), client }
    }
}

#[async_trait]
impl AgentEndpoint for NatsAgent {
    async fn execute(
        &self,
        envelope: &SealedEnvelope,
        _progress: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        let body = serde_json::to_vec(&ExecuteRequest { envelope })
            .map_err(|e| AgentFailure::agent(format!("cannot encode the envelope: {e}")))?;
        // No client-side timeout: the executor's deadline ends the wait.
        let request = async_nats::Request::new().payload(body.into()).timeout(None);
        let reply = self
            .client
            .send_request(self.subject.clone(), request)
            .await
            .map_err(|e| AgentFailure::transport(format!("request on {}: {e}", self.subject)))?;
        match serde_json::from_slice::<Reply>(&reply.payload) {
            Ok(Reply::Result(result)) => Ok(*result),
            Ok(Reply::Error { error }) => {
                Err(AgentFailure::agent(format!("{} answered: {error}", self.subject)))
            }
            Err(e) => Err(AgentFailure::agent(format!(
                "{} answered something that is neither a signed result nor an error: {e}",
                self.subject
            ))),
        }
    }

    fn is_hosted(&self) -> bool {
        false
    }
}
