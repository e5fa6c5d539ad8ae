//! Submissions on NATS (phase 1's door for producers): producers publish, or request, a JSON
//! [`SignedSubmission`] on the submission subject (default `pantheon-submit`, see
//! [`crate::config::NatsConfig`]). Every Pantheon process listens in one queue group, so each
//! submission is taken once.
//!
//! A well-formed submission becomes `task_submitted` (channel `nats`); the ingress phase then
//! verifies its signature against the registered producer keys and rejects it if it does not
//! verify. A malformed or unsigned one that names a task id becomes `task_submitted` +
//! `task_rejected` with the reason, so it is visible in `pantheon replay`; one without a usable
//! task id can only be answered. A request gets a JSON reply:
//! `{"task_id": "…", "accepted": true|false, "error": "…"}`.

use std::sync::Arc;

use events::task::{Channel, RejectionCode};
use events::{ExpectedVersion, LogError, SignedSubmission, StreamId, TaskId};
use futures::StreamExt;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::phase::Ctx;

/// The queue group every Pantheon process joins on the submission subject.
pub const SUBMIT_QUEUE_GROUP: &str = "pantheon";

/// The answer to a submission request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubmitAnswer {
    /// The task, when the submission named a usable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// Whether it was recorded as a submission (its signature is checked next, by ingress).
    pub accepted: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub(crate) async fn listen(
    ctx: Arc<Ctx>,
    client: async_nats::Client,
    subject: String,
) -> Result<tokio::task::JoinHandle<()>> {
    let mut subscriber = client
        .queue_subscribe(subject.clone(), SUBMIT_QUEUE_GROUP.into())
        .await
        .map_err(|e| Error::Nats(Box::new(e)))?;
    Ok(tokio::spawn(async move {
        loop {
            let message = tokio::select! {
                () = ctx.draining.cancelled() => break,
                message = subscriber.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            // A producer that traces sends its span as a `traceparent` header.
            let span = tracing::info_span!("nats submit", otel.name = "nats submit");
            let traceparent = message.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.as_str());
            events::trace::continue_trace(&span, traceparent);
            let answer = tracing::Instrument::instrument(accept(&ctx, &message.payload), span).await;
            if let Some(reply) = message.reply {
                let body = serde_json::to_vec(&answer).unwrap_or_default();
                if let Err(error) = client.publish(reply, body.into()).await {
                    tracing::warn!(%error, "cannot answer a submission");
                }
            }
        }
        let _ = subscriber.unsubscribe().await;
    }))
}

/// Records one submission's payload.
pub(crate) async fn accept(ctx: &Ctx, payload: &[u8]) -> SubmitAnswer {
    match serde_json::from_slice::<SignedSubmission>(payload) {
        Ok(mut submission) => {
            let task_id = submission.task_id;
            // Secrets must not reach the log. A producer's signature covers the text as sent,
            // so when scrubbing changes a submission whose signature verifies, the federation
            // re-signs the scrubbed spec and records which producer key it vouches for. One that
            // does not verify keeps its signature and is rejected by ingress as before.
            let verified = submission.verify(&ctx.trusted_submitters).is_ok();
            if crate::client::scrub_spec(&mut submission.spec) && verified {
                submission.spec.labels.insert("producer_key".into(), submission.signed_by.key_id());
                match SignedSubmission::sign(task_id, submission.spec.clone(), &ctx.federation) {
                    Ok(resigned) => submission = resigned,
                    Err(error) => {
                        return SubmitAnswer {
                            task_id: Some(task_id),
                            accepted: false,
                            error: Some(error.to_string()),
                        };
                    }
                }
            }
            match crate::client::submit_signed(ctx.log.as_ref(), submission, Channel::Nats, "nats").await {
                Ok(_) => SubmitAnswer { task_id: Some(task_id), accepted: true, error: None },
                Err(Error::Log(LogError::Conflict { .. })) => SubmitAnswer {
                    task_id: Some(task_id),
                    accepted: false,
                    error: Some("a task with this id exists already".into()),
                },
                Err(error) => {
                    SubmitAnswer { task_id: Some(task_id), accepted: false, error: Some(error.to_string()) }
                }
            }
        }
        Err(parse_error) => {
            let value: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
            let task_id = value
                .as_ref()
                .and_then(|v| v.get("task_id"))
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<TaskId>().ok());
            let unsigned =
                value.as_ref().is_some_and(|v| v.get("signature").is_none() || v.get("signed_by").is_none());
            // The parse error may quote the submission (`invalid type: string "…"`): recorded
            // and answered with secrets and personal data redacted.
            let parse_error = parse_error.to_string();
            let parse_error = security::scrub(&parse_error).unwrap_or(parse_error);
            let (code, reason) = if unsigned && value.as_ref().is_some_and(|v| v.get("spec").is_some()) {
                (
                    RejectionCode::Unauthenticated,
                    "the submission is not signed: producers sign submissions with a registered key"
                        .to_string(),
                )
            } else {
                (
                    RejectionCode::InvalidSubmission,
                    format!("the submission is not a valid signed submission: {parse_error}"),
                )
            };
            let Some(task_id) = task_id else {
                return SubmitAnswer { task_id: None, accepted: false, error: Some(reason) };
            };
            match record_refusal(ctx, task_id, code, &reason).await {
                Ok(()) => SubmitAnswer { task_id: Some(task_id), accepted: false, error: Some(reason) },
                Err(error) => {
                    SubmitAnswer { task_id: Some(task_id), accepted: false, error: Some(error.to_string()) }
                }
            }
        }
    }
}

/// Records a refused submission ([`events::commands::refuse_submission`]).
async fn record_refusal(ctx: &Ctx, task_id: TaskId, code: RejectionCode, reason: &str) -> Result<()> {
    let batch = events::commands::refuse_submission(
        task_id,
        Channel::Nats,
        code,
        reason,
        "nats",
        ctx.clock.now_ms(),
    )?;
    ctx.log.append(&StreamId::task(task_id), ExpectedVersion::NoStream, batch).await?;
    Ok(())
}
