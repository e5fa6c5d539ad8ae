//! An agent reached over NATS request/reply: the executor sends `{"envelope": <sealed
//! envelope>}` as JSON to the agent's subject, with a reply subject of its own, and reads the
//! agent's replies there: any number of progress reports
//! (`{"progress": {"percent": 40, "message": "…"}}`, each recorded as a `progress_reported`
//! event when it arrives), then its signed result (a `SignedResult` as JSON), or
//! `{"error": "<reason>"}` when the agent refuses or fails. A worker that reports no progress
//! answers once, as to any NATS request. Several workers may serve one subject in a queue
//! group: one of them answers each request.
//!
//! The federation verifies the result's signature against the agent's passport in the
//! verification phase, as for every agent. No responder on the subject is a transport failure
//! (another agent may be tried); the attempt's deadline bounds the wait.

use async_nats::StatusCode;
use async_trait::async_trait;
use events::{SealedEnvelope, SignedResult};
use futures::StreamExt as _;
use tokio::sync::mpsc;

use super::{AgentEndpoint, AgentFailure, AgentMessage, ExecuteRequest, Progress};

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
        progress: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        let body = serde_json::to_vec(&ExecuteRequest { envelope })
            .map_err(|e| AgentFailure::agent(format!("cannot encode the envelope: {e}")))?;
        // A reply subject of this attempt's own, subscribed before the request goes out, so
        // that every reply is heard; dropping the subscription (at the end, or when the
        // deadline drops this future) unsubscribes. No timeout here: the executor's deadline
        // ends the wait.
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| AgentFailure::transport(format!("cannot subscribe to replies: {e}")))?;
        // The agent call's span, for an agent that traces (W3C Trace Context, as a header).
        let mut headers = async_nats::HeaderMap::new();
        if let Some(traceparent) = events::trace::current_traceparent() {
            headers.insert("traceparent", traceparent.as_str());
        }
        self.client
            .publish_with_reply_and_headers(self.subject.clone(), inbox, headers, body.into())
            .await
            .map_err(|e| AgentFailure::transport(format!("request on {}: {e}", self.subject)))?;
        while let Some(reply) = replies.next().await {
            if reply.status == Some(StatusCode::NO_RESPONDERS) {
                return Err(AgentFailure::transport(format!("no responders on {}", self.subject)));
            }
            match serde_json::from_slice::<AgentMessage>(&reply.payload) {
                Ok(message) => {
                    if let Some(outcome) = message.take(&self.subject, &progress).await {
                        return outcome;
                    }
                }
                Err(e) => {
                    return Err(AgentFailure::agent(format!(
                        "{} answered something that is neither progress, a signed result nor an error: {e}",
                        self.subject
                    )));
                }
            }
        }
        Err(AgentFailure::transport(format!("the connection closed while waiting for {}", self.subject)))
    }

    fn is_hosted(&self) -> bool {
        false
    }
}
