//! An agent reached over HTTP: the executor `POST`s `{"envelope": <sealed envelope>}` as JSON
//! to the agent's URL and takes the agent's signed result (a `SignedResult` as JSON) from a
//! `200` answer. The agent verifies the envelope's seal with the federation key before working;
//! the federation verifies the result's signature against the agent's passport (the public key
//! configured for it) in the verification phase, as for every agent.
//!
//! A connection failure or a `5xx` is the transport's or the agent's failure (another agent may
//! be tried); a `4xx` says the agent refused the envelope. The attempt's deadline bounds the
//! request: when it passes, the request is dropped.

use async_trait::async_trait;
use events::{SealedEnvelope, SignedResult};
use tokio::sync::mpsc;

use super::{AgentEndpoint, AgentFailure, ExecuteRequest, Progress};

/// The most bytes of an error answer quoted in the failure reason.
pub const ERROR_EXCERPT_BYTES_MAX: usize = 512;

/// The largest answer accepted from an agent, in bytes.
pub const ANSWER_BYTES_MAX: usize = 4 * 1024 * 1024;

/// An agent behind an HTTP endpoint.
#[derive(Debug)]
pub struct HttpAgent {
    url: String,
    client: reqwest::Client,
}

impl HttpAgent {
    /// The agent at `url` (`http://…` or `https://…`).
    pub fn new(url: impl Into<String>) -> Result<Self, AgentFailure> {
        // One crypto provider for the process, for `https://` agents: ring, which async-nats'
        // rustls compiles already (installing it again is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| AgentFailure::transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { url: url.into(), client })
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_EXCERPT_BYTES_MAX)]);
    text.trim().to_string()
}

#[async_trait]
impl AgentEndpoint for HttpAgent {
    async fn execute(
        &self,
        envelope: &SealedEnvelope,
        _progress: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        let mut response = self
            .client
            .post(&self.url)
            .json(&ExecuteRequest { envelope })
            .send()
            .await
            .map_err(|e| AgentFailure::transport(format!("POST {}: {e}", self.url)))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AgentFailure::transport(format!("reading the answer of {}: {e}", self.url)))?
        {
            if body.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(AgentFailure::agent(format!(
                    "the answer of {} is over the {ANSWER_BYTES_MAX}-byte limit",
                    self.url
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(AgentFailure::agent(format!("{} answered {status}: {}", self.url, excerpt(&body))));
        }
        serde_json::from_slice(&body).map_err(|e| {
            AgentFailure::agent(format!("{} answered something that is not a signed result: {e}", self.url))
        })
    }

    fn is_hosted(&self) -> bool {
        false
    }
}
