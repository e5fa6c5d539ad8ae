//! Pull workers over NATS: the same work as `POST /agents/{id}/work` and its siblings, for a
//! worker that connects out to the federation's NATS server instead of its gateway (behind
//! NAT, no address, no HTTP). Every process that runs the pipeline on NATS serves these
//! subjects in one queue group (`pantheon-work`), so each call reaches one process; a poll
//! that finds nothing there asks the others, and a result reaches the process that holds the
//! lease, through the [`PullBoard`] as for HTTP workers.
//!
//! | subject | request | reply |
//! |---|---|---|
//! | `pantheon.work.<agent>.poll` | `{"wait_ms"?, "lease_ms"?}` (or empty) | `{"work": {"task_id", "attempt", "envelope", "lease_ms"}}`, or `{"work": null}` when nothing came within the wait |
//! | `pantheon.work.<agent>.result.<task>` | the `SignedResult` | `{"accepted": true}` |
//! | `pantheon.work.<agent>.progress.<task>` | `{"percent"?, "message"?}` | `{"accepted": true}` |
//! | `pantheon.work.<agent>.fail.<task>` | `{"reason"?}` | `{"accepted": true}` |
//! | `pantheon.work.<agent>.heartbeat` | anything (a reply subject optional) | `{"accepted": true}` |
//!
//! A call that cannot be taken is answered `{"error": "<why>", "code": "invalid" |
//! "work_conflict"}`: `invalid` for a body or subject that does not parse or a value out of
//! range (naming the field), `work_conflict` for a lease the worker does not hold. The
//! worker's request should wait a little longer than its `wait_ms`.
//!
//! **Who may call.** NATS has no bearer tokens: a worker's identity on NATS is its NATS
//! user. Grant each worker publish on `pantheon.work.<its id>.>` only (and subscribe on its
//! inbox), as the federation's other subjects are granted to its processes. A result is
//! verified as any other — a worker that takes another's work cannot sign its results — so
//! what the permission guards is the work being taken, not its outcome.

use std::sync::Arc;
use std::time::Duration;

use events::{AgentId, SignedResult, TaskId};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::pull::{LEASE_MS_DEFAULT, LEASE_MS_MAX, LEASE_MS_MIN, POLL_WAIT_MS_MAX, PullBoard};

/// The subjects' prefix.
pub const SUBJECT_WORK: &str = "pantheon.work";

/// The queue group the federation's processes serve the workers' subjects in.
pub const WORK_QUEUE_GROUP: &str = "pantheon-work";

/// A poll's wait when it names none, ms.
pub const POLL_WAIT_MS_DEFAULT: u64 = 25_000;

/// The longest progress message or failure reason, bytes.
pub const MESSAGE_BYTES_MAX: usize = 4_096;

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Poll {
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    lease_ms: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgressBody {
    #[serde(default)]
    percent: Option<u8>,
    #[serde(default)]
    message: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    #[serde(default)]
    reason: String,
}

/// A worker's call, parsed from its subject.
#[derive(Debug, PartialEq, Eq)]
enum Call {
    Poll(AgentId),
    Heartbeat(AgentId),
    Result(AgentId, TaskId),
    Progress(AgentId, TaskId),
    Fail(AgentId, TaskId),
}

fn invalid(message: impl Into<String>) -> Value {
    json!({ "error": message.into(), "code": "invalid" })
}

/// The call a subject names, or why it names none.
fn parse(subject: &str) -> Result<Call, String> {
    let rest = subject
        .strip_prefix(SUBJECT_WORK)
        .and_then(|r| r.strip_prefix('.'))
        .ok_or_else(|| format!("{subject:?} is not under {SUBJECT_WORK}"))?;
    let parts: Vec<&str> = rest.split('.').collect();
    let agent = |text: &str| AgentId::new(text).map_err(|e| format!("the subject's agent: {e}"));
    let task = |text: &str| {
        text.parse::<TaskId>().map_err(|_| format!("the subject's task id {text:?} is not a task id"))
    };
    match parts.as_slice() {
        [a, "poll"] => Ok(Call::Poll(agent(a)?)),
        [a, "heartbeat"] => Ok(Call::Heartbeat(agent(a)?)),
        [a, "result", t] => Ok(Call::Result(agent(a)?, task(t)?)),
        [a, "progress", t] => Ok(Call::Progress(agent(a)?, task(t)?)),
        [a, "fail", t] => Ok(Call::Fail(agent(a)?, task(t)?)),
        _ => Err(format!(
            "{subject:?} names no call: poll, heartbeat, result.<task>, progress.<task> or fail.<task> after {SUBJECT_WORK}.<agent>"
        )),
    }
}

/// A JSON body, an empty payload read as the default.
fn body<T: Default + serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, Value> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(payload).map_err(|e| invalid(format!("the body: {e}")))
}

fn accepted(done: Result<(), crate::pull::PullError>) -> Value {
    match done {
        Ok(()) => json!({ "accepted": true }),
        Err(reason) => json!({ "error": reason.to_string(), "code": "work_conflict" }),
    }
}

/// Answers one call.
async fn answer(board: &PullBoard, subject: &str, payload: &[u8]) -> Value {
    let call = match parse(subject) {
        Ok(call) => call,
        Err(reason) => return invalid(reason),
    };
    match call {
        Call::Poll(agent) => {
            let poll: Poll = match body(payload) {
                Ok(poll) => poll,
                Err(error) => return error,
            };
            let wait = poll.wait_ms.unwrap_or(POLL_WAIT_MS_DEFAULT);
            if wait > POLL_WAIT_MS_MAX {
                return invalid(format!("wait_ms: at most {POLL_WAIT_MS_MAX}"));
            }
            let lease = poll.lease_ms.unwrap_or(LEASE_MS_DEFAULT);
            if !(LEASE_MS_MIN..=LEASE_MS_MAX).contains(&lease) {
                return invalid(format!("lease_ms: {LEASE_MS_MIN} to {LEASE_MS_MAX}"));
            }
            match board.take(&agent, Duration::from_millis(wait), Duration::from_millis(lease)).await {
                Some(claim) => json!({ "work": {
                    "task_id": claim.task_id,
                    "attempt": claim.attempt,
                    "envelope": claim.envelope,
                    "lease_ms": claim.lease_ms,
                }}),
                None => json!({ "work": null }),
            }
        }
        Call::Heartbeat(agent) => {
            board.heartbeat(&agent).await;
            json!({ "accepted": true })
        }
        Call::Result(agent, task_id) => match serde_json::from_slice::<SignedResult>(payload) {
            Ok(result) => accepted(board.complete(&agent, task_id, result).await),
            Err(e) => invalid(format!("the body is not a signed result: {e}")),
        },
        Call::Progress(agent, task_id) => {
            let progress: ProgressBody = match body(payload) {
                Ok(progress) => progress,
                Err(error) => return error,
            };
            if progress.percent.is_some_and(|p| p > 100) {
                return invalid("percent: 0 to 100");
            }
            if progress.message.len() > MESSAGE_BYTES_MAX {
                return invalid(format!("message: at most {MESSAGE_BYTES_MAX} bytes"));
            }
            accepted(board.progress(&agent, task_id, progress.percent, progress.message).await)
        }
        Call::Fail(agent, task_id) => {
            let fail: FailBody = match body(payload) {
                Ok(fail) => fail,
                Err(error) => return error,
            };
            if fail.reason.len() > MESSAGE_BYTES_MAX {
                return invalid(format!("reason: at most {MESSAGE_BYTES_MAX} bytes"));
            }
            let reason = if fail.reason.is_empty() {
                "the worker gave the attempt up".to_string()
            } else {
                fail.reason
            };
            accepted(board.fail(&agent, task_id, reason).await)
        }
    }
}

/// Serves the workers' subjects until `shutdown`; each call is answered on its own task, so
/// a long poll holds nothing else up.
pub(crate) async fn serve(
    board: Arc<PullBoard>,
    nats: async_nats::Client,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut calls = match nats.queue_subscribe(format!("{SUBJECT_WORK}.>"), WORK_QUEUE_GROUP.into()).await {
        Ok(calls) => calls,
        Err(error) => {
            tracing::warn!(%error, "pull workers over NATS are not served");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => break,
            message = calls.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        // A heartbeat may be published without a reply subject; a poll without one would
        // lease work nobody receives.
        let reply = message.reply.clone();
        if reply.is_none() && !message.subject.ends_with(".heartbeat") {
            continue;
        }
        let (board, nats) = (Arc::clone(&board), nats.clone());
        tokio::spawn(async move {
            let answer = answer(&board, &message.subject, &message.payload).await;
            let Some(reply) = reply else { return };
            match serde_json::to_vec(&answer) {
                Ok(bytes) => {
                    if let Err(error) = nats.publish(reply, bytes.into()).await {
                        tracing::warn!(%error, "a pull worker's call was not answered");
                    }
                }
                Err(error) => tracing::warn!(%error, "a pull worker's answer did not encode"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_their_calls_and_bad_ones_say_why() {
        let task = TaskId::new();
        let agent = AgentId::new("puller").unwrap();
        assert_eq!(parse("pantheon.work.puller.poll"), Ok(Call::Poll(agent.clone())));
        assert_eq!(parse("pantheon.work.puller.heartbeat"), Ok(Call::Heartbeat(agent.clone())));
        assert_eq!(
            parse(&format!("pantheon.work.puller.result.{task}")),
            Ok(Call::Result(agent.clone(), task))
        );
        assert_eq!(parse(&format!("pantheon.work.puller.fail.{task}")), Ok(Call::Fail(agent.clone(), task)));
        assert_eq!(parse(&format!("pantheon.work.puller.progress.{task}")), Ok(Call::Progress(agent, task)));
        assert!(parse("pantheon.work.Puller.poll").unwrap_err().contains("agent"));
        assert!(parse("pantheon.work.puller.result.nope").unwrap_err().contains("task id"));
        assert!(parse("pantheon.work.puller.dance").unwrap_err().contains("names no call"));
    }

    #[tokio::test]
    async fn bad_bodies_and_out_of_range_values_name_the_field() {
        let board = PullBoard::new(None, None);
        let task = TaskId::new();
        let poll = answer(&board, "pantheon.work.puller.poll", br#"{"wait_ms": 600000}"#).await;
        assert_eq!(poll["code"], "invalid");
        assert!(poll["error"].as_str().unwrap().contains("wait_ms"), "{poll}");
        let lease = answer(&board, "pantheon.work.puller.poll", br#"{"lease_ms": 10}"#).await;
        assert!(lease["error"].as_str().unwrap().contains("lease_ms"), "{lease}");
        let unknown = answer(&board, "pantheon.work.puller.poll", br#"{"wait": 1}"#).await;
        assert!(unknown["error"].as_str().unwrap().contains("unknown field"), "{unknown}");
        let idle = answer(&board, "pantheon.work.puller.poll", br#"{"wait_ms": 0}"#).await;
        assert_eq!(idle, json!({ "work": null }));
        let result = answer(&board, &format!("pantheon.work.puller.result.{task}"), b"{}").await;
        assert!(result["error"].as_str().unwrap().contains("signed result"), "{result}");
        let percent =
            answer(&board, &format!("pantheon.work.puller.progress.{task}"), br#"{"percent": 101}"#).await;
        assert!(percent["error"].as_str().unwrap().contains("percent"), "{percent}");
        let unleased = answer(&board, &format!("pantheon.work.puller.fail.{task}"), b"").await;
        assert_eq!(unleased["code"], "work_conflict", "{unleased}");
    }
}
