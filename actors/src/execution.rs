//! Phase 5, execution: `envelope_sealed` → `execution_started`, `progress_reported`…, then
//! `result_received`, `execution_failed` or `execution_timed_out`.
//!
//! The executor hands the sealed envelope to the agent through its transport (in-process, or
//! HTTP for agents outside the process); the agent verifies the seal before working. The attempt is bounded by the
//! envelope's expiry (the task's deadline) and by the agent's maximum concurrency in this
//! process. While it runs, the executor records the agent's progress and watches the task: a
//! cancellation abandons the attempt. The input stays unacknowledged until the outcome is in
//! the log, so an attempt cut short by a crash runs again after the restart (agents are called
//! at least once; their outcome is recorded exactly once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use events::task::{
    ExecutionFailed, ExecutionStarted, ExecutionTimedOut, FailureCause, ProgressReported, ResultReceived,
    TaskEvent, TaskStatus,
};
use events::{AgentId, DomainEvent, RecordedEvent, SealedEnvelope, now_ms};
use tokio::sync::{Semaphore, mpsc};

use crate::agents::{AgentEndpoint, AgentFailure, PROGRESS_QUEUE_COUNT_MAX, Progress};
use crate::error::Result;
use crate::phase::{
    Ctx, Handled, Loaded, Output, Phase, Resume, decide_and_append, decide_and_append_as,
    decide_and_append_then, load_task_cached,
};

/// How often a running attempt checks whether its task was cancelled.
pub const CANCEL_CHECK_MS: u64 = 250;

/// Progress reports recorded per attempt at most; later ones are dropped.
pub const PROGRESS_EVENTS_PER_ATTEMPT_MAX: u32 = 100;

/// Phase 5.
pub(crate) struct Execution {
    /// One semaphore per hosted agent: its maximum concurrency in this process.
    slots: HashMap<AgentId, Arc<Semaphore>>,
    /// Endpoints of agents registered at run time (not in this process's configuration),
    /// built from their registration's transport and rebuilt when it changes.
    registered: std::sync::Mutex<HashMap<AgentId, Reached>>,
}

/// An endpoint built for a transport.
type Reached = (events::agent::AgentTransport, Arc<dyn AgentEndpoint>);

impl Execution {
    /// Phase 5 with these slots (one semaphore per hosted agent, [`slots`]).
    pub(crate) fn new(slots: HashMap<AgentId, Arc<Semaphore>>) -> Self {
        Self { slots, registered: std::sync::Mutex::default() }
    }

    /// The endpoint of an agent registered at run time (`POST /agents`, `pantheon agents
    /// register`): reached over HTTP at its URL, or over NATS on its subject when this process
    /// runs on NATS; `None` for an agent whose transport this process cannot use.
    fn registered_endpoint(&self, ctx: &Ctx, agent: &AgentId) -> Option<Arc<dyn AgentEndpoint>> {
        use events::agent::AgentTransport;
        let transport = ctx.registry.agent(agent)?.registration?.transport;
        let Ok(mut registered) = self.registered.lock() else { return None };
        if let Some((known, endpoint)) = registered.get(agent)
            && *known == transport
        {
            return Some(Arc::clone(endpoint));
        }
        let endpoint: Arc<dyn AgentEndpoint> = match &transport {
            AgentTransport::Http { url } => Arc::new(crate::agents::http::HttpAgent::new(url.clone()).ok()?),
            AgentTransport::Nats { subject } => {
                Arc::new(crate::agents::nats::NatsAgent::new(ctx.nats.clone()?, subject.clone()))
            }
            AgentTransport::Pull => {
                Arc::new(crate::pull::PullAgent { board: Arc::clone(&ctx.pull), agent: agent.clone() })
            }
            AgentTransport::InProcess { .. } => return None,
        };
        registered.insert(agent.clone(), (transport, Arc::clone(&endpoint)));
        Some(endpoint)
    }
}

/// One semaphore per hosted agent with its maximum concurrency in this process.
pub(crate) fn slots(limits: &HashMap<AgentId, u32>) -> HashMap<AgentId, Arc<Semaphore>> {
    limits.iter().map(|(id, max)| (id.clone(), Arc::new(Semaphore::new(permits(*max))))).collect()
}

/// The permits of a maximum concurrency (at least one).
pub(crate) fn permits(max: u32) -> usize {
    usize::try_from(max.max(1)).unwrap_or(1)
}

/// The decider of an attempt's end: its result, failure or time-out, recorded when the task
/// is still in that attempt (sealed, or running); nothing for an attempt the task has moved
/// past (cancelled, ended, or retried elsewhere).
fn decide_outcome(loaded: &Loaded, sealed: &SealedEnvelope, outcome: &Outcome) -> Vec<Output> {
    if !same_attempt(loaded, sealed)
        || !matches!(loaded.state.status, TaskStatus::Sealed | TaskStatus::Running)
    {
        return Vec::new();
    }
    let (agent_id, attempt) = (sealed.envelope.agent_id.clone(), sealed.envelope.attempt);
    let event = match outcome {
        Outcome::Result(received) => ("result".into(), TaskEvent::ResultReceived((**received).clone())),
        Outcome::Failed(failure) => (
            "failed".into(),
            TaskEvent::ExecutionFailed(ExecutionFailed {
                agent_id,
                attempt,
                cause: failure.cause,
                reason: failure.reason.clone(),
            }),
        ),
        Outcome::TimedOut(timeout_ms) => (
            "timed_out".into(),
            TaskEvent::ExecutionTimedOut(ExecutionTimedOut { agent_id, attempt, timeout_ms: *timeout_ms }),
        ),
    };
    vec![event]
}

/// How an attempt ended.
enum Outcome {
    /// The agent's result as it is to be recorded: redacted ([`received`]).
    Result(Box<ResultReceived>),
    Failed(AgentFailure),
    TimedOut(u64),
}

fn same_attempt(loaded: &Loaded, envelope: &SealedEnvelope) -> bool {
    loaded.state.envelope.as_ref().is_some_and(|e| e.hash == envelope.hash)
}

impl Execution {
    /// Records `execution_started` if not yet ([`decide_start`]); returns the task's fold with
    /// the attempt running and whether it was started before (a redelivery, or a restart),
    /// or None when there is nothing (left) to run for this input.
    async fn start(
        &self,
        ctx: &Ctx,
        input: &RecordedEvent,
        sealed: &SealedEnvelope,
    ) -> Result<Option<(Arc<Loaded>, bool)>> {
        let written = decide_and_append_then(ctx, input, "execution", Resume::AfterDuplicate, |loaded| {
            decide_start(loaded, sealed)
        })
        .await?;
        let resumed = written.is_none();
        let loaded = match written {
            Some(after) => after,
            None => load_task_cached(ctx, sealed.envelope.task_id).await?,
        };
        let running = same_attempt(&loaded, sealed) && loaded.state.status == TaskStatus::Running;
        Ok(running.then_some((loaded, resumed)))
    }
}

/// The decider of an attempt's start: `execution_started` when the task holds the sealed
/// attempt and it has not started; nothing otherwise (started already, or moved on).
pub(crate) fn decide_start(loaded: &Loaded, sealed: &SealedEnvelope) -> Vec<Output> {
    if !same_attempt(loaded, sealed) || loaded.state.status != TaskStatus::Sealed {
        return Vec::new();
    }
    let started = TaskEvent::ExecutionStarted(ExecutionStarted {
        agent_id: sealed.envelope.agent_id.clone(),
        attempt: sealed.envelope.attempt,
    });
    vec![("started".into(), started)]
}

#[async_trait]
impl Phase for Execution {
    fn name(&self) -> &'static str {
        "execution"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[events::TaskEventKind::EnvelopeSealed]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let TaskEvent::EnvelopeSealed(sealed) = TaskEvent::from_recorded(input)? else {
            return Ok(Handled::Done);
        };
        let sealed = sealed.envelope;
        let agent_id = sealed.envelope.agent_id.clone();
        let endpoint =
            ctx.agents.get(&agent_id).cloned().or_else(|| self.registered_endpoint(ctx, &agent_id));
        let Some(endpoint) = endpoint else {
            // Neither hosted nor configured here (another process's agent, or one reached over
            // NATS, a transport not built yet).
            let reason = format!(
                "agent {agent_id} is not reachable from this process (it hosts or calls over HTTP only the agents of its configuration)"
            );
            let unreachable = Outcome::Failed(AgentFailure { cause: FailureCause::Transport, reason });
            return decide_and_append(ctx, input, self.name(), |loaded| {
                decide_outcome(loaded, &sealed, &unreachable)
            })
            .await;
        };
        // Wait for a slot of the agent in this process; a drain starts no new attempt.
        let slot = match self.slots.get(&agent_id) {
            Some(semaphore) => tokio::select! {
                () = ctx.draining.cancelled() => return Ok(Handled::Interrupted),
                permit = Arc::clone(semaphore).acquire_owned() => permit.ok(),
            },
            None => None,
        };
        if ctx.draining.is_cancelled() {
            return Ok(Handled::Interrupted);
        }
        let running = RunningHere::new(ctx, sealed.envelope.task_id);
        let Some((_, resumed)) = self.start(ctx, input, &sealed).await? else { return Ok(Handled::Done) };

        let outcome = if resumed && sealed.envelope.expires_at_ms <= now_ms() {
            // Started before this process (or another) stopped, and the deadline passed while
            // nothing ran it: not the agent's doing, and too late for another attempt.
            Ok(Ok(Outcome::Failed(AgentFailure::task(
                "the attempt was interrupted (the process running it stopped) and the task's deadline passed before it resumed",
            ))))
        } else {
            let _in_flight = ctx.registry.running(&agent_id);
            let started = std::time::Instant::now();
            let outcome = self.run(ctx, input, &sealed, endpoint.as_ref()).await;
            if let Ok(Ok(ended)) = &outcome {
                let name = match ended {
                    Outcome::Result(_) => "result",
                    Outcome::Failed(_) => "failed",
                    Outcome::TimedOut(_) => "timed_out",
                };
                ctx.metrics.attempt(agent_id.as_str(), name, started.elapsed());
            }
            outcome
        };
        drop(slot);
        drop(running);
        let outcome = match outcome? {
            Ok(outcome) => outcome,
            Err(stopped) => return Ok(stopped),
        };
        // The agent's words: secrets and personal data redacted (as in progress) before the
        // decision, which records them.
        let outcome = match outcome {
            Outcome::Failed(AgentFailure { cause, reason }) => {
                Outcome::Failed(AgentFailure { cause, reason: security::scrub(&reason).unwrap_or(reason) })
            }
            other => other,
        };
        let mut record = |loaded: &Loaded| decide_outcome(loaded, &sealed, &outcome);
        // The agent has answered: its outcome is recorded, whatever it takes. A log failure
        // (the server or its archive restarting) is waited out with backoff instead of
        // failing the handler, whose redelivered input would run the agent a second time.
        let mut wait_ms = OUTCOME_RETRY_MS_BASE;
        loop {
            match decide_and_append(ctx, input, self.name(), &mut record).await {
                Err(crate::Error::Log(error)) if !error.is_bad_input() => {
                    tracing::warn!(task_id = %sealed.envelope.task_id, %error, wait_ms, "the attempt's outcome was not recorded; trying again");
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Ok(Handled::Interrupted),
                        () = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
                    }
                    wait_ms = (wait_ms * 2).min(OUTCOME_RETRY_MS_MAX);
                }
                done => return done,
            }
        }
    }
}

/// Whether `result` claims to answer `sealed`: its task, attempt and agent (the signature and
/// the envelope hash are verification's to check).
fn answers(result: &events::SignedResult, sealed: &SealedEnvelope) -> bool {
    let (claimed, envelope) = (&result.result, &sealed.envelope);
    claimed.task_id == envelope.task_id
        && claimed.attempt == envelope.attempt
        && claimed.agent_id == envelope.agent_id
}

/// What is recorded of an agent's result: the result itself when its output holds nothing to
/// redact; else the output with secrets and personal data replaced by placeholders, the agent's
/// hash and signature unchanged, and the record of what was taken out and where (checked
/// against the agent's hash here, in memory: see [`events::OutputRedaction`]). The raw output
/// never reaches the log.
fn received(result: events::SignedResult) -> std::result::Result<ResultReceived, events::Error> {
    let Some(scrubbed) = security::scrub_json_spans(&result.result.output) else {
        return Ok(ResultReceived { result, redaction: None });
    };
    let spans = scrubbed
        .redactions
        .into_iter()
        .map(|r| events::RedactedSpan {
            kind: r.kind,
            pointer: r.pointer,
            start: r.start as u64,
            end: r.end as u64,
            in_key: r.in_key,
        })
        .collect();
    let (result, redaction) = result.redact(scrubbed.value, spans, scrubbed.count as u64)?;
    Ok(ResultReceived { result, redaction: Some(redaction) })
}

/// The first wait before recording an attempt's outcome again after the log failed; doubled
/// each time, up to [`OUTCOME_RETRY_MS_MAX`].
pub const OUTCOME_RETRY_MS_BASE: u64 = 50;

/// The longest wait between two tries to record an attempt's outcome.
pub const OUTCOME_RETRY_MS_MAX: u64 = 2_000;

impl Execution {
    /// Runs the attempt: the agent's answer, its failure, or the deadline; or how the handler
    /// ends without an outcome (interrupted by shutdown, or done because the task ended).
    async fn run(
        &self,
        ctx: &Ctx,
        input: &RecordedEvent,
        sealed: &SealedEnvelope,
        endpoint: &dyn crate::agents::AgentEndpoint,
    ) -> Result<std::result::Result<Outcome, Handled>> {
        let remaining_ms = sealed.envelope.expires_at_ms.saturating_sub(now_ms()).max(0);
        let timeout_ms =
            u64::try_from(sealed.envelope.expires_at_ms - sealed.envelope.issued_at_ms).unwrap_or(0);
        if remaining_ms == 0 {
            return Ok(Ok(Outcome::TimedOut(timeout_ms)));
        }
        let (tx, mut rx) = mpsc::channel(PROGRESS_QUEUE_COUNT_MAX);
        let call = tracing::info_span!(
            "agent call",
            otel.name = "agent call",
            agent = %sealed.envelope.agent_id,
            attempt = sealed.envelope.attempt,
        );
        let execute = tracing::Instrument::instrument(endpoint.execute(sealed, tx), call);
        tokio::pin!(execute);
        let deadline = tokio::time::sleep(Duration::from_millis(u64::try_from(remaining_ms).unwrap_or(0)));
        tokio::pin!(deadline);
        // The first check one period from now: awaiting an interval's immediate first tick
        // costs a turn of the timer wheel (about a millisecond) on every attempt.
        let every = Duration::from_millis(CANCEL_CHECK_MS);
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut progress_count = 0u32;
        let mut progress_open = true;
        loop {
            tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => return Ok(Err(Handled::Interrupted)),
                result = &mut execute => {
                    // Reports sent just before the answer are recorded before it.
                    while let Ok(progress) = rx.try_recv() {
                        progress_count += 1;
                        record_progress(ctx, input, sealed, progress_count, progress).await;
                    }
                    return Ok(Ok(match result {
                        // A result for another task or attempt (replayed) cannot be recorded
                        // as this attempt's: the attempt failed, by the agent's doing.
                        Ok(result) if !answers(&result, sealed) => Outcome::Failed(AgentFailure {
                            cause: FailureCause::Verification,
                            reason: format!(
                                "the result did not verify: it answers another envelope (task {}, attempt {}), not this attempt's",
                                result.result.task_id, result.result.attempt
                            ),
                        }),
                        Ok(result) => match received(result) {
                            Ok(received) => Outcome::Result(Box::new(received)),
                            Err(error) => Outcome::Failed(AgentFailure::agent(format!(
                                "the agent's result cannot be encoded: {error}"
                            ))),
                        },
                        Err(failure) => Outcome::Failed(failure),
                    }));
                }
                () = &mut deadline => return Ok(Ok(Outcome::TimedOut(timeout_ms))),
                progress = rx.recv(), if progress_open => {
                    let Some(progress) = progress else { progress_open = false; continue };
                    progress_count += 1;
                    record_progress(ctx, input, sealed, progress_count, progress).await;
                }
                _ = check.tick() => {
                    // A failed read (the log or its archive down for a moment) is not a reason
                    // to give up an attempt the agent is working on: look again next tick.
                    match load_task_cached(ctx, sealed.envelope.task_id).await {
                        Ok(loaded) if loaded.is_final() || !same_attempt(&loaded, sealed) => {
                            tracing::info!(task_id = %sealed.envelope.task_id, "attempt abandoned: the task ended or moved on");
                            return Ok(Err(Handled::Done));
                        }
                        Ok(_) => {}
                        Err(error) => {
                            tracing::warn!(task_id = %sealed.envelope.task_id, %error, "cannot read the task to check for a cancel; the attempt goes on");
                        }
                    }
                }
            }
        }
    }
}

/// Records the attempt's `count`th progress report, unless the attempt is over the reports'
/// limit, or no longer the task's running attempt. A report the log cannot take now is
/// dropped with a warning: the attempt goes on (giving it up would run the agent again).
async fn record_progress(
    ctx: &Ctx,
    input: &RecordedEvent,
    sealed: &SealedEnvelope,
    count: u32,
    progress: Progress,
) {
    if count > PROGRESS_EVENTS_PER_ATTEMPT_MAX {
        return;
    }
    let purpose = format!("progress-{count}");
    // Recorded in the log and shown to people: secrets and personal data are redacted, as in
    // a submission.
    let message = security::scrub(&progress.message).unwrap_or(progress.message);
    let event = TaskEvent::ProgressReported(ProgressReported {
        agent_id: sealed.envelope.agent_id.clone(),
        attempt: sealed.envelope.attempt,
        percent: progress.percent.map(|p| p.min(100)),
        message,
    });
    let recorded = decide_and_append_as(ctx, input, "execution", Resume::Never, |loaded| {
        if same_attempt(loaded, sealed) && loaded.state.status == TaskStatus::Running {
            vec![(purpose.clone().into(), event.clone())]
        } else {
            Vec::new()
        }
    })
    .await;
    if let Err(error) = recorded {
        tracing::warn!(task_id = %sealed.envelope.task_id, count, %error, "a progress report was not recorded");
    }
}

/// Marks a task's attempt as running in this process while it lives, so that a drain waits
/// for the task.
struct RunningHere<'a> {
    ctx: &'a Ctx,
    task_id: events::TaskId,
}

impl<'a> RunningHere<'a> {
    fn new(ctx: &'a Ctx, task_id: events::TaskId) -> Self {
        if let Ok(mut attempts) = ctx.attempts.lock() {
            attempts.insert(task_id);
        }
        Self { ctx, task_id }
    }
}

impl Drop for RunningHere<'_> {
    fn drop(&mut self) {
        if let Ok(mut attempts) = self.ctx.attempts.lock() {
            attempts.remove(&self.task_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use events::task::{RetryScheduled, TaskCancelled};
    use events::{AgentResult, KeyPair, SignedResult, TaskSpec};

    use super::*;
    use crate::phase::tests::attempt_started;

    /// Given: a task whose first attempt on a1 was sealed, and the events `after` it.
    fn sealed_then(after: impl FnOnce(&SealedEnvelope) -> Vec<TaskEvent>) -> (Loaded, SealedEnvelope) {
        let federation = KeyPair::generate();
        let agent = AgentId::new("a1").unwrap();
        let mut envelope = None;
        let loaded = attempt_started(TaskSpec::new("echo", "say hi"), &federation, &agent, 1_000, |sealed| {
            envelope = Some(sealed.clone());
            after(sealed)
        });
        (loaded, envelope.expect("sealed"))
    }

    fn result_for(sealed: &SealedEnvelope) -> Outcome {
        let key = KeyPair::generate();
        let result = AgentResult {
            task_id: sealed.envelope.task_id,
            attempt: sealed.envelope.attempt,
            agent_id: sealed.envelope.agent_id.clone(),
            output: serde_json::json!("hi"),
            envelope_hash: sealed.hash,
            completed_at_ms: 1_500,
        };
        let signed = SignedResult::sign(result, &key).expect("signed");
        Outcome::Result(Box::new(ResultReceived { result: signed, redaction: None }))
    }

    #[test]
    fn an_attempt_starts_once() {
        // `attempt_started` records the start: step back to the sealed task.
        let (mut loaded, sealed) = sealed_then(|_| Vec::new());
        loaded.state.status = TaskStatus::Sealed;
        let outputs = decide_start(&loaded, &sealed);
        let [(_, TaskEvent::ExecutionStarted(started))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!((started.agent_id.as_str(), started.attempt), ("a1", 1));
        // Running already (a redelivered input): nothing.
        let (running, sealed) = sealed_then(|_| Vec::new());
        assert!(decide_start(&running, &sealed).is_empty());
    }

    #[test]
    fn the_outcome_of_the_running_attempt_is_recorded_as_what_it_was() {
        let (running, sealed) = sealed_then(|_| Vec::new());
        let outputs = decide_outcome(&running, &sealed, &result_for(&sealed));
        assert!(matches!(outputs.as_slice(), [(_, TaskEvent::ResultReceived(_))]), "{outputs:?}");
        let failure =
            Outcome::Failed(AgentFailure { cause: FailureCause::Transport, reason: "refused".into() });
        let outputs = decide_outcome(&running, &sealed, &failure);
        let [(_, TaskEvent::ExecutionFailed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(
            (failed.cause, failed.reason.as_str(), failed.attempt),
            (FailureCause::Transport, "refused", 1)
        );
        let outputs = decide_outcome(&running, &sealed, &Outcome::TimedOut(30_000));
        let [(_, TaskEvent::ExecutionTimedOut(late))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(late.timeout_ms, 30_000);
    }

    #[test]
    fn an_attempt_the_task_moved_past_records_nothing() {
        // Cancelled while the agent worked.
        let cancelled = |_: &SealedEnvelope| {
            vec![TaskEvent::Cancelled(TaskCancelled { by: "a new user".into(), reason: String::new() })]
        };
        let (task, sealed) = sealed_then(cancelled);
        assert!(decide_outcome(&task, &sealed, &Outcome::TimedOut(1)).is_empty());
        // Its result recorded already (a redelivery after the append).
        let (running, sealed) = sealed_then(|_| Vec::new());
        let outputs = decide_outcome(&running, &sealed, &result_for(&sealed));
        let [(_, received)] = outputs.as_slice() else { panic!("{outputs:?}") };
        let (done, sealed) = sealed_then(|_| vec![received.clone()]);
        assert!(decide_outcome(&done, &sealed, &result_for(&sealed)).is_empty());
        // Failed and retried: the old attempt's envelope is not the task's.
        let failed = |_: &SealedEnvelope| {
            vec![
                TaskEvent::ExecutionFailed(ExecutionFailed {
                    agent_id: AgentId::new("a1").unwrap(),
                    attempt: 1,
                    cause: FailureCause::Agent,
                    reason: "boom".into(),
                }),
                TaskEvent::RetryScheduled(RetryScheduled {
                    attempt: 2,
                    not_before_ms: 1_200,
                    exclude_agents: Vec::new(),
                }),
            ]
        };
        let (retried, sealed) = sealed_then(failed);
        assert!(decide_start(&retried, &sealed).is_empty());
        assert!(decide_outcome(&retried, &sealed, &Outcome::TimedOut(1)).is_empty());
    }
}
