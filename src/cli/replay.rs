//! `pantheon replay <task>`: a task's timeline — every event with the time since submission,
//! its type, who emitted it, a summary, and for signed material (submission, envelope, result)
//! whether the signature verifies now. `--at N` prints the task's state folded up to version N.
//! The id of a workflow run replays the run: its events (each with the time since the start
//! and a summary), or with `--at N` the run's state and step table at version N.

use std::collections::HashMap;

use std::io::Write;

use anyhow::{Context as _, bail};
use clap::Args;
use events::agent::AgentEvent;
use events::task::TaskEvent;
use events::{
    AgentId, AgentState, Aggregate, DomainEvent, EventLog, KeyPair, PublicKey, RecordedEvent,
    SignedSubmission, StreamId, TaskId, TaskState,
};

use super::events::to_json;
use super::up::{BackendArgs, federation_key, load_config, open_backend};
use crate::Cli;

#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The task id, or a workflow run's.
    pub(crate) task: TaskId,
    /// Print the state folded up to this version instead of the timeline.
    #[arg(long)]
    pub(crate) at: Option<u64>,
    /// Print JSON lines (one per event, with `since_submit_ms` and `verification`).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

async fn agent_state(
    log: &dyn EventLog,
    agent: &AgentId,
    cache: &mut HashMap<AgentId, AgentState>,
) -> AgentState {
    if let Some(state) = cache.get(agent) {
        return state.clone();
    }
    let mut state = AgentState::default();
    if let Ok(events) = log.read_stream(&StreamId::agent(agent), 1, 10_000).await {
        for event in &events {
            if let Ok(decoded) = AgentEvent::from_recorded(event) {
                let _ = state.apply(&decoded);
            }
        }
    }
    cache.insert(agent.clone(), state.clone());
    state
}

/// What one event says, in a line, and the verification of its signed material.
fn summary(event: &TaskEvent) -> String {
    match event {
        TaskEvent::Submitted(e) => {
            format!("{:?} {:?} via {:?}", e.spec.capability, e.spec.description, e.channel)
        }
        TaskEvent::IngressScreened(e) => format!(
            "{} finding(s){}",
            e.findings.len(),
            if e.redacted_description.is_some() { ", redacted" } else { "" }
        ),
        TaskEvent::Rejected(e) => format!("{:?}: {}", e.code, e.reason),
        TaskEvent::ContextGathered(e) => {
            let mut text = format!(
                "{} similar task(s), {} practice(s), {} pitfall(s), complexity {}",
                e.similar_tasks.len(),
                e.best_practices.len(),
                e.pitfalls.len(),
                e.complexity
            );
            for source in &e.sources {
                match (&source.error, source.ok) {
                    (Some(error), true) => text.push_str(&format!("; {}: {error}", source.name)),
                    (Some(error), false) => text.push_str(&format!("; {} failed: {error}", source.name)),
                    (None, false) => text.push_str(&format!("; {} failed", source.name)),
                    (None, true) => {}
                }
            }
            text
        }
        TaskEvent::AgentSelected(e) => {
            let scores: Vec<String> =
                e.candidates.iter().map(|c| format!("{} {:.3}", c.agent_id, c.total)).collect();
            format!("{} for attempt {} (candidates: {})", e.agent_id, e.attempt, scores.join(", "))
        }
        TaskEvent::NoAgentAvailable(e) => {
            format!("{}; next try at +{} ms", e.reason, e.retry_at_ms - events::now_ms().min(e.retry_at_ms))
        }
        TaskEvent::EnvelopeSealed(e) => format!(
            "for {} attempt {}, hash {}",
            e.envelope.envelope.agent_id,
            e.envelope.envelope.attempt,
            &e.envelope.hash.to_string()[..16]
        ),
        TaskEvent::ExecutionStarted(e) => format!("{} attempt {}", e.agent_id, e.attempt),
        TaskEvent::ProgressReported(e) => {
            format!("{}{}", e.percent.map_or(String::new(), |p| format!("{p}% ")), e.message)
        }
        TaskEvent::ResultReceived(e) => {
            format!("from {}, hash {}", e.result.result.agent_id, &e.result.hash.to_string()[..16])
        }
        TaskEvent::ExecutionFailed(e) => {
            format!("{} attempt {} ({:?}): {}", e.agent_id, e.attempt, e.cause, e.reason)
        }
        TaskEvent::ExecutionTimedOut(e) => {
            format!("{} attempt {} after {} ms", e.agent_id, e.attempt, e.timeout_ms)
        }
        TaskEvent::RetryScheduled(e) => format!(
            "attempt {}{}",
            e.attempt,
            if e.exclude_agents.is_empty() {
                String::new()
            } else {
                format!(
                    ", excluding {}",
                    e.exclude_agents.iter().map(AgentId::as_str).collect::<Vec<_>>().join(", ")
                )
            }
        ),
        TaskEvent::ResultVerified(e) => format!("signature of {} verified", e.agent_id),
        TaskEvent::ResultStored(e) => format!("{} bytes", e.output_bytes),
        TaskEvent::EgressScreened(e) => format!(
            "{} finding(s){}",
            e.findings.len(),
            if e.redacted_output.is_some() { ", redacted" } else { "" }
        ),
        TaskEvent::Completed(e) => {
            let output = e.output.to_string();
            let short: String = output.chars().take(80).collect();
            format!("by {}: {short}{}", e.agent_id, if output.len() > short.len() { "…" } else { "" })
        }
        TaskEvent::Failed(e) => format!("{:?}: {}", e.code, e.reason),
        TaskEvent::Cancelled(e) => format!(
            "by {}{}",
            e.by,
            if e.reason.is_empty() { String::new() } else { format!(": {}", e.reason) }
        ),
        TaskEvent::WebhookAttempted(e) => format!("attempt {} delivered={}", e.attempt, e.delivered),
        TaskEvent::WebhookDeadLettered(e) => e.reason.clone(),
        TaskEvent::WebhookRedeliveryRequested(e) => {
            format!("webhook {} asked for again by {}", e.webhook_id, e.by)
        }
    }
}

/// The state of a task as JSON.
pub(crate) fn state_json(state: &TaskState) -> serde_json::Value {
    serde_json::json!({
        "version": state.version,
        "status": state.status,
        "task_id": state.task_id(),
        "capability": state.spec().map(|s| s.capability.clone()),
        "description": state.description,
        "attempt": state.attempt,
        "agent_id": state.agent_id,
        "excluded_agents": state.excluded_agents,
        "no_agent_count": state.no_agent_count,
        "envelope_hash": state.envelope.as_ref().map(|e| e.hash),
        "result_hash": state.result.as_ref().map(|r| r.hash),
        "progress": state.progress.as_ref().map(|p| &p.message),
        "last_failure": state.last_failure,
        "output": state.output,
        "end_reason": state.end_reason,
    })
}

pub(crate) async fn run(cli: &Cli, args: &ReplayArgs) -> anyhow::Result<()> {
    let backend = open_backend(cli, &args.backend).await?;
    let key = federation_key(cli)?;
    let config = load_config(cli, &args.backend)?;
    let mut trusted: Vec<PublicKey> = vec![key.public_key()];
    trusted.extend(config.producers.iter().map(|p| p.public_key));
    // The gateway of `pantheon up` signs what it admits with its own key, which the pipeline
    // trusts; a gateway elsewhere is a configured producer.
    let gateway_key = cli.data_dir.join("gateway.key");
    if gateway_key.exists() {
        let gateway =
            KeyPair::load(&gateway_key).with_context(|| format!("gateway key {}", gateway_key.display()))?;
        trusted.push(gateway.public_key());
    }
    let log = backend.log.as_ref();
    let mut out = std::io::stdout().lock();
    let (_, recorded) = actors::client::task_history(log, args.task).await?;
    if recorded.is_empty() {
        let run = events::WorkflowId(args.task.0);
        if log.stream_version(&StreamId::workflow(run)).await? > 0 {
            return replay_run(log, run, args.at, args.json).await;
        }
        bail!("no task or workflow run {} in {}", args.task, backend.description);
    }
    if let Some(at) = args.at {
        let last = recorded.len();
        if at == 0 || at > last as u64 {
            bail!("task {} has versions 1 to {last}; --at {at} is none of them", args.task);
        }
        let mut state = TaskState::default();
        for event in recorded.iter().take(usize::try_from(at).unwrap_or(usize::MAX)) {
            if let Ok(decoded) = TaskEvent::from_recorded(event) {
                let _ = state.apply(&decoded);
            }
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&state_json(&state))?)?;
        return Ok(());
    }
    let submitted_at = recorded[0].metadata.occurred_at_ms;
    let mut state = TaskState::default();
    let mut agents = HashMap::new();
    for event in &recorded {
        let decoded = TaskEvent::from_recorded(event);
        let verification = match &decoded {
            Ok(decoded) => {
                verify(log, decoded, &state, event, &trusted, &key.public_key(), &mut agents).await
            }
            Err(_) => None,
        };
        let since = event.metadata.occurred_at_ms.saturating_sub(submitted_at);
        if args.json {
            let mut line = to_json(event);
            line["since_submit_ms"] = since.into();
            line["verification"] = verification.clone().map_or(serde_json::Value::Null, Into::into);
            writeln!(out, "{line}")?;
        } else {
            let what = match &decoded {
                Ok(decoded) => summary(decoded),
                Err(error) => format!("undecodable: {error}"),
            };
            let check = verification.map_or(String::new(), |v| format!("  [{v}]"));
            writeln!(
                out,
                "{:>+8}ms  v{:<3} {:<20} {:<13} {what}{check}",
                since,
                event.version,
                event.event_type.as_str(),
                event.metadata.emitter
            )?;
        }
        if let Ok(decoded) = &decoded {
            let _ = state.apply(decoded);
        }
    }
    if !args.json {
        writeln!(
            out,
            "status: {}{}",
            state.status,
            state.end_reason.map_or(String::new(), |r| format!(" — {r}"))
        )?;
    }
    Ok(())
}

/// Checks the signed material of an event; `state` is the task before it.
async fn verify(
    log: &dyn EventLog,
    event: &TaskEvent,
    state: &TaskState,
    recorded: &RecordedEvent,
    trusted: &[PublicKey],
    federation: &PublicKey,
    agents: &mut HashMap<AgentId, AgentState>,
) -> Option<String> {
    let verdict = match event {
        TaskEvent::Submitted(e) => SignedSubmission {
            task_id: e.task_id,
            spec: e.spec.clone(),
            signed_by: e.signed_by,
            signature: e.signature,
        }
        .verify(trusted)
        .map(|()| format!("submission signed by {}", e.signed_by.key_id())),
        TaskEvent::EnvelopeSealed(e) => e
            .envelope
            .verify(federation, recorded.metadata.occurred_at_ms)
            .map(|()| "envelope seal verified".to_string()),
        TaskEvent::ResultReceived(e) => {
            let agent = agent_state(log, &e.result.result.agent_id, agents).await;
            match (&agent.registration, &state.envelope) {
                (Some(registration), Some(envelope)) => e
                    .verify(&registration.passport.passport, envelope)
                    .map(|()| match &e.redaction {
                        None => "agent signature verified".to_string(),
                        Some(r) => format!(
                            "agent signature verified ({} value(s) redacted before recording; the agent's hash is of the raw output)",
                            r.count
                        ),
                    }),
                (None, _) => {
                    return Some(format!("unverified: agent {} has no passport", e.result.result.agent_id));
                }
                (_, None) => return Some("unverified: no envelope for this result".into()),
            }
        }
        _ => return None,
    };
    Some(match verdict {
        Ok(ok) => format!("ok: {ok}"),
        Err(error) => format!("FAILED: {error}"),
    })
}

/// A run's timeline, or its state at `at`.
async fn replay_run(
    log: &dyn EventLog,
    run_id: events::WorkflowId,
    at: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    use events::workflow::WorkflowEvent;
    let mut loaded = workflow::load_run(log, run_id).await?;
    if let Some(at) = at {
        let last = loaded.version;
        if at == 0 || at > last {
            bail!("run {run_id} has versions 1 to {last}; --at {at} is none of them");
        }
        let mut state = events::WorkflowState::default();
        for event in loaded.events.iter().take(usize::try_from(at).unwrap_or(usize::MAX)) {
            if let Ok(decoded) = WorkflowEvent::from_recorded(event) {
                let _ = state.apply(&decoded);
            }
        }
        loaded.events.truncate(usize::try_from(at).unwrap_or(usize::MAX));
        loaded.state = state;
        loaded.version = at;
        let view = gateway::routes::workflows::run_view(&loaded).context("the run has no start")?;
        out!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    let started = loaded.events.first().map_or(0, |e| e.metadata.occurred_at_ms);
    for recorded in &loaded.events {
        let since = recorded.metadata.occurred_at_ms - started;
        let data = WorkflowEvent::from_recorded(recorded).and_then(|e| e.to_json()).unwrap_or_default();
        if json {
            out!(
                "{}",
                serde_json::json!({"version": recorded.version, "since_start_ms": since, "type": recorded.event_type.as_str(), "emitter": recorded.metadata.emitter, "data": data})
            );
            continue;
        }
        let step = data.get("step").and_then(|s| s.as_str()).unwrap_or_default();
        let item = data
            .get("item")
            .and_then(serde_json::Value::as_u64)
            .map(|i| format!("[{i}]"))
            .unwrap_or_default();
        let detail = data
            .get("reason")
            .or_else(|| data.get("error"))
            .or_else(|| data.get("timer"))
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        out!(
            "{:>4}  +{:>7} ms  {:<26} {step}{item} {detail}",
            recorded.version,
            since,
            recorded.event_type.as_str()
        );
    }
    Ok(())
}
