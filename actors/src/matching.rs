//! Phase 3, matching: `context_gathered`, `retry_scheduled` and `no_agent_available` →
//! `agent_selected` or `no_agent_available`, and `task_failed` when the deadline passes with no
//! agent.
//!
//! Candidates are the active agents whose passport offers the capability, is valid now, and
//! that are not excluded for the task (an earlier attempt failed on them). Each is scored on
//! capability fit, spare capacity (in-flight executions against its maximum), success rate and
//! latency (from the log), reputation (results that verified) and health; `agent_selected`
//! records the top [`CANDIDATES_RECORDED_MAX`] breakdowns. With no candidate, matching waits
//! with exponential backoff (the `no_agent_available` event carries the wake-up time and stays
//! unacknowledged until then, so the wait survives restarts) up to the task's deadline.

use async_trait::async_trait;
use events::task::{
    AgentSelected, CandidateScore, FailureCode, NoAgentAvailable, TaskEvent, TaskFailed, TaskStatus,
};
use events::{AgentId, AgentStatus, DomainEvent, RecordedEvent, now_ms};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append, sleep_until_ms};
use crate::registry::Registry;

/// Candidates whose score breakdown `agent_selected` records.
pub const CANDIDATES_RECORDED_MAX: usize = 3;

/// The first wait after finding no agent; doubled each time, up to [`NO_AGENT_WAIT_MS_MAX`].
pub const NO_AGENT_WAIT_MS_BASE: i64 = 100;

/// The longest wait between two matching attempts.
pub const NO_AGENT_WAIT_MS_MAX: i64 = 5_000;

/// Score weights: capability fit, spare capacity, success rate, latency, reputation, health.
const WEIGHTS: [f64; 6] = [0.25, 0.25, 0.2, 0.1, 0.1, 0.1];

fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// Scores the candidates for `capability`, best first.
pub(crate) fn candidates(
    registry: &Registry,
    capability: &str,
    excluded: &[AgentId],
    now: i64,
) -> Vec<CandidateScore> {
    let mut out = Vec::new();
    for (id, view) in registry.agents() {
        if view.state.status != AgentStatus::Active || excluded.contains(&id) {
            continue;
        }
        let Some(registration) = &view.state.registration else { continue };
        let passport = &registration.passport.passport;
        if !passport.capabilities.iter().any(|c| c == capability)
            || now < passport.not_before_ms
            || now >= passport.not_after_ms
        {
            continue;
        }
        let max = registration.max_concurrency.max(1);
        if view.in_flight >= max {
            continue;
        }
        // A specialist fits better than a generalist.
        let capability_fit = 0.5 + 0.5 / passport.capabilities.len().max(1) as f64;
        let load = 1.0 - f64::from(view.in_flight) / f64::from(max);
        let success_rate = view.stats.success_rate();
        let latency = 1.0 / (1.0 + view.stats.latency_ms / 1_000.0);
        let checked = view.stats.succeeded + view.stats.refused;
        let reputation = (view.stats.succeeded as f64 + 1.0) / (checked as f64 + 1.0);
        // Health: passports close to expiry lose some.
        let health = if passport.not_after_ms - now < 24 * 3_600 * 1_000 { 0.5 } else { 1.0 };
        let parts = [capability_fit, load, success_rate, latency, reputation, health];
        let total: f64 = parts.iter().zip(WEIGHTS).map(|(p, w)| p * w).sum();
        out.push(CandidateScore {
            agent_id: id,
            total: round3(total),
            capability_fit: round3(capability_fit),
            load: round3(load),
            success_rate: round3(success_rate),
            latency: round3(latency),
            reputation: round3(reputation),
            health: round3(health),
        });
    }
    out.sort_by(|a, b| b.total.total_cmp(&a.total).then_with(|| a.agent_id.cmp(&b.agent_id)));
    out
}

/// A jitter factor in [0.5, 1.5) derived from an event id: deterministic, so a redelivered
/// input decides the same wait.
pub(crate) fn jitter(id: events::EventId) -> f64 {
    let bits = id.0.as_u128() as u64;
    0.5 + (bits % 1_000) as f64 / 1_000.0
}

/// Phase 3.
pub(crate) struct Matching;

impl Matching {
    fn decide(ctx: &Ctx, input: &RecordedEvent, loaded: &Loaded) -> Vec<Output> {
        let state = &loaded.state;
        let current = match input.event_type.as_str() {
            "context_gathered" => state.status == TaskStatus::ContextReady,
            "retry_scheduled" => state.status == TaskStatus::Retrying && loaded.version == input.version,
            "no_agent_available" => state.status == TaskStatus::Waiting && loaded.version == input.version,
            _ => false,
        };
        if !current {
            return Vec::new();
        }
        let Some(spec) = state.spec() else { return Vec::new() };
        let now = now_ms();
        if now >= loaded.deadline_ms() {
            let (code, reason) = if state.status == TaskStatus::Waiting {
                (
                    FailureCode::NoAgent,
                    format!(
                        "no agent offering {:?} became available within the task's {} ms",
                        spec.capability, spec.timeout_ms
                    ),
                )
            } else {
                (
                    FailureCode::DeadlineExceeded,
                    format!("the deadline of {} ms passed before matching", spec.timeout_ms),
                )
            };
            return vec![("failed".into(), TaskEvent::Failed(TaskFailed { code, reason }))];
        }
        let scored = candidates(&ctx.registry, &spec.capability, &state.excluded_agents, now);
        match scored.first() {
            Some(best) => {
                let agent_id = best.agent_id.clone();
                let candidates = scored.into_iter().take(CANDIDATES_RECORDED_MAX).collect();
                vec![(
                    "selected".into(),
                    TaskEvent::AgentSelected(AgentSelected { agent_id, attempt: state.attempt, candidates }),
                )]
            }
            None => {
                let shift = state.no_agent_count.min(16);
                let wait = (NO_AGENT_WAIT_MS_BASE << shift).min(NO_AGENT_WAIT_MS_MAX);
                let wait = (wait as f64 * jitter(input.id)) as i64;
                let retry_at_ms = (now + wait).min(loaded.deadline_ms());
                let excluded = if state.excluded_agents.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (excluded after failing: {})",
                        state.excluded_agents.iter().map(AgentId::as_str).collect::<Vec<_>>().join(", ")
                    )
                };
                let reason =
                    format!("no active agent with spare capacity offers {:?}{excluded}", spec.capability);
                vec![(
                    "no_agent".into(),
                    TaskEvent::NoAgentAvailable(NoAgentAvailable { reason, retry_at_ms }),
                )]
            }
        }
    }
}

#[async_trait]
impl Phase for Matching {
    fn name(&self) -> &'static str {
        "matching"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["context_gathered", "retry_scheduled", "no_agent_available"]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        // A retry or a wait carries the time it may go ahead: wait for it (the input stays
        // unacknowledged meanwhile, so the timer survives a restart).
        let wake_at = match events::task::TaskEvent::from_recorded(input) {
            Ok(TaskEvent::RetryScheduled(e)) => Some(e.not_before_ms),
            Ok(TaskEvent::NoAgentAvailable(e)) => Some(e.retry_at_ms),
            _ => None,
        };
        if let Some(at) = wake_at
            && !sleep_until_ms(ctx, at).await
        {
            return Ok(Handled::Interrupted);
        }
        decide_and_append(ctx, input, self.name(), |loaded| Self::decide(ctx, input, loaded)).await
    }
}
