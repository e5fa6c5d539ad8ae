//! The deadline sweeper: a task past its deadline is failed with that reason
//! (`task_failed`, [`FailureCode::DeadlineExceeded`]) by whichever process sees it first,
//! exactly once.
//!
//! The phases end most late tasks themselves (an attempt times out at the envelope's expiry,
//! matching and retry refuse to go on past the deadline). The sweeper is for the tasks that
//! nothing will wake: an input dead-lettered, an event lost by a server that acknowledged it
//! before writing it, a bug. Every [`SWEEP_INTERVAL_MS`] it walks the task view's unfinished
//! tasks, oldest first, a page of [`SWEEP_PAGE_COUNT`] at a time (resuming after the last
//! page's end, starting over when it reaches the newest), folds each from the log, and asks
//! [`decide`]: a task that is still unfinished [`SWEEP_GRACE_MS`] after its deadline gets
//! `task_failed`. The append expects the version the decision was made on, and the event's id
//! is derived from the task's submission, so two processes sweeping at once write it once: the
//! loser's append conflicts or is a duplicate.

use std::sync::Arc;
use std::time::Duration;

use events::task::{FailureCode, TaskEvent, TaskFailed};
use events::{EventId, Metadata};
use projections::{TaskCursor, TaskReader};

use crate::phase::{Appended, Ctx, Loaded, Output, append_with, load_task_cached};

/// How often a process sweeps (each sweep reads one page of the task view).
pub const SWEEP_INTERVAL_MS: u64 = 1_000;

/// Unfinished tasks looked at per sweep.
pub const SWEEP_PAGE_COUNT: u32 = 256;

/// How long after its deadline a task is left to the phases (whose own deadline checks name
/// what was late) before the sweeper fails it.
pub const SWEEP_GRACE_MS: i64 = 2_000;

/// The sweeper's emitter and the purpose its event id derives from.
const SWEEPER: &str = "sweeper";

/// The decider: `task_failed` for a task unfinished [`SWEEP_GRACE_MS`] past its deadline.
pub(crate) fn decide(loaded: &Loaded, now: i64) -> Vec<Output> {
    if loaded.version == 0 || loaded.is_final() {
        return Vec::new();
    }
    let deadline = loaded.deadline_ms();
    if now < deadline.saturating_add(SWEEP_GRACE_MS) {
        return Vec::new();
    }
    let timeout_ms = deadline - loaded.submitted_at_ms;
    let reason = format!(
        "the task's deadline ({timeout_ms} ms after submission) passed while it was {}",
        loaded.state.status
    );
    vec![("deadline".into(), TaskEvent::Failed(TaskFailed { code: FailureCode::DeadlineExceeded, reason }))]
}

/// Fails `task`'s task if [`decide`] says so; returns whether this call wrote the failure.
pub(crate) async fn sweep_task(ctx: &Ctx, task_id: events::TaskId) -> crate::Result<bool> {
    for _ in 0..crate::phase::CONFLICT_RETRY_COUNT_MAX {
        let loaded = load_task_cached(ctx, task_id).await?;
        let outputs = decide(&loaded, ctx.clock.now_ms());
        if outputs.is_empty() {
            return Ok(false);
        }
        let Some(submitted) = loaded.correlation_id else { return Ok(false) };
        let metadata = Metadata {
            occurred_at_ms: ctx.clock.now_ms(),
            causation_id: Some(submitted),
            correlation_id: Some(submitted),
            emitter: SWEEPER.into(),
            traceparent: None,
        };
        match append_with(ctx, &loaded, EventId::derived(submitted, SWEEPER), metadata, outputs).await? {
            Appended::Written => {
                tracing::warn!(%task_id, status = %loaded.state.status, "the sweeper failed a task past its deadline");
                return Ok(true);
            }
            Appended::Duplicate | Appended::Illegal => return Ok(false),
            Appended::Conflict => {}
        }
    }
    Ok(false)
}

/// Sweeps every [`SWEEP_INTERVAL_MS`] until shutdown.
pub(crate) fn spawn(ctx: Arc<Ctx>, reader: TaskReader) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut after: Option<TaskCursor> = None;
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(SWEEP_INTERVAL_MS)) => {}
            }
            let now = ctx.clock.now_ms();
            // Only tasks whose deadline may have passed: none is shorter than a millisecond,
            // and the grace is due first.
            let page = match reader.unfinished(after.as_ref(), now - SWEEP_GRACE_MS, SWEEP_PAGE_COUNT).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "the sweeper cannot read the task view; trying again");
                    continue;
                }
            };
            after =
                if page.len() < SWEEP_PAGE_COUNT as usize { None } else { page.last().map(TaskCursor::of) };
            for task in page {
                let Ok(task_id) = task.task_id.parse::<events::TaskId>() else { continue };
                if let Err(error) = sweep_task(&ctx, task_id).await {
                    tracing::warn!(%task_id, %error, "the sweeper could not look at a task");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use events::TaskSpec;
    use events::task::TaskStatus;

    use super::*;
    use crate::phase::tests::loaded_after;

    fn given(timeout_ms: u64) -> Loaded {
        let mut spec = TaskSpec::new("echo", "say hi");
        spec.timeout_ms = timeout_ms;
        // Submitted at 1,000 ms.
        loaded_after(events::TaskId::new(), spec, &events::KeyPair::generate(), Vec::new())
    }

    #[test]
    fn a_task_within_its_deadline_and_grace_is_left_alone() {
        let task = given(5_000);
        assert!(decide(&task, 1_000).is_empty());
        assert!(decide(&task, 6_000).is_empty(), "at the deadline, the phases have the grace");
        assert!(decide(&task, 6_000 + SWEEP_GRACE_MS - 1).is_empty());
    }

    #[test]
    fn a_task_past_its_deadline_and_grace_fails_with_the_reason() {
        let task = given(5_000);
        let outputs = decide(&task, 6_000 + SWEEP_GRACE_MS);
        let [(purpose, TaskEvent::Failed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(purpose, "deadline");
        assert_eq!(failed.code, FailureCode::DeadlineExceeded);
        assert!(failed.reason.contains("5000 ms"), "{}", failed.reason);
        assert!(failed.reason.contains("context_ready"), "names the status: {}", failed.reason);
    }

    #[test]
    fn a_finished_task_is_never_swept() {
        let mut task = given(5_000);
        task.state.status = TaskStatus::Completed;
        assert!(decide(&task, i64::MAX).is_empty());
    }
}
