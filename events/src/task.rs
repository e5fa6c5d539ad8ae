//! A task's events through the nine phases, and its state as a pure fold over them.
//!
//! ```text
//! submitted ─► screened ─► context_ready ─► agent_selected ─► sealed ─► running ─► result_received
//!     │            ▲ (no agent: waiting ◄─┘ ▲                    │         │            │
//!     ▼            retrying ◄── attempt_failed ◄──────────────────┴─────────┘            ▼
//!  rejected                                        completed ◄─ egress_screened ◄─ stored ◄─ verified
//! ```
//! `task_failed` and `task_cancelled` end a task from any state that is not final; webhook
//! delivery events are the only events a finished task still takes.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crypto::{Hash, PublicKey, Signature};
use crate::domain::domain_events;
use crate::envelope::{SealedEnvelope, SignedResult};
use crate::event::Version;
use crate::id::{AgentId, TaskId, WorkflowId};
use crate::state::{Aggregate, TransitionError};

/// The default deadline of a task: 30 seconds from submission.
pub const TASK_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// The default number of attempts (the first one plus two retries).
pub const TASK_ATTEMPTS_MAX_DEFAULT: u32 = 3;

/// The longest timeout a task may ask for: one day (every channel; ingress refuses more).
pub const TASK_TIMEOUT_MS_MAX: u64 = 24 * 60 * 60 * 1000;

/// The most attempts a task may ask for (every channel; ingress refuses more).
pub const TASK_ATTEMPTS_MAX: u32 = 10;

/// The types of the events that end a task (`task_completed`, `task_failed`, `task_rejected`,
/// `task_cancelled`), as recorded: [`TaskEventKind::FINAL`]'s names, for followers that filter
/// the log by type.
pub const FINAL_EVENT_TYPES: [&str; 4] = [
    TaskEventKind::FINAL[0].as_str(),
    TaskEventKind::FINAL[1].as_str(),
    TaskEventKind::FINAL[2].as_str(),
    TaskEventKind::FINAL[3].as_str(),
];

impl TaskEventKind {
    /// The kinds that end a task: the one list every follower of final events uses.
    pub const FINAL: [Self; 4] = [Self::Completed, Self::Failed, Self::Rejected, Self::Cancelled];

    /// The status an event of this kind moves its task to; `None` for progress reports and
    /// webhook deliveries, which leave it as it is. The one map from events to statuses:
    /// [`TaskState`]'s fold and the read models' both use it.
    pub const fn status_after(self) -> Option<TaskStatus> {
        use TaskStatus as S;
        Some(match self {
            Self::Submitted => S::Submitted,
            Self::IngressScreened => S::Screened,
            Self::Rejected => S::Rejected,
            Self::ContextGathered => S::ContextReady,
            Self::AgentSelected => S::AgentSelected,
            Self::NoAgentAvailable => S::Waiting,
            Self::EnvelopeSealed => S::Sealed,
            Self::ExecutionStarted => S::Running,
            Self::ResultReceived => S::ResultReceived,
            Self::ExecutionFailed | Self::ExecutionTimedOut => S::AttemptFailed,
            Self::RetryScheduled => S::Retrying,
            Self::ResultVerified => S::Verified,
            Self::ResultStored => S::Stored,
            Self::EgressScreened => S::EgressScreened,
            Self::Completed => S::Completed,
            Self::Failed => S::Failed,
            Self::Cancelled => S::Cancelled,
            Self::ProgressReported
            | Self::WebhookAttempted
            | Self::WebhookDeadLettered
            | Self::WebhookRedeliveryRequested => return None,
        })
    }

    /// Whether an event of this kind ends its task.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Rejected | Self::Cancelled)
    }
}

/// What a producer asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// The capability needed, e.g. `echo`, `summarize`.
    pub capability: String,
    /// What to do, in words.
    pub description: String,
    /// Input data for the agent.
    #[serde(default)]
    pub input: serde_json::Value,
    /// How long the task may take from submission to result, in ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many attempts (agents) to try at most.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Who submitted it (a principal name from the gateway, a producer id on NATS).
    #[serde(default)]
    pub submitter: String,
    /// A key that makes a repeated submission return the original task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Where to send the outcome, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The workflow step this task runs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowStepRef>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_timeout_ms() -> u64 {
    TASK_TIMEOUT_MS_DEFAULT
}

fn default_max_attempts() -> u32 {
    TASK_ATTEMPTS_MAX_DEFAULT
}

/// The longest capability name, in characters.
pub const CAPABILITY_BYTES_MAX: usize = 128;

/// The most labels on one task.
pub const LABEL_COUNT_MAX: usize = 32;

/// The longest label key or value, in characters.
pub const LABEL_BYTES_MAX: usize = 256;

/// What is wrong with a spec: the field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecProblem {
    /// The field at fault, as the API names it.
    pub field: &'static str,
    /// What is wrong, saying the limit.
    pub message: String,
}

impl TaskSpec {
    /// Checks the limits every task meets whichever way it comes in: the gateway refuses a
    /// request that breaks one before admitting it, and ingress screening rejects (and
    /// records) a submission from any other channel that does. Sizes an operator configures
    /// (description and input bytes) are screening's.
    pub fn check(&self) -> Result<(), SpecProblem> {
        let problem = |field, message: String| Err(SpecProblem { field, message });
        let capability = self.capability.chars().count();
        if capability == 0 || capability > CAPABILITY_BYTES_MAX {
            return problem(
                "capability",
                format!("the capability must be 1 to {CAPABILITY_BYTES_MAX} characters, not {capability}"),
            );
        }
        if self.description.trim().is_empty() {
            return problem("description", "the description is empty: say what the task is".into());
        }
        if self.timeout_ms == 0 || self.timeout_ms > TASK_TIMEOUT_MS_MAX {
            return problem(
                "timeout_ms",
                format!(
                    "the timeout is {} ms; it must be 1 to {TASK_TIMEOUT_MS_MAX} ms (one day)",
                    self.timeout_ms
                ),
            );
        }
        if self.max_attempts == 0 || self.max_attempts > TASK_ATTEMPTS_MAX {
            return problem(
                "max_attempts",
                format!(
                    "max_attempts is {}; a task has 1 to {TASK_ATTEMPTS_MAX} attempts",
                    self.max_attempts
                ),
            );
        }
        if self.labels.len() > LABEL_COUNT_MAX {
            return problem("labels", format!("{} labels; at most {LABEL_COUNT_MAX}", self.labels.len()));
        }
        let long = |text: &str| text.chars().count() > LABEL_BYTES_MAX;
        if self.labels.iter().any(|(k, v)| k.is_empty() || long(k) || long(v)) {
            return problem(
                "labels",
                format!(
                    "label keys must be 1 to {LABEL_BYTES_MAX} characters, values at most {LABEL_BYTES_MAX}"
                ),
            );
        }
        Ok(())
    }

    /// A spec with defaults for everything but capability and description.
    pub fn new(capability: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            capability: capability.into(),
            description: description.into(),
            input: serde_json::Value::Null,
            timeout_ms: TASK_TIMEOUT_MS_DEFAULT,
            max_attempts: TASK_ATTEMPTS_MAX_DEFAULT,
            submitter: String::new(),
            idempotency_key: None,
            webhook_url: None,
            workflow: None,
            labels: BTreeMap::new(),
        }
    }
}

/// A task's place in a workflow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowStepRef {
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// The step's name.
    pub step: String,
}

/// How a submission arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Through the HTTP gateway (signed by the gateway's key).
    Gateway,
    /// Published on NATS by a registered producer (signed by the producer's key).
    Nats,
    /// From the command line or the embedded runtime (signed by the federation key).
    Local,
    /// A step of a workflow.
    Workflow,
}

/// Phase 1: a task was submitted. The spec is signed by whoever admitted it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskSubmitted {
    /// The task.
    pub task_id: TaskId,
    /// What is asked.
    pub spec: TaskSpec,
    /// How it arrived.
    pub channel: Channel,
    /// The admitting key.
    pub signed_by: PublicKey,
    /// The admitting key's signature over task id and spec (see [`crate::SignedSubmission`]).
    pub signature: Signature,
}

/// One thing a screening found: kind, rule and where — never the matched text itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ScreeningFinding {
    /// The kind of finding, e.g. `prompt_injection`, `secret:aws_access_key`, `pii:email`.
    pub kind: String,
    /// The rule that fired.
    pub rule_id: String,
    /// Byte offset where the finding starts.
    pub start: usize,
    /// Byte offset where it ends (exclusive).
    pub end: usize,
    /// What the policy did about it.
    pub action: FindingAction,
}

/// What a screening policy did about a finding (recorded as `block`, `redact` or `flag`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingAction {
    /// The text was refused.
    Block,
    /// The finding's span was replaced with a placeholder.
    Redact,
    /// The text went through unchanged; the finding is recorded.
    Flag,
}

/// Phase 1: the submission passed ingress screening (possibly redacted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IngressScreened {
    /// What was found (flagged or redacted).
    #[serde(default)]
    pub findings: Vec<ScreeningFinding>,
    /// The description after redaction, when anything was redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_description: Option<String>,
}

/// Why a task was refused at the door.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RejectionCode {
    /// The submission itself is malformed (empty description, oversized input, …).
    InvalidSubmission,
    /// No agent offers the capability.
    UnknownCapability,
    /// A signature did not verify or the signer is unknown.
    Unauthenticated,
    /// The screening policy blocked it.
    Blocked,
}

/// Phase 1: the task was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskRejected {
    /// The category of refusal.
    pub code: RejectionCode,
    /// A sentence a person can act on.
    pub reason: String,
    /// Screening findings behind a block.
    #[serde(default)]
    pub findings: Vec<ScreeningFinding>,
}

/// A past task like this one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SimilarTask {
    /// The past task.
    pub task_id: TaskId,
    /// How similar, 0 to 1.
    pub similarity: f64,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// The agent that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
}

/// How one context source fared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContextSource {
    /// The source's name.
    pub name: String,
    /// Whether it answered in time.
    pub ok: bool,
    /// How long it took, ms.
    pub elapsed_ms: u64,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Phase 2: context gathered for the task (partial results allowed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ContextGathered {
    /// Similar past tasks.
    #[serde(default)]
    pub similar_tasks: Vec<SimilarTask>,
    /// Advice that worked before.
    #[serde(default)]
    pub best_practices: Vec<String>,
    /// Mistakes seen before.
    #[serde(default)]
    pub pitfalls: Vec<String>,
    /// Estimated complexity, 0 (trivial) to 1 (hard).
    pub complexity: f64,
    /// How each source fared.
    #[serde(default)]
    pub sources: Vec<ContextSource>,
}

/// How one candidate agent scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CandidateScore {
    /// The agent.
    pub agent_id: AgentId,
    /// The weighted total, 0 to 1.
    pub total: f64,
    /// How well its capabilities fit, 0 to 1.
    pub capability_fit: f64,
    /// Spare capacity, 0 (full) to 1 (idle).
    pub load: f64,
    /// Historical success rate, 0 to 1.
    pub success_rate: f64,
    /// Latency score, 0 (slow) to 1 (fast).
    pub latency: f64,
    /// Reputation, 0 to 1.
    pub reputation: f64,
    /// Health, 0 to 1.
    pub health: f64,
}

/// Phase 3: an agent was chosen for an attempt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentSelected {
    /// The chosen agent.
    pub agent_id: AgentId,
    /// The attempt it is chosen for (1 for the first).
    pub attempt: u32,
    /// The score breakdown of the top candidates, best first.
    pub candidates: Vec<CandidateScore>,
}

/// Phase 3: no agent could take the task now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoAgentAvailable {
    /// Why.
    pub reason: String,
    /// When matching will try again, ms since the epoch.
    pub retry_at_ms: i64,
}

/// Phase 4: the envelope was sealed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnvelopeSealed {
    /// The sealed envelope.
    pub envelope: SealedEnvelope,
}

/// Phase 5: the agent accepted the envelope and started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionStarted {
    /// The agent.
    pub agent_id: AgentId,
    /// The attempt.
    pub attempt: u32,
}

/// Phase 5: the agent reported progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProgressReported {
    /// The agent.
    pub agent_id: AgentId,
    /// The attempt.
    pub attempt: u32,
    /// Percent done, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// What it is doing.
    pub message: String,
}

/// Phase 5: the agent answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResultReceived {
    /// The signed result, not yet verified; its output redacted when `redaction` is set.
    pub result: SignedResult,
    /// Set when secrets or personal data were taken out of the output before it was recorded
    /// (the raw output is never recorded; see [`crate::envelope::OutputRedaction`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redaction: Option<crate::envelope::OutputRedaction>,
}

impl ResultReceived {
    /// Verifies the result as it is recorded: [`SignedResult::verify`], or
    /// [`SignedResult::verify_redacted`] when its output was recorded redacted (the agent's
    /// hash is of the raw output, which the log does not hold). What verification and a
    /// replay of the log check.
    pub fn verify(
        &self,
        passport: &crate::envelope::Passport,
        envelope: &SealedEnvelope,
    ) -> Result<(), crate::crypto::VerifyError> {
        match &self.redaction {
            None => self.result.verify(passport, envelope),
            Some(redaction) => self.result.verify_redacted(passport, envelope, redaction),
        }
    }
}

/// Whose fault a failure was: decides whether another agent is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The agent failed (crashed, erred, answered garbage): try another agent.
    Agent,
    /// Reaching the agent failed: try again, maybe the same agent.
    Transport,
    /// The task cannot succeed anywhere (bad input): do not retry.
    Task,
    /// The agent refused the envelope's seal.
    Verification,
}

/// Phase 5: an attempt failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionFailed {
    /// The agent.
    pub agent_id: AgentId,
    /// The attempt.
    pub attempt: u32,
    /// Whose fault.
    pub cause: FailureCause,
    /// What happened.
    pub reason: String,
}

/// Phase 5: an attempt ran out of time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExecutionTimedOut {
    /// The agent.
    pub agent_id: AgentId,
    /// The attempt.
    pub attempt: u32,
    /// How long it was given, ms.
    pub timeout_ms: u64,
}

/// Phase 5: another attempt will be made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RetryScheduled {
    /// The next attempt's number.
    pub attempt: u32,
    /// When it may start, ms since the epoch (exponential backoff with jitter).
    pub not_before_ms: i64,
    /// Agents not to choose again.
    #[serde(default)]
    pub exclude_agents: Vec<AgentId>,
}

/// Phase 6: the agent's signature on the result verified.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResultVerified {
    /// The agent.
    pub agent_id: AgentId,
    /// The result's hash.
    pub result_hash: Hash,
}

/// Phase 6: the result was stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResultStored {
    /// The result's hash.
    pub result_hash: Hash,
    /// The output's size in bytes (canonical encoding).
    pub output_bytes: u64,
}

/// Phase 8: the result passed egress screening (possibly redacted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EgressScreened {
    /// What was found.
    #[serde(default)]
    pub findings: Vec<ScreeningFinding>,
    /// The output to deliver after redaction, when anything was redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_output: Option<serde_json::Value>,
}

/// Phase 8: the task finished with a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCompleted {
    /// The agent that produced it.
    pub agent_id: AgentId,
    /// The output delivered.
    pub output: serde_json::Value,
}

/// Why a task failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    /// The deadline passed.
    DeadlineExceeded,
    /// Every attempt failed.
    AttemptsExhausted,
    /// No agent was available before the deadline.
    NoAgent,
    /// A result did not verify (forged, tampered, replayed).
    VerificationFailed,
    /// Egress screening withheld the result.
    ResultWithheld,
    /// The task cannot succeed (the agent said so).
    TaskError,
    /// Something inside Pantheon failed.
    Internal,
}

/// Phase 8: the task failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskFailed {
    /// The category.
    pub code: FailureCode,
    /// A sentence a person can act on.
    pub reason: String,
}

/// The task was cancelled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskCancelled {
    /// Who cancelled it.
    pub by: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// A webhook delivery was attempted for a finished task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookAttempted {
    /// The webhook message id (`webhook-id`).
    pub webhook_id: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The HTTP status, if a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Whether it was accepted (2xx).
    pub delivered: bool,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A webhook delivery was given up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookDeadLettered {
    /// The webhook message id.
    pub webhook_id: String,
    /// Why it was given up.
    pub reason: String,
}

/// An operator asked for a dead-lettered webhook to be delivered again: the dispatcher makes
/// a new round of attempts (same `webhook-id`, so a receiver that got it after all can tell).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookRedeliveryRequested {
    /// The webhook message id.
    pub webhook_id: String,
    /// Who asked.
    pub by: String,
}

domain_events! {
    /// Every event of a task's stream (`task-<task_id>`).
    pub enum TaskEvent: "task", kinds TaskEventKind {
        /// Phase 1.
        Submitted(TaskSubmitted) = "task_submitted" @ 2,
        /// Phase 1.
        IngressScreened(IngressScreened) = "ingress_screened" @ 1,
        /// Phase 1.
        Rejected(TaskRejected) = "task_rejected" @ 1,
        /// Phase 2.
        ContextGathered(ContextGathered) = "context_gathered" @ 1,
        /// Phase 3.
        AgentSelected(AgentSelected) = "agent_selected" @ 1,
        /// Phase 3.
        NoAgentAvailable(NoAgentAvailable) = "no_agent_available" @ 1,
        /// Phase 4.
        EnvelopeSealed(EnvelopeSealed) = "envelope_sealed" @ 1,
        /// Phase 5.
        ExecutionStarted(ExecutionStarted) = "execution_started" @ 1,
        /// Phase 5.
        ProgressReported(ProgressReported) = "progress_reported" @ 1,
        /// Phase 5.
        ResultReceived(ResultReceived) = "result_received" @ 1,
        /// Phase 5.
        ExecutionFailed(ExecutionFailed) = "execution_failed" @ 1,
        /// Phase 5.
        ExecutionTimedOut(ExecutionTimedOut) = "execution_timed_out" @ 1,
        /// Phase 5.
        RetryScheduled(RetryScheduled) = "retry_scheduled" @ 1,
        /// Phase 6.
        ResultVerified(ResultVerified) = "result_verified" @ 1,
        /// Phase 6.
        ResultStored(ResultStored) = "result_stored" @ 1,
        /// Phase 8.
        EgressScreened(EgressScreened) = "egress_screened" @ 1,
        /// Phase 8.
        Completed(TaskCompleted) = "task_completed" @ 1,
        /// Phase 8.
        Failed(TaskFailed) = "task_failed" @ 1,
        /// Any phase.
        Cancelled(TaskCancelled) = "task_cancelled" @ 1,
        /// After the end.
        WebhookAttempted(WebhookAttempted) = "webhook_attempted" @ 1,
        /// After the end.
        WebhookDeadLettered(WebhookDeadLettered) = "webhook_dead_lettered" @ 1,
        /// After the end, on an operator's request.
        WebhookRedeliveryRequested(WebhookRedeliveryRequested) = "webhook_redelivery_requested" @ 1,
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// No events yet.
    #[default]
    New,
    /// Submitted, awaiting screening.
    Submitted,
    /// Screened, awaiting context.
    Screened,
    /// Context gathered, awaiting matching.
    ContextReady,
    /// No agent was available; matching will try again.
    Waiting,
    /// An agent was chosen, awaiting the envelope.
    AgentSelected,
    /// The envelope is sealed, awaiting the agent.
    Sealed,
    /// The agent is working.
    Running,
    /// The agent answered; awaiting verification.
    ResultReceived,
    /// The result verified; awaiting storage.
    Verified,
    /// The result is stored; awaiting egress screening.
    Stored,
    /// Egress screening passed; awaiting completion.
    EgressScreened,
    /// An attempt failed; deciding on a retry.
    AttemptFailed,
    /// Another attempt is scheduled; awaiting matching.
    Retrying,
    /// Finished with a result.
    Completed,
    /// Finished without a result.
    Failed,
    /// Refused at the door.
    Rejected,
    /// Cancelled.
    Cancelled,
}

impl TaskStatus {
    /// Whether the task has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Rejected | Self::Cancelled)
    }

    /// The status as the snake_case word used in events and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Submitted => "submitted",
            Self::Screened => "screened",
            Self::ContextReady => "context_ready",
            Self::Waiting => "waiting",
            Self::AgentSelected => "agent_selected",
            Self::Sealed => "sealed",
            Self::Running => "running",
            Self::ResultReceived => "result_received",
            Self::Verified => "verified",
            Self::Stored => "stored",
            Self::EgressScreened => "egress_screened",
            Self::AttemptFailed => "attempt_failed",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task's state: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskState {
    /// Events applied.
    pub version: Version,
    /// Where the task is.
    pub status: TaskStatus,
    /// The submission, once submitted.
    pub submitted: Option<TaskSubmitted>,
    /// The description to hand to agents (redacted if screening redacted it).
    pub description: Option<String>,
    /// Context gathered.
    pub context: Option<ContextGathered>,
    /// The current attempt (1 for the first; 0 before matching).
    pub attempt: u32,
    /// The agent of the current attempt.
    pub agent_id: Option<AgentId>,
    /// Agents excluded from matching for later attempts.
    pub excluded_agents: Vec<AgentId>,
    /// Times matching found no agent for the current attempt.
    pub no_agent_count: u32,
    /// The current attempt's sealed envelope.
    pub envelope: Option<SealedEnvelope>,
    /// The latest progress message.
    pub progress: Option<ProgressReported>,
    /// The result received for the current attempt.
    pub result: Option<SignedResult>,
    /// What was redacted from that result's output before it was recorded, if anything.
    pub result_redaction: Option<crate::envelope::OutputRedaction>,
    /// The last attempt's failure.
    pub last_failure: Option<String>,
    /// The output delivered, once completed.
    pub output: Option<serde_json::Value>,
    /// Why the task ended without a result.
    pub end_reason: Option<String>,
    /// Webhook delivery attempts so far.
    pub webhook_attempts: u32,
    /// Whether a webhook was delivered.
    pub webhook_delivered: bool,
    /// The id of the webhook dead-lettered last, until it is delivered or asked for again.
    pub webhook_dead: Option<String>,
}

impl TaskState {
    /// The task's id, once submitted.
    pub fn task_id(&self) -> Option<TaskId> {
        self.submitted.as_ref().map(|s| s.task_id)
    }

    /// The spec, once submitted.
    pub fn spec(&self) -> Option<&TaskSpec> {
        self.submitted.as_ref().map(|s| &s.spec)
    }

    fn refuse(&self, event: &TaskEvent, reason: impl Into<String>) -> TransitionError {
        use crate::domain::DomainEvent;
        TransitionError {
            entity: "task",
            state: self.status.to_string(),
            event_type: event.event_type().to_string(),
            reason: reason.into(),
        }
    }

    fn expect(&self, event: &TaskEvent, allowed: &[TaskStatus]) -> Result<(), TransitionError> {
        if allowed.contains(&self.status) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            Err(self.refuse(event, format!("allowed only in {}", names.join(", "))))
        }
    }

    fn expect_attempt(
        &self,
        event: &TaskEvent,
        agent: &AgentId,
        attempt: u32,
    ) -> Result<(), TransitionError> {
        if attempt != self.attempt || self.agent_id.as_ref() != Some(agent) {
            return Err(self.refuse(
                event,
                format!(
                    "it is for attempt {attempt} by {agent}, the current attempt is {} by {}",
                    self.attempt,
                    self.agent_id.as_ref().map_or("nobody", AgentId::as_str)
                ),
            ));
        }
        Ok(())
    }
}

impl Aggregate for TaskState {
    type Event = TaskEvent;

    fn version(&self) -> Version {
        self.version
    }

    fn apply(&mut self, event: &TaskEvent) -> Result<(), TransitionError> {
        use TaskStatus as S;
        if self.status.is_final()
            && !matches!(
                event,
                TaskEvent::WebhookAttempted(_)
                    | TaskEvent::WebhookDeadLettered(_)
                    | TaskEvent::WebhookRedeliveryRequested(_)
            )
        {
            return Err(self.refuse(event, "the task has ended"));
        }
        match event {
            TaskEvent::Submitted(e) => {
                self.expect(event, &[S::New])?;
                self.description = Some(e.spec.description.clone());
                self.submitted = Some(e.clone());
            }
            TaskEvent::IngressScreened(e) => {
                self.expect(event, &[S::Submitted])?;
                if let Some(redacted) = &e.redacted_description {
                    self.description = Some(redacted.clone());
                }
            }
            TaskEvent::Rejected(e) => {
                self.expect(event, &[S::Submitted])?;
                self.end_reason = Some(e.reason.clone());
            }
            TaskEvent::ContextGathered(e) => {
                self.expect(event, &[S::Screened])?;
                self.context = Some(e.clone());
                self.attempt = 1;
            }
            TaskEvent::AgentSelected(e) => {
                self.expect(event, &[S::ContextReady, S::Waiting, S::Retrying])?;
                if e.attempt != self.attempt {
                    return Err(self.refuse(
                        event,
                        format!(
                            "selection for attempt {}, the task is at attempt {}",
                            e.attempt, self.attempt
                        ),
                    ));
                }
                if self.excluded_agents.contains(&e.agent_id) {
                    return Err(self.refuse(event, format!("agent {} is excluded for this task", e.agent_id)));
                }
                self.agent_id = Some(e.agent_id.clone());
            }
            TaskEvent::NoAgentAvailable(_) => {
                self.expect(event, &[S::ContextReady, S::Waiting, S::Retrying])?;
                self.no_agent_count += 1;
            }
            TaskEvent::EnvelopeSealed(e) => {
                self.expect(event, &[S::AgentSelected])?;
                let envelope = &e.envelope.envelope;
                if Some(envelope.task_id) != self.task_id() {
                    return Err(self.refuse(event, "the envelope is for another task"));
                }
                self.expect_attempt(event, &envelope.agent_id, envelope.attempt)?;
                self.envelope = Some(e.envelope.clone());
            }
            TaskEvent::ExecutionStarted(e) => {
                self.expect(event, &[S::Sealed])?;
                self.expect_attempt(event, &e.agent_id, e.attempt)?;
            }
            TaskEvent::ProgressReported(e) => {
                self.expect(event, &[S::Running])?;
                self.expect_attempt(event, &e.agent_id, e.attempt)?;
                self.progress = Some(e.clone());
            }
            TaskEvent::ResultReceived(e) => {
                self.expect(event, &[S::Sealed, S::Running])?;
                self.expect_attempt(event, &e.result.result.agent_id, e.result.result.attempt)?;
                self.result = Some(e.result.clone());
                self.result_redaction = e.redaction.clone();
            }
            TaskEvent::ExecutionFailed(e) => {
                self.expect(event, &[S::Sealed, S::Running, S::ResultReceived])?;
                self.expect_attempt(event, &e.agent_id, e.attempt)?;
                self.last_failure = Some(e.reason.clone());
            }
            TaskEvent::ExecutionTimedOut(e) => {
                self.expect(event, &[S::Sealed, S::Running])?;
                self.expect_attempt(event, &e.agent_id, e.attempt)?;
                self.last_failure =
                    Some(format!("agent {} did not answer within {} ms", e.agent_id, e.timeout_ms));
            }
            TaskEvent::RetryScheduled(e) => {
                self.expect(event, &[S::AttemptFailed])?;
                if e.attempt != self.attempt + 1 {
                    return Err(self.refuse(event, format!("the next attempt is {}", self.attempt + 1)));
                }
                let max = self.spec().map_or(1, |s| s.max_attempts);
                if e.attempt > max {
                    return Err(self.refuse(event, format!("the task allows {max} attempts")));
                }
                for agent in &e.exclude_agents {
                    if !self.excluded_agents.contains(agent) {
                        self.excluded_agents.push(agent.clone());
                    }
                }
                self.attempt = e.attempt;
                self.agent_id = None;
                self.envelope = None;
                self.result = None;
                self.result_redaction = None;
                self.progress = None;
                self.no_agent_count = 0;
            }
            TaskEvent::ResultVerified(e) => {
                self.expect(event, &[S::ResultReceived])?;
                if self.result.as_ref().map(|r| r.hash) != Some(e.result_hash) {
                    return Err(self.refuse(event, "the verified hash is not the received result's"));
                }
            }
            TaskEvent::ResultStored(_) => {
                self.expect(event, &[S::Verified])?;
            }
            TaskEvent::EgressScreened(_) => {
                self.expect(event, &[S::Stored])?;
            }
            TaskEvent::Completed(e) => {
                self.expect(event, &[S::EgressScreened])?;
                self.output = Some(e.output.clone());
            }
            TaskEvent::Failed(e) => {
                if self.status == S::New {
                    return Err(self.refuse(event, "the task was never submitted"));
                }
                self.end_reason = Some(e.reason.clone());
            }
            TaskEvent::Cancelled(e) => {
                if self.status == S::New {
                    return Err(self.refuse(event, "the task was never submitted"));
                }
                self.end_reason = Some(if e.reason.is_empty() {
                    format!("cancelled by {}", e.by)
                } else {
                    e.reason.clone()
                });
            }
            TaskEvent::WebhookAttempted(e) => {
                if !self.status.is_final() {
                    return Err(self.refuse(event, "webhooks are sent only for finished tasks"));
                }
                self.webhook_attempts += 1;
                self.webhook_delivered |= e.delivered;
                if e.delivered {
                    self.webhook_dead = None;
                }
            }
            TaskEvent::WebhookDeadLettered(e) => {
                if !self.status.is_final() {
                    return Err(self.refuse(event, "webhooks are sent only for finished tasks"));
                }
                self.webhook_dead = Some(e.webhook_id.clone());
            }
            TaskEvent::WebhookRedeliveryRequested(e) => {
                if self.webhook_dead.as_deref() != Some(e.webhook_id.as_str()) {
                    return Err(self.refuse(event, "only a dead-lettered webhook is delivered again"));
                }
                self.webhook_dead = None;
            }
        }
        // The status each kind of event moves its task to: one map, for this fold and the
        // read models alike.
        if let Some(status) = event.kind().status_after() {
            self.status = status;
        }
        self.version += 1;
        Ok(())
    }
}
