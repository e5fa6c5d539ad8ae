//! Agents as the executor reaches them: the [`AgentEndpoint`] transport seam, the in-process
//! transport ([`InProcessAgent`]: verifies the envelope's seal, runs a [`Worker`], signs the
//! result with the agent's key), and the built-in workers [`echo`] and [`command`].

pub mod command;
pub mod echo;
pub mod http;
pub mod nats;

use std::sync::Arc;

use async_trait::async_trait;
use events::task::FailureCause;
use events::{AgentId, AgentResult, KeyPair, PublicKey, SealedEnvelope, SignedResult, TaskEnvelope, now_ms};
use tokio::sync::mpsc;

/// Progress an agent reports while it works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Percent done, if known.
    pub percent: Option<u8>,
    /// What it is doing.
    pub message: String,
}

/// How many progress reports may wait to be recorded; an agent reporting faster than the log
/// takes them waits (its `send` awaits).
pub const PROGRESS_QUEUE_COUNT_MAX: usize = 16;

/// Why an attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentFailure {
    /// Whose fault: decides whether another agent is tried.
    pub cause: FailureCause,
    /// What happened, for people.
    pub reason: String,
}

impl AgentFailure {
    /// The agent failed: another agent may be tried.
    pub fn agent(reason: impl Into<String>) -> Self {
        Self { cause: FailureCause::Agent, reason: reason.into() }
    }

    /// The agent could not be reached: another agent may be tried.
    pub fn transport(reason: impl Into<String>) -> Self {
        Self { cause: FailureCause::Transport, reason: reason.into() }
    }

    /// The task cannot succeed anywhere: no retry.
    pub fn task(reason: impl Into<String>) -> Self {
        Self { cause: FailureCause::Task, reason: reason.into() }
    }
}

/// The body the executor sends to an agent outside the process (over HTTP or NATS):
/// `{"envelope": <sealed envelope>}`.
#[derive(serde::Serialize)]
pub(crate) struct ExecuteRequest<'a> {
    pub(crate) envelope: &'a SealedEnvelope,
}

/// The longest progress message taken from an agent outside the process, in bytes; a longer
/// one is cut at a character boundary.
pub const PROGRESS_MESSAGE_BYTES_MAX: usize = 1024;

/// One message from an agent outside the process (a line of an HTTP answer streamed as
/// `application/x-ndjson`, or one NATS reply): a progress report, a refusal or failure, or the
/// signed result that ends the attempt.
#[derive(serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum AgentMessage {
    /// `{"progress": {"percent": 40, "message": "…"}}`; both fields may be left out.
    Progress { progress: ProgressReport },
    /// `{"error": "<reason>"}`: the agent refuses or failed.
    Error { error: String },
    /// The agent's signed result.
    Result(Box<SignedResult>),
}

impl AgentMessage {
    /// Takes the message from the agent at `from`: relays progress (and returns `None`: the
    /// attempt goes on), or returns how the attempt ends.
    pub(crate) async fn take(
        self,
        from: &str,
        progress: &mpsc::Sender<Progress>,
    ) -> Option<Result<SignedResult, AgentFailure>> {
        match self {
            Self::Progress { progress: report } => {
                // The executor stops listening only when it stops polling the attempt.
                let _ = progress.send(report.into()).await;
                None
            }
            Self::Result(result) => Some(Ok(*result)),
            Self::Error { error } => Some(Err(AgentFailure::agent(format!("{from} answered: {error}")))),
        }
    }
}

/// A progress report as an agent outside the process sends it.
#[derive(serde::Deserialize)]
pub(crate) struct ProgressReport {
    #[serde(default)]
    percent: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

impl From<ProgressReport> for Progress {
    fn from(report: ProgressReport) -> Self {
        let message = report.message.unwrap_or_default();
        // Scrubbed before it is cut: cut first, a secret across the cut would no longer be
        // recognised when the executor scrubs the message, and its first part would be
        // recorded.
        let mut message = security::scrub(&message).unwrap_or(message);
        crate::cut_utf8(&mut message, PROGRESS_MESSAGE_BYTES_MAX);
        let percent = report.percent.map(|p| u8::try_from(p.min(100)).unwrap_or(100));
        Self { percent, message }
    }
}

/// How the executor reaches one agent: hands it a sealed envelope, gets a signed result.
#[async_trait]
pub trait AgentEndpoint: Send + Sync + 'static {
    /// Executes the envelope, reporting progress on `progress`, and returns the agent's
    /// signed result.
    async fn execute(
        &self,
        envelope: &SealedEnvelope,
        progress: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure>;

    /// Whether the agent runs inside this process, so that this process vouches for its
    /// liveness with heartbeats. An agent outside sends its own.
    fn is_hosted(&self) -> bool {
        true
    }
}

/// The work of an in-process agent, once its envelope is verified.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Does the task and returns its output.
    async fn work(
        &self,
        envelope: &TaskEnvelope,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<serde_json::Value, AgentFailure>;
}

/// An agent running inside this process. Like any agent it trusts nothing it has not checked:
/// it verifies the federation's seal on the envelope before working, and signs what it
/// returns with its own key (the one its passport names).
pub struct InProcessAgent {
    id: AgentId,
    key: KeyPair,
    federation: PublicKey,
    worker: Arc<dyn Worker>,
}

impl std::fmt::Debug for InProcessAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessAgent").field("id", &self.id).finish()
    }
}

impl InProcessAgent {
    /// An agent `id` signing with `key`, trusting envelopes sealed by `federation`.
    pub fn new(id: AgentId, key: KeyPair, federation: PublicKey, worker: Arc<dyn Worker>) -> Self {
        Self { id, key, federation, worker }
    }
}

#[async_trait]
impl AgentEndpoint for InProcessAgent {
    async fn execute(
        &self,
        envelope: &SealedEnvelope,
        progress: mpsc::Sender<Progress>,
    ) -> Result<SignedResult, AgentFailure> {
        if let Err(error) = envelope.verify(&self.federation, now_ms()) {
            return Err(AgentFailure {
                cause: FailureCause::Verification,
                reason: format!("agent {} refused the envelope: {error}", self.id),
            });
        }
        if envelope.envelope.agent_id != self.id {
            return Err(AgentFailure {
                cause: FailureCause::Verification,
                reason: format!("the envelope is sealed for {}, not {}", envelope.envelope.agent_id, self.id),
            });
        }
        let output = self.worker.work(&envelope.envelope, &progress).await?;
        let result = AgentResult {
            task_id: envelope.envelope.task_id,
            attempt: envelope.envelope.attempt,
            agent_id: self.id.clone(),
            envelope_hash: envelope.hash,
            output,
            completed_at_ms: now_ms(),
        };
        SignedResult::sign(result, &self.key)
            .map_err(|e| AgentFailure::agent(format!("cannot sign the result: {e}")))
    }
}
