//! Phase 3, matching: `context_gathered`, `retry_scheduled` and `no_agent_available` →
//! `agent_selected` or `no_agent_available`, and `task_failed` when the deadline passes with no
//! agent.
//!
//! Candidates are the active agents whose passport offers the capability, is valid now, that
//! have spare capacity, that are not excluded for the task (an earlier attempt failed on them)
//! and — when the runtime has a read model — that the health projection calls selectable
//! (`unhealthy` agents, and `half_open` ones whose trial is already running, are left out).
//! The registry view follows the log every second; before choosing, matching reads the streams
//! of the agents offering the capability (each at most every [`AGENT_CONFIRM_MS`]), so that an
//! agent another process suspended or retired a moment ago is not chosen.
//!
//! # The score
//! ```text
//! total = 0.25·fit + 0.25·load + 0.2·success + 0.1·latency + 0.1·reputation + 0.1·health
//!   fit        = 0.5 + 0.5 / (capabilities in the passport)     a specialist fits better
//!   load       = 1 − in_flight / max_concurrency               in this process
//!   success    = (verified + 1) / (attempts + 2)               registry, from the log
//!   latency    = 1 / (1 + mean latency in s)                   registry, from the log
//!   reputation = the reputation projection's score for the agent and the capability
//!                (Beta(2, 2)-smoothed, decaying; 0.5 when unknown); without a read model,
//!                (verified + 1) / (verified + refused + 1) from the registry
//!   health     = status × passport: healthy 1, degraded 0.5 ([`crate::HEALTH_SCORE_DEGRADED`]),
//!                half-open 0.25 ([`crate::HEALTH_SCORE_HALF_OPEN`]); halved when the passport
//!                expires within a day; without a read model, the passport part alone
//! ```
//! The best total wins (ties: the smaller agent id), except that a half-open candidate comes
//! first: its trial task is the only way back for an agent that failed (it would otherwise
//! rank low for ever on its record), so it gets the next task once its cool-down is over, and
//! that selection is claimed so only one task is its trial. If the trial fails, the task
//! retries on another agent. The health and reputation values come from a cache of the read
//! models refreshed every second ([`crate::STANDING_REFRESH_MS`], see `standing`).
//!
//! `agent_selected` records the top [`CANDIDATES_RECORDED_MAX`] breakdowns. With no candidate,
//! matching waits with exponential backoff (the `no_agent_available` event carries the wake-up
//! time and stays unacknowledged until then, so the wait survives restarts) up to the task's
//! deadline.

use std::time::Duration;

use async_trait::async_trait;
use events::task::{
    AgentSelected, CandidateScore, FailureCode, NoAgentAvailable, TaskEvent, TaskFailed, TaskStatus,
};
use events::{AgentId, AgentStatus, DomainEvent, RecordedEvent, TaskId, now_ms};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append, sleep_until_ms};
use crate::registry::{AGENT_CONFIRM_MS, Registry};
use crate::standing::Standing;

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

/// One scored candidate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    /// The breakdown `agent_selected` records.
    pub(crate) score: CandidateScore,
    /// Half-open: selecting it makes its trial.
    pub(crate) trial: bool,
}

/// Scores the candidates for `capability`, best first (a half-open one before all others),
/// deciding for `task` when it is a match (its own trial claim does not exclude the agent).
pub(crate) fn candidates(
    registry: &Registry,
    standing: &Standing,
    capability: &str,
    excluded: &[AgentId],
    now: i64,
    task: Option<TaskId>,
) -> Vec<Candidate> {
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
        let judged = standing.judge(&id, capability, now, task);
        if judged.excluded {
            continue;
        }
        // A specialist fits better than a generalist.
        let capability_fit = 0.5 + 0.5 / passport.capabilities.len().max(1) as f64;
        let load = 1.0 - f64::from(view.in_flight) / f64::from(max);
        let success_rate = view.stats.success_rate();
        let latency = 1.0 / (1.0 + view.stats.latency_ms / 1_000.0);
        let checked = view.stats.succeeded + view.stats.refused;
        let reputation =
            judged.reputation.unwrap_or((view.stats.succeeded as f64 + 1.0) / (checked as f64 + 1.0));
        // Health: the projection's status; passports close to expiry lose some.
        let expiry = if passport.not_after_ms - now < 24 * 3_600 * 1_000 { 0.5 } else { 1.0 };
        let health = judged.health.unwrap_or(1.0) * expiry;
        let parts = [capability_fit, load, success_rate, latency, reputation, health];
        let total: f64 = parts.iter().zip(WEIGHTS).map(|(p, w)| p * w).sum();
        let score = CandidateScore {
            agent_id: id,
            total: round3(total),
            capability_fit: round3(capability_fit),
            load: round3(load),
            success_rate: round3(success_rate),
            latency: round3(latency),
            reputation: round3(reputation),
            health: round3(health),
        };
        out.push(Candidate { score, trial: judged.trial });
    }
    out.sort_by(|a, b| {
        b.trial
            .cmp(&a.trial)
            .then_with(|| b.score.total.total_cmp(&a.score.total))
            .then_with(|| a.score.agent_id.cmp(&b.score.agent_id))
    });
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
        let task = Some(loaded.task_id);
        let mut scored =
            candidates(&ctx.registry, &ctx.standing, &spec.capability, &state.excluded_agents, now, task);
        // A half-open best is claimed for this task's trial; when another task of this process
        // took that trial a moment ago, score again (each pass leaves that agent out).
        for _ in 0..scored.len() {
            match scored.first() {
                Some(best)
                    if best.trial && !ctx.standing.claim_trial(&best.score.agent_id, loaded.task_id, now) =>
                {
                    scored = candidates(
                        &ctx.registry,
                        &ctx.standing,
                        &spec.capability,
                        &state.excluded_agents,
                        now,
                        task,
                    );
                }
                _ => break,
            }
        }
        match scored.first() {
            Some(best) => {
                let agent_id = best.score.agent_id.clone();
                let candidates = scored.into_iter().take(CANDIDATES_RECORDED_MAX).map(|c| c.score).collect();
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
        // Another process may have suspended or retired an agent since the registry view last
        // followed the log: read the streams of the agents offering the capability first.
        if let Some(task_id) = crate::phase::task_id_of(&input.stream_id)
            && let Ok(loaded) = crate::phase::load_task_cached(ctx, task_id).await
            && let Some(spec) = loaded.state.spec()
            && let Err(error) = ctx
                .registry
                .confirm_agents(ctx.log.as_ref(), &spec.capability, Duration::from_millis(AGENT_CONFIRM_MS))
                .await
        {
            tracing::warn!(%error, "the agents could not be confirmed; matching on the registry view");
        }
        decide_and_append(ctx, input, self.name(), |loaded| Self::decide(ctx, input, loaded)).await
    }
}
