//! Admitting a task: check the request, sign it with the gateway's key, append the
//! `TaskSubmitted` event — once per idempotency key.
//!
//! # Idempotency without a table
//! A task submitted with an `Idempotency-Key` gets an id derived from the principal and the
//! key, and its stream is created with `ExpectedVersion::NoStream`. A repeat therefore hits a
//! conflict on the same stream: when the stored spec equals the new one it is the original
//! task, otherwise the key was reused for another request (422). Nothing but the log holds it,
//! so it works across restarts and across gateway instances.

use std::collections::BTreeMap;

use events::task::Channel;
use events::{
    DomainEvent, ExpectedVersion, LogError, SignedSubmission, StreamId, TaskEvent, TaskId, TaskSpec,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::state::AppState;

/// The longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;

pub use events::task::{
    CAPABILITY_BYTES_MAX, LABEL_BYTES_MAX, LABEL_COUNT_MAX, TASK_ATTEMPTS_MAX, TASK_TIMEOUT_MS_MAX,
};

/// The longest webhook URL, in bytes.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2_048;

/// What a client asks the gateway to run.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// The capability needed, e.g. `echo` (1 to 128 characters).
    #[schemars(length(min = 1, max = 128))]
    pub capability: String,
    /// What to do, in words (not only white space).
    #[schemars(pattern(r"\S"))]
    pub description: String,
    /// Input data for the agent.
    #[serde(default)]
    pub input: serde_json::Value,
    /// How long the task may take, ms (default 30 000; at most one day). A synchronous execute
    /// waits this long at most.
    #[serde(default, deserialize_with = "integral")]
    #[schemars(range(min = 1, max = 86_400_000))]
    pub timeout_ms: Option<u64>,
    /// How many agents to try at most (default 3; at most 10).
    #[serde(default, deserialize_with = "integral")]
    #[schemars(range(min = 1, max = 10))]
    pub max_attempts: Option<u32>,
    /// Where to POST the outcome (Standard Webhooks), if anywhere: an `http` or `https` URL
    /// of at most 2,048 bytes.
    #[serde(default)]
    #[schemars(url, length(max = 2048))]
    pub webhook_url: Option<String>,
    /// Free-form labels: at most 32, keys of 1 to 256 characters, values of at most 256.
    #[serde(default)]
    #[schemars(length(max = 32), inner(length(max = 256)))]
    #[schemars(extend("propertyNames" = { "minLength": 1, "maxLength": 256 }))]
    pub labels: BTreeMap<String, String>,
}

/// An optional whole number that JSON may write as `300` or `300.0` (JSON Schema's `integer`
/// admits both); a fraction, a negative or an out-of-range number is refused.
fn integral<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else { return Ok(None) };
    let whole = match (number.as_u64(), number.as_f64()) {
        (Some(n), _) => Some(n),
        (None, Some(f)) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => Some(f as u64),
        _ => None,
    };
    whole
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number in range, not {number}")))
}

/// The answer to an admitted task.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SubmitResponse {
    /// The task's id.
    pub task_id: String,
    /// Where to read the task.
    pub location: String,
    /// False when an `Idempotency-Key` matched an earlier, identical submission.
    pub created: bool,
    /// The secret (`whsec_…`) the task's webhook deliveries are signed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// A task that has been admitted (or found again by its idempotency key).
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The task.
    pub task_id: TaskId,
    /// Whether this request created it.
    pub created: bool,
    /// Its timeout.
    pub timeout_ms: u64,
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidBody { field: Some(field.to_string()), message: message.into(), unknown_field: false }
}

/// Checks a request and turns it into the spec to sign.
fn spec_of(request: TaskRequest, principal: &Principal, idempotency_key: Option<String>) -> Result<TaskSpec> {
    let timeout_ms = request.timeout_ms.unwrap_or(events::task::TASK_TIMEOUT_MS_DEFAULT);
    let max_attempts = request.max_attempts.unwrap_or(events::task::TASK_ATTEMPTS_MAX_DEFAULT);
    let mut spec = TaskSpec::new(request.capability, request.description);
    spec.input = request.input;
    spec.timeout_ms = timeout_ms;
    spec.max_attempts = max_attempts;
    spec.submitter = principal.subject.clone();
    spec.idempotency_key = idempotency_key;
    spec.webhook_url = request.webhook_url;
    spec.labels = request.labels;
    // The limits every channel shares, decided once (`TaskSpec::check`).
    spec.check().map_err(|problem| invalid(problem.field, problem.message))?;
    Ok(spec)
}

/// Checks an `Idempotency-Key` header value.
pub fn check_idempotency_key(key: &str) -> Result<()> {
    let printable = key.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX || !printable {
        return Err(Error::InvalidParameter {
            what: "Idempotency-Key".into(),
            message: format!("must be 1 to {IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"),
        });
    }
    Ok(())
}

/// The task id an idempotency key stands for: the same principal and key always give the same id.
fn idempotent_task_id(subject: &str, key: &str) -> TaskId {
    let mut hasher = blake3::Hasher::new_derive_key("pantheon gateway idempotency key v1");
    hasher.update(&(subject.len() as u64).to_be_bytes());
    hasher.update(subject.as_bytes());
    hasher.update(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    TaskId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// Admits a task: appends the signed `TaskSubmitted`, or finds the original for a repeated key.
pub async fn admit(
    state: &AppState,
    principal: &Principal,
    request: TaskRequest,
    idempotency_key: Option<String>,
) -> Result<Admitted> {
    if let Some(key) = &idempotency_key {
        check_idempotency_key(key)?;
    }
    if let Some(url) = &request.webhook_url {
        if url.len() > WEBHOOK_URL_BYTES_MAX {
            return Err(invalid("webhook_url", format!("at most {WEBHOOK_URL_BYTES_MAX} bytes")));
        }
        state.targets.check(url).await?;
    }
    let mut spec = spec_of(request, principal, idempotency_key.clone())?;
    // Secrets and personal data are redacted before the spec is signed and logged: the log is
    // append-only, so nothing the policy redacts may reach it. Ingress screens what remains.
    security::scrub_submission(&mut spec.description, &mut spec.input, &mut spec.labels);
    let timeout_ms = spec.timeout_ms;
    let task_id = match &idempotency_key {
        Some(key) => idempotent_task_id(&principal.subject, key),
        None => TaskId::new(),
    };
    let signed = SignedSubmission::sign(task_id, spec, &state.config.signing_key)?;
    let submitted_spec = signed.spec.clone();
    let mut new_event = events::commands::submit(signed, Channel::Gateway, "gateway", events::now_ms())?;
    // The request's span, when a trace is recorded: the root (or the caller's child) of the
    // task's trace.
    new_event.metadata.traceparent = events::trace::current_traceparent();
    let stream = StreamId::task(task_id);
    match state.log.append(&stream, ExpectedVersion::NoStream, vec![new_event]).await {
        Ok(_) => {
            state.metrics.tasks_submitted.inc();
            Ok(Admitted { task_id, created: true, timeout_ms })
        }
        Err(LogError::Conflict { .. }) if idempotency_key.is_some() => {
            let first = state.log.read_stream(&stream, 1, 1).await?;
            let original = first
                .first()
                .map(TaskEvent::from_recorded)
                .transpose()?
                .and_then(|e| match e {
                    TaskEvent::Submitted(s) => Some(s.spec),
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::Internal(format!("stream {stream} does not start with a submission"))
                })?;
            if original == submitted_spec {
                Ok(Admitted { task_id, created: false, timeout_ms: original.timeout_ms })
            } else {
                Err(Error::IdempotencyKeyReused { task_id })
            }
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_ids_depend_on_principal_and_key() {
        let a = idempotent_task_id("alice", "k1");
        assert_eq!(a, idempotent_task_id("alice", "k1"));
        assert_ne!(a, idempotent_task_id("bob", "k1"));
        assert_ne!(a, idempotent_task_id("alice", "k2"));
        // No ambiguity between ("ab", "c") and ("a", "bc").
        assert_ne!(idempotent_task_id("ab", "c"), idempotent_task_id("a", "bc"));
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_idempotency_key("order-17").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"x".repeat(256)).is_err());
    }
}
