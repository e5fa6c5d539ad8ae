//! Phase 5, the retry policy: `execution_failed` and `execution_timed_out` → `retry_scheduled`
//! or `task_failed`.
//!
//! A failure the task causes is final. Otherwise another attempt is scheduled after an
//! exponential backoff with jitter ([`RETRY_BACKOFF_MS_BASE`] doubled per attempt, at most
//! [`RETRY_BACKOFF_MS_MAX`], times a factor in [0.5, 1.5) derived from the failure's event id),
//! on another agent when the failure was the agent's and another agent offers the capability,
//! as long as attempts remain and the deadline leaves room.

use async_trait::async_trait;
use events::task::{FailureCause, FailureCode, RetryScheduled, TaskEvent, TaskFailed, TaskStatus};
use events::{DomainEvent, RecordedEvent, now_ms};

use crate::error::Result;
use crate::matching::{candidates, jitter};
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append};

/// The wait before the second attempt, doubled for each later one.
pub const RETRY_BACKOFF_MS_BASE: i64 = 200;

/// The longest wait between attempts.
pub const RETRY_BACKOFF_MS_MAX: i64 = 10_000;

/// Phase 5's retry policy.
pub(crate) struct Retry;

fn decide(ctx: &Ctx, input: &RecordedEvent, failure: &TaskEvent, loaded: &Loaded) -> Vec<Output> {
    let state = &loaded.state;
    let (agent, attempt, cause, what) = match failure {
        TaskEvent::ExecutionFailed(e) => (e.agent_id.clone(), e.attempt, e.cause, e.reason.clone()),
        TaskEvent::ExecutionTimedOut(e) => (
            e.agent_id.clone(),
            e.attempt,
            FailureCause::Agent,
            format!("agent {} did not answer within {} ms", e.agent_id, e.timeout_ms),
        ),
        _ => return Vec::new(),
    };
    if state.status != TaskStatus::AttemptFailed
        || state.attempt != attempt
        || loaded.version != input.version
    {
        return Vec::new();
    }
    let Some(spec) = state.spec() else { return Vec::new() };
    let fail = |code, reason: String| vec![("failed".into(), TaskEvent::Failed(TaskFailed { code, reason }))];
    if cause == FailureCause::Task {
        return fail(FailureCode::TaskError, format!("the task cannot succeed: {what}"));
    }
    if attempt >= spec.max_attempts {
        return fail(
            FailureCode::AttemptsExhausted,
            format!("all {} attempts failed; the last: {what}", spec.max_attempts),
        );
    }
    let now = now_ms();
    let shift = (attempt.saturating_sub(1)).min(16);
    let backoff = (RETRY_BACKOFF_MS_BASE << shift).min(RETRY_BACKOFF_MS_MAX);
    let not_before_ms = now + (backoff as f64 * jitter(input.id)) as i64;
    if not_before_ms >= loaded.deadline_ms() {
        return fail(
            FailureCode::DeadlineExceeded,
            format!(
                "no time is left before the deadline for attempt {}; the last failure: {what}",
                attempt + 1
            ),
        );
    }
    // Another agent when the agent is to blame and someone else can do it.
    let mut exclude_agents = Vec::new();
    if matches!(cause, FailureCause::Agent | FailureCause::Verification) {
        let mut excluded = state.excluded_agents.clone();
        excluded.push(agent.clone());
        if !candidates(&ctx.registry, &ctx.standing, &spec.capability, &excluded, now, None).is_empty() {
            exclude_agents.push(agent);
        }
    }
    vec![(
        "retry".into(),
        TaskEvent::RetryScheduled(RetryScheduled { attempt: attempt + 1, not_before_ms, exclude_agents }),
    )]
}

#[async_trait]
impl Phase for Retry {
    fn name(&self) -> &'static str {
        "retry"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["execution_failed", "execution_timed_out"]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let failure = TaskEvent::from_recorded(input)?;
        decide_and_append(ctx, input, self.name(), |loaded| decide(ctx, input, &failure, loaded)).await
    }
}
