//! The write side, decided once: the events a command makes, for every caller — the gateway,
//! the command line, NATS producers and the agent SDKs alike. Pure: the caller reads the task,
//! decides here with the time it is given, appends expecting the version it read and, after a
//! conflict, reads and decides again.
//!
//! What a command carries is scrubbed by the caller before it decides (the vocabulary knows no
//! screening policy): `security::scrub_submission` for a submission, `security::scrub` for a
//! reason.

use crate::crypto::{PublicKey, Signature};
use crate::envelope::SignedSubmission;
use crate::error::Result;
use crate::event::{Metadata, NewEvent};
use crate::id::EventId;
use crate::task::{
    Channel, RejectionCode, TaskCancelled, TaskEvent, TaskRejected, TaskSpec, TaskState, TaskStatus,
    TaskSubmitted, WebhookRedeliveryRequested,
};
use crate::{DomainEvent, TaskId, Version};

/// The first event of a new task: `task_submitted` for a signed submission, arriving by
/// `channel`, written by `emitter` at `now_ms`. Its own id is the correlation id of every
/// later event of the task.
pub fn submit(
    submission: SignedSubmission,
    channel: Channel,
    emitter: &str,
    now_ms: i64,
) -> Result<NewEvent> {
    let event = TaskEvent::Submitted(TaskSubmitted {
        task_id: submission.task_id,
        spec: submission.spec,
        channel,
        signed_by: submission.signed_by,
        signature: submission.signature,
    });
    let id = EventId::new();
    let metadata = Metadata {
        occurred_at_ms: now_ms,
        causation_id: None,
        correlation_id: Some(id),
        emitter: emitter.to_string(),
        traceparent: None,
    };
    event.to_new_event(id, metadata)
}

/// A submission refused before it could be signed or read (unsigned, malformed, too large):
/// recorded all the same, as a task whose `task_submitted` holds what could be read (an empty
/// spec, no signature) followed by `task_rejected` with `code` and `reason`, one append, so
/// that the refusal is in the history with its reason. `reason` is scrubbed by the caller.
pub fn refuse_submission(
    task_id: TaskId,
    channel: Channel,
    code: RejectionCode,
    reason: &str,
    emitter: &str,
    now_ms: i64,
) -> Result<Vec<NewEvent>> {
    let submitted = TaskEvent::Submitted(TaskSubmitted {
        task_id,
        spec: TaskSpec::new("", ""),
        channel,
        signed_by: PublicKey([0; 32]),
        signature: Signature([0; 64]),
    });
    let rejected =
        TaskEvent::Rejected(TaskRejected { code, reason: reason.to_string(), findings: Vec::new() });
    let first = EventId::new();
    let metadata = Metadata {
        occurred_at_ms: now_ms,
        causation_id: None,
        correlation_id: Some(first),
        emitter: emitter.to_string(),
        traceparent: None,
    };
    let caused = Metadata { causation_id: Some(first), ..metadata.clone() };
    Ok(vec![
        submitted.to_new_event(first, metadata)?,
        rejected.to_new_event(EventId::derived(first, "rejected"), caused)?,
    ])
}

/// Why a cancel makes no event.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// The stream holds no task.
    #[error("no such task")]
    NotFound,
    /// The task has ended: nothing is left to cancel.
    #[error("the task has ended ({0})")]
    Ended(TaskStatus),
    /// The event could not be made (an emitter the log refuses).
    #[error(transparent)]
    Event(#[from] crate::Error),
}

/// A cancel of the task folded as `state` at `version` (whose first event's id is
/// `correlation_id`), asked by `by` for `reason` and written by `emitter` at `now_ms`: its
/// `task_cancelled`, correlated with the task's other events, or why there is none.
pub fn cancel(
    state: &TaskState,
    version: Version,
    correlation_id: Option<EventId>,
    by: &str,
    reason: &str,
    emitter: &str,
    now_ms: i64,
) -> std::result::Result<NewEvent, CancelError> {
    if version == 0 {
        return Err(CancelError::NotFound);
    }
    if state.status.is_final() {
        return Err(CancelError::Ended(state.status));
    }
    let event = TaskEvent::Cancelled(TaskCancelled { by: by.to_string(), reason: reason.to_string() });
    let metadata = Metadata {
        occurred_at_ms: now_ms,
        causation_id: None,
        correlation_id,
        emitter: emitter.to_string(),
        traceparent: None,
    };
    Ok(event.to_new_event(EventId::new(), metadata)?)
}

/// Why a webhook is not delivered again.
#[derive(Debug, thiserror::Error)]
pub enum RedeliverError {
    /// No such task.
    #[error("no such task")]
    NotFound,
    /// The task asked for no webhook.
    #[error("the task asked for no webhook")]
    NoWebhook,
    /// Its webhook is not dead-lettered (still being delivered, delivered, redelivery under way).
    #[error(
        "the task's webhook is not dead-lettered (delivered, still being attempted, or already asked for again)"
    )]
    NotDead,
    /// The event could not be encoded.
    #[error(transparent)]
    Event(#[from] crate::Error),
}

/// A redelivery of the dead-lettered webhook of the task folded as `state` at `version`
/// (correlated by `correlation_id`), asked by `by` and written by `emitter` at `now_ms`: its
/// `webhook_redelivery_requested`, or why there is none. The caller appends it expecting
/// `version`, so two requests make one redelivery.
pub fn redeliver_webhook(
    state: &TaskState,
    version: Version,
    correlation_id: Option<EventId>,
    by: &str,
    emitter: &str,
    now_ms: i64,
) -> std::result::Result<NewEvent, RedeliverError> {
    if version == 0 {
        return Err(RedeliverError::NotFound);
    }
    if state.spec().and_then(|s| s.webhook_url.as_ref()).is_none() {
        return Err(RedeliverError::NoWebhook);
    }
    let Some(webhook_id) = state.webhook_dead.clone() else { return Err(RedeliverError::NotDead) };
    let event =
        TaskEvent::WebhookRedeliveryRequested(WebhookRedeliveryRequested { webhook_id, by: by.to_string() });
    let metadata = Metadata {
        occurred_at_ms: now_ms,
        causation_id: None,
        correlation_id,
        emitter: emitter.to_string(),
        traceparent: None,
    };
    Ok(event.to_new_event(EventId::new(), metadata)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;
    use crate::state::Aggregate;

    #[test]
    fn a_submission_is_its_tasks_first_event_and_correlates_it() {
        let submission =
            SignedSubmission::sign(TaskId::new(), TaskSpec::new("echo", "hi"), &KeyPair::generate())
                .expect("signed");
        let task_id = submission.task_id;
        let event = submit(submission, Channel::Gateway, "gateway", 1_234).expect("an event");
        assert_eq!(event.event_type.as_str(), "task_submitted");
        assert_eq!(event.metadata.correlation_id, Some(event.id));
        assert_eq!((event.metadata.occurred_at_ms, event.metadata.emitter.as_str()), (1_234, "gateway"));
        let TaskEvent::Submitted(submitted) =
            TaskEvent::from_payload(&event.event_type, event.schema_version, &event.payload)
                .expect("decodes")
        else {
            panic!("not a submission")
        };
        assert_eq!((submitted.task_id, submitted.channel), (task_id, Channel::Gateway));
    }

    #[test]
    fn a_cancel_needs_a_task_that_has_not_ended() {
        let none = TaskState::default();
        assert!(matches!(cancel(&none, 0, None, "a new user", "", "gateway", 1), Err(CancelError::NotFound)));
        let key = KeyPair::generate();
        let submission =
            SignedSubmission::sign(TaskId::new(), TaskSpec::new("echo", "hi"), &key).expect("signed");
        let first = submit(submission, Channel::Local, "cli", 1).expect("an event");
        let mut state = TaskState::default();
        let submitted = TaskEvent::from_payload(&first.event_type, 2, &first.payload).expect("decodes");
        state.apply(&submitted).expect("legal");
        let cancelled =
            cancel(&state, 1, Some(first.id), "a new user", "not needed", "gateway", 5).expect("a cancel");
        assert_eq!(cancelled.metadata.correlation_id, Some(first.id));
        assert_eq!(cancelled.metadata.emitter, "gateway");
        let event = TaskEvent::from_payload(&cancelled.event_type, 1, &cancelled.payload).expect("decodes");
        state.apply(&event).expect("legal");
        assert!(matches!(
            cancel(&state, 2, Some(first.id), "a new user", "again", "gateway", 6),
            Err(CancelError::Ended(TaskStatus::Cancelled))
        ));
    }

    #[test]
    fn a_refused_submission_is_recorded_as_a_rejected_task() {
        let task_id = TaskId::new();
        let batch = refuse_submission(
            task_id,
            Channel::Nats,
            RejectionCode::InvalidSubmission,
            "too large",
            "nats",
            7,
        )
        .expect("events");
        let mut state = TaskState::default();
        for event in &batch {
            let decoded = TaskEvent::from_payload(&event.event_type, event.schema_version, &event.payload)
                .expect("decodes");
            state.apply(&decoded).expect("legal");
            assert_eq!(event.metadata.correlation_id, Some(batch[0].id));
        }
        assert_eq!(state.status, TaskStatus::Rejected);
        assert_eq!(batch[1].metadata.causation_id, Some(batch[0].id));
    }

    #[test]
    fn only_a_dead_lettered_webhook_is_delivered_again_and_once() {
        use crate::task::{WebhookAttempted, WebhookDeadLettered};
        let none = TaskState::default();
        assert!(matches!(
            redeliver_webhook(&none, 0, None, "ops", "gateway", 1),
            Err(RedeliverError::NotFound)
        ));
        let key = KeyPair::generate();
        let mut spec = TaskSpec::new("echo", "hi");
        spec.webhook_url = Some("https://hooks.example/t".into());
        let first = submit(
            SignedSubmission::sign(TaskId::new(), spec, &key).expect("signed"),
            Channel::Local,
            "cli",
            1,
        )
        .expect("an event");
        let mut state = TaskState::default();
        let apply = |state: &mut TaskState, event: TaskEvent| state.apply(&event).expect("legal");
        apply(&mut state, TaskEvent::from_payload(&first.event_type, 2, &first.payload).expect("decodes"));
        apply(
            &mut state,
            TaskEvent::Cancelled(TaskCancelled { by: "a new user".into(), reason: String::new() }),
        );
        // Still being attempted: nothing to deliver again.
        let attempt = |n| {
            TaskEvent::WebhookAttempted(WebhookAttempted {
                webhook_id: "w1".into(),
                attempt: n,
                status: Some(500),
                delivered: false,
                error: Some("the target answered 500".into()),
            })
        };
        apply(&mut state, attempt(1));
        assert!(matches!(
            redeliver_webhook(&state, 3, None, "ops", "gateway", 2),
            Err(RedeliverError::NotDead)
        ));
        apply(
            &mut state,
            TaskEvent::WebhookDeadLettered(WebhookDeadLettered {
                webhook_id: "w1".into(),
                reason: "gave up".into(),
            }),
        );
        let asked = redeliver_webhook(&state, 4, Some(first.id), "ops", "gateway", 3).expect("a redelivery");
        let TaskEvent::WebhookRedeliveryRequested(request) =
            TaskEvent::from_payload(&asked.event_type, 1, &asked.payload).expect("decodes")
        else {
            panic!("not a redelivery request")
        };
        assert_eq!((request.webhook_id.as_str(), request.by.as_str()), ("w1", "ops"));
        apply(&mut state, TaskEvent::WebhookRedeliveryRequested(request.clone()));
        // Asked once: a second request is refused until the new round is dead-lettered too.
        assert!(matches!(
            redeliver_webhook(&state, 5, None, "ops", "gateway", 4),
            Err(RedeliverError::NotDead)
        ));
        assert!(state.apply(&TaskEvent::WebhookRedeliveryRequested(request)).is_err());
    }
}
