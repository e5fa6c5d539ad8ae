//! An agent reached over HTTP: the executor `POST`s `{"envelope": <sealed envelope>}` as JSON
//! to the agent's URL and takes the agent's signed result (a `SignedResult` as JSON) from a
//! `200` answer. The agent verifies the envelope's seal with the federation key before working;
//! the federation verifies the result's signature against the agent's passport (the public key
//! configured for it) in the verification phase, as for every agent.
//!
//! An agent that reports progress answers `200` with `Content-Type: application/x-ndjson` (or
//! `application/jsonl`) and streams one JSON message per line as it works:
//! `{"progress": {"percent": 40, "message": "…"}}` any number of times, then its signed result,
//! or `{"error": "<reason>"}` if it fails after all. Each progress line is recorded as a
//! `progress_reported` event when it arrives; a stream that ends without a result fails the
//! attempt.
//!
//! A connection failure or a `5xx` is the transport's or the agent's failure (another agent may
//! be tried); a `4xx` says the agent refused the envelope. The attempt's deadline bounds the
//! request: when it passes, the request is dropped.

use async_trait::async_trait;
use events::{SealedEnvelope, SignedResult};
use tokio::sync::mpsc;

use super::{AgentEndpoint, AgentFailure, AgentMessage, ExecuteRequest, Progress};

/// The most bytes of an error answer quoted in the failure reason.
pub const ERROR_EXCERPT_BYTES_MAX: usize = 512;

/// The largest answer accepted from an agent, in bytes (for a streamed answer: the largest line).
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
        let client =
            client().map_err(|e| AgentFailure::transport(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { url: url.into(), client })
    }
}

/// The HTTP client for services outside the process (agents, context sources): no proxy from
/// the environment, and one crypto provider for the process for `https://` — ring, which
/// async-nats' rustls compiles already (installing it again is a no-op).
pub(crate) fn client() -> reqwest::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build()
}

/// Why a whole answer was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The connection failed while reading.
    Read(reqwest::Error),
    /// The answer is longer than allowed.
    TooLarge,
}

/// Reads a whole answer of at most `bytes_max` bytes.
pub(crate) async fn read_body(
    response: &mut reqwest::Response,
    bytes_max: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > bytes_max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The start of an answer (at most [`ERROR_EXCERPT_BYTES_MAX`] bytes), for a failure reason
/// that is recorded: secrets and personal data redacted. The whole answer is scrubbed before
/// it is cut (see [`crate::scrubbed_excerpt`]).
pub(crate) fn excerpt(body: &[u8]) -> String {
    crate::scrubbed_excerpt(body, ERROR_EXCERPT_BYTES_MAX, false)
}

/// Whether an answer streams one message per line.
fn is_streamed(response: &reqwest::Response) -> bool {
    let Some(content_type) = response.headers().get(reqwest::header::CONTENT_TYPE) else { return false };
    let Ok(content_type) = content_type.to_str() else { return false };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    matches!(essence.as_str(), "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines")
}

impl HttpAgent {
    /// Takes one line of a streamed answer: `Some` when it ends the attempt.
    async fn take_line(
        &self,
        line: &[u8],
        progress: &mpsc::Sender<Progress>,
    ) -> Option<Result<SignedResult, AgentFailure>> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match serde_json::from_slice::<AgentMessage>(line) {
            Ok(message) => message.take(&self.url, progress).await,
            Err(e) => Some(Err(AgentFailure::agent(format!(
                "{} streamed a line that is neither progress, a signed result nor an error: {e}: {}",
                self.url,
                excerpt(line)
            )))),
        }
    }

    /// Reads an answer streamed one message per line, relaying progress as it arrives.
    async fn read_stream(
        &self,
        response: &mut reqwest::Response,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let chunk = response
                .chunk()
                .await
                .map_err(|e| AgentFailure::transport(format!("reading the answer of {}: {e}", self.url)))?;
            let at_end = chunk.is_none();
            if let Some(chunk) = chunk {
                pending.extend_from_slice(&chunk);
            }
            let mut start = 0;
            while let Some(offset) = pending[start..].iter().position(|b| *b == b'\n') {
                let line = &pending[start..start + offset];
                start += offset + 1;
                if let Some(outcome) = self.take_line(line, progress).await {
                    return outcome;
                }
            }
            pending.drain(..start);
            if at_end {
                if let Some(outcome) = self.take_line(&pending, progress).await {
                    return outcome;
                }
                return Err(AgentFailure::agent(format!(
                    "{} ended its streamed answer without a result",
                    self.url
                )));
            }
            if pending.len() > ANSWER_BYTES_MAX {
                return Err(AgentFailure::agent(format!(
                    "{} streamed a line over the {ANSWER_BYTES_MAX}-byte limit",
                    self.url
                )));
            }
        }
    }
}

#[async_trait]
impl AgentEndpoint for HttpAgent {
    async fn execute(
        &self,
        envelope: &SealedEnvelope,
        progress: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        let mut request = self.client.post(&self.url).json(&ExecuteRequest { envelope });
        // The agent call's span, for an agent that traces (W3C Trace Context).
        if let Some(traceparent) = events::trace::current_traceparent() {
            request = request.header("traceparent", traceparent);
        }
        let mut response = request.send().await.map_err(|e| {
            AgentFailure::transport(format!("POST {}: {}", self.url, events::error_chain(&e)))
        })?;
        let status = response.status();
        if status.is_success() && is_streamed(&response) {
            return self.read_stream(&mut response, &progress).await;
        }
        let body = read_body(&mut response, ANSWER_BYTES_MAX).await.map_err(|e| match e {
            BodyError::Read(e) => AgentFailure::transport(format!("reading the answer of {}: {e}", self.url)),
            BodyError::TooLarge => AgentFailure::agent(format!(
                "the answer of {} is over the {ANSWER_BYTES_MAX}-byte limit",
                self.url
            )),
        })?;
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
