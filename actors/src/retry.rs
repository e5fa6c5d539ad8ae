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
use events::{DomainEvent, RecordedEvent};

use crate::error::Result;
use crate::matching::{Facts as Agents, jitter, score};
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append};

/// The wait before the second attempt, doubled for each later one.
pub const RETRY_BACKOFF_MS_BASE: i64 = 200;

/// The longest wait between attempts.
pub const RETRY_BACKOFF_MS_MAX: i64 = 10_000;

/// Phase 5's retry policy.
pub(crate) struct Retry;

/// What the retry decider is told besides the task: the failure that woke it (its event id
/// makes the jitter), whether another agent could take the next attempt, and the time.
pub(crate) struct Facts<'a> {
    pub(crate) failure: &'a TaskEvent,
    pub(crate) failure_id: events::EventId,
    /// Whether an agent other than the failed one (and those excluded already) offers the
    /// capability now.
    pub(crate) another_agent: bool,
    pub(crate) now: i64,
}

/// The decider: after a failed attempt, `task_failed` when the task caused it, when no
/// attempt is left or when the deadline leaves no room for the backoff; else
/// `retry_scheduled` after the backoff, excluding the failed agent when it was to blame and
/// another can take the task.
pub(crate) fn decide(loaded: &Loaded, facts: &Facts<'_>) -> Vec<Output> {
    let state = &loaded.state;
    let (agent, attempt, cause, what) = match facts.failure {
        TaskEvent::ExecutionFailed(e) => (e.agent_id.clone(), e.attempt, e.cause, e.reason.clone()),
        TaskEvent::ExecutionTimedOut(e) => (
            e.agent_id.clone(),
            e.attempt,
            FailureCause::Agent,
            format!("agent {} did not answer within {} ms", e.agent_id, e.timeout_ms),
        ),
        _ => return Vec::new(),
    };
    if state.status != TaskStatus::AttemptFailed || state.attempt != attempt {
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
    let shift = (attempt.saturating_sub(1)).min(16);
    let backoff = (RETRY_BACKOFF_MS_BASE << shift).min(RETRY_BACKOFF_MS_MAX);
    let not_before_ms = facts.now + (backoff as f64 * jitter(facts.failure_id)) as i64;
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
    let blamed = matches!(cause, FailureCause::Agent | FailureCause::Verification);
    let exclude_agents = if blamed && facts.another_agent { vec![agent] } else { Vec::new() };
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

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[events::TaskEventKind::ExecutionFailed, events::TaskEventKind::ExecutionTimedOut]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let failure = TaskEvent::from_recorded(input)?;
        let failed_agent = match &failure {
            TaskEvent::ExecutionFailed(e) => e.agent_id.clone(),
            TaskEvent::ExecutionTimedOut(e) => e.agent_id.clone(),
            _ => return Ok(Handled::Done),
        };
        decide_and_append(ctx, input, self.name(), |loaded| {
            let now = ctx.clock.now_ms();
            // The fact matching knows: whether an agent other than the failed one can take it.
            let another_agent = loaded.state.spec().is_some_and(|spec| {
                let mut excluded = loaded.state.excluded_agents.clone();
                excluded.push(failed_agent.clone());
                let agents = Agents::gather(&ctx.registry, &ctx.standing, &spec.capability, now, None);
                !score(&agents, &spec.capability, &excluded, now).0.is_empty()
            });
            let facts = Facts { failure: &failure, failure_id: input.id, another_agent, now };
            decide(loaded, &facts)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use events::task::ExecutionFailed;
    use events::{AgentId, EventId, KeyPair, TaskSpec};

    use super::*;
    use crate::phase::tests::attempt_started;

    /// A task (submitted at 1,000 ms, `timeout_ms`, `max_attempts`) whose first attempt on
    /// agent a1 failed with `cause`.
    fn given(timeout_ms: u64, max_attempts: u32, cause: FailureCause) -> (Loaded, TaskEvent) {
        let federation = KeyPair::generate();
        let mut spec = TaskSpec::new("echo", "say hi");
        spec.timeout_ms = timeout_ms;
        spec.max_attempts = max_attempts;
        let agent_id = AgentId::new("a1").unwrap();
        let failed = TaskEvent::ExecutionFailed(ExecutionFailed {
            agent_id: agent_id.clone(),
            attempt: 1,
            cause,
            reason: "boom".into(),
        });
        let loaded = attempt_started(spec, &federation, &agent_id, 1_000, |_| vec![failed.clone()]);
        (loaded, failed)
    }

    fn facts(failure: &TaskEvent, another_agent: bool, now: i64) -> Facts<'_> {
        Facts { failure, failure_id: EventId::new(), another_agent, now }
    }

    #[test]
    fn an_agent_failure_is_retried_after_the_backoff_on_another_agent() {
        let (task, failure) = given(60_000, 3, FailureCause::Agent);
        let outputs = decide(&task, &facts(&failure, true, 2_000));
        let [(_, TaskEvent::RetryScheduled(retry))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(retry.attempt, 2);
        // 200 ms times a jitter in [0.5, 1.5), from the injected time.
        assert!((2_100..2_300).contains(&retry.not_before_ms), "{}", retry.not_before_ms);
        assert_eq!(retry.exclude_agents, [AgentId::new("a1").unwrap()]);
        // With no other agent, the same one is tried again.
        let outputs = decide(&task, &facts(&failure, false, 2_000));
        let [(_, TaskEvent::RetryScheduled(retry))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert!(retry.exclude_agents.is_empty());
    }

    #[test]
    fn a_failure_the_task_causes_is_final() {
        let (task, failure) = given(60_000, 3, FailureCause::Task);
        let outputs = decide(&task, &facts(&failure, true, 2_000));
        let [(_, TaskEvent::Failed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(failed.code, FailureCode::TaskError);
    }

    #[test]
    fn the_last_attempt_and_the_deadline_end_the_task() {
        let (task, failure) = given(60_000, 1, FailureCause::Agent);
        let outputs = decide(&task, &facts(&failure, true, 2_000));
        let [(_, TaskEvent::Failed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(failed.code, FailureCode::AttemptsExhausted);
        // Deadline at 1,000 + 1,000 ms: no room for a 100-300 ms backoff at 1,950 ms.
        let (task, failure) = given(1_000, 3, FailureCause::Agent);
        let outputs = decide(&task, &facts(&failure, true, 1_950));
        let [(_, TaskEvent::Failed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(failed.code, FailureCode::DeadlineExceeded);
    }

    #[test]
    fn a_failure_of_another_attempt_decides_nothing() {
        let (task, _) = given(60_000, 3, FailureCause::Agent);
        let stale = TaskEvent::ExecutionFailed(ExecutionFailed {
            agent_id: AgentId::new("a1").unwrap(),
            attempt: 2,
            cause: FailureCause::Agent,
            reason: "late".into(),
        });
        assert!(decide(&task, &facts(&stale, true, 2_000)).is_empty());
    }
}
