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
//! deadline; its reason says why each agent offering the capability was left out (suspended,
//! passport out of date, at capacity, failed this task before, unhealthy or on trial).
//!
//! # Deciding and doing
//! The handler gathers the [`Facts`] (the registry's agents offering the capability and how
//! the read models judge them) and the time from the clock, then [`decide`]s, purely. A
//! half-open agent selected is claimed for the task's trial after the decision (an effect);
//! when another task of this process claimed it first, the decision is made again without it.

use std::time::Duration;

use async_trait::async_trait;
use events::task::{
    AgentSelected, CandidateScore, FailureCode, NoAgentAvailable, TaskEvent, TaskFailed, TaskStatus,
};
use events::{AgentId, AgentStatus, DomainEvent, EventId, RecordedEvent, TaskEventKind, TaskId, Version};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append, sleep_until_ms};
use crate::registry::{AGENT_CONFIRM_MS, AgentView, Registry};
use crate::standing::{Judgement, Standing};

/// Candidates whose score breakdown `agent_selected` records.
pub const CANDIDATES_RECORDED_MAX: usize = 3;

/// The first wait after finding no agent; doubled each time, up to [`NO_AGENT_WAIT_MS_MAX`].
pub const NO_AGENT_WAIT_MS_BASE: i64 = 100;

/// The longest wait between two matching attempts.
pub const NO_AGENT_WAIT_MS_MAX: i64 = 5_000;

/// Agents a `no_agent_available` reason names, at most (the rest are counted).
const UNFIT_NAMED_MAX: usize = 5;

/// Score weights: capability fit, spare capacity, success rate, latency, reputation, health.
const WEIGHTS: [f64; 6] = [0.25, 0.25, 0.2, 0.1, 0.1, 0.1];

fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// One agent whose passport offers the capability, as matching sees it.
#[derive(Clone, Debug)]
pub(crate) struct AgentFact {
    pub(crate) id: AgentId,
    /// Its state, statistics and executions running in this process (the registry).
    pub(crate) view: AgentView,
    /// How the read models judge it for the capability (health, reputation, trials).
    pub(crate) judgement: Judgement,
}

/// What matching decides on besides the task and the time: the agents offering the
/// capability, gathered before deciding.
#[derive(Clone, Debug, Default)]
pub(crate) struct Facts {
    pub(crate) agents: Vec<AgentFact>,
}

impl Facts {
    /// The agents of `registry` whose passport offers `capability`, judged by `standing` at
    /// `now` for `task` (whose own trial claim does not exclude an agent).
    pub(crate) fn gather(
        registry: &Registry,
        standing: &Standing,
        capability: &str,
        now: i64,
        task: Option<TaskId>,
    ) -> Self {
        let agents = registry
            .agents()
            .into_iter()
            .filter(|(_, view)| {
                view.state
                    .registration
                    .as_ref()
                    .is_some_and(|r| r.passport.passport.capabilities.iter().any(|c| c == capability))
            })
            .map(|(id, view)| {
                let judgement = standing.judge(&id, capability, now, task);
                AgentFact { id, view, judgement }
            })
            .collect();
        Self { agents }
    }

    /// Leaves `agent` out of later decisions (another task took its trial).
    fn leave_out(&mut self, agent: &AgentId) {
        for fact in self.agents.iter_mut().filter(|f| &f.id == agent) {
            fact.judgement.excluded = true;
            fact.judgement.trial = false;
        }
    }
}

/// Why an agent offering the capability is not a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unfit {
    /// Suspended, retired or not registered.
    Status(AgentStatus),
    /// Its passport is not valid yet.
    PassportNotYetValid,
    /// Its passport has expired.
    PassportExpired,
    /// It runs as many tasks as it may.
    Full { in_flight: u32, max: u32 },
    /// An earlier attempt of this task failed on it.
    FailedThisTask,
    /// The health projection keeps it out (unhealthy, or its trial is running or taken).
    Health,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(status) => write!(f, "is {}", format!("{status:?}").to_lowercase()),
            Self::PassportNotYetValid => f.write_str("has a passport not valid yet"),
            Self::PassportExpired => f.write_str("has an expired passport"),
            Self::Full { in_flight, max } => write!(f, "is at capacity ({in_flight} of {max})"),
            Self::FailedThisTask => f.write_str("failed an earlier attempt of this task"),
            Self::Health => f.write_str("is unhealthy or on trial"),
        }
    }
}

/// One scored candidate.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    /// The breakdown `agent_selected` records.
    pub(crate) score: CandidateScore,
    /// Half-open: selecting it makes its trial.
    pub(crate) trial: bool,
}

/// Why `fact` cannot take a task for `capability` at `now`, leaving out `excluded`; `None`
/// when it can.
fn unfit(fact: &AgentFact, capability: &str, excluded: &[AgentId], now: i64) -> Option<Unfit> {
    let view = &fact.view;
    if view.state.status != AgentStatus::Active {
        return Some(Unfit::Status(view.state.status));
    }
    let Some(registration) = &view.state.registration else { return Some(Unfit::Status(view.state.status)) };
    let passport = &registration.passport.passport;
    if !passport.capabilities.iter().any(|c| c == capability) {
        return Some(Unfit::Status(view.state.status)); // not gathered for it: never here
    }
    if now < passport.not_before_ms {
        return Some(Unfit::PassportNotYetValid);
    }
    if now >= passport.not_after_ms {
        return Some(Unfit::PassportExpired);
    }
    if excluded.contains(&fact.id) {
        return Some(Unfit::FailedThisTask);
    }
    let max = registration.max_concurrency.max(1);
    if view.in_flight >= max {
        return Some(Unfit::Full { in_flight: view.in_flight, max });
    }
    fact.judgement.excluded.then_some(Unfit::Health)
}

/// Scores the candidates among `facts` for `capability` at `now`, best first (a half-open one
/// before all others), leaving out `excluded`; with the reason each other agent was left out.
pub(crate) fn score(
    facts: &Facts,
    capability: &str,
    excluded: &[AgentId],
    now: i64,
) -> (Vec<Candidate>, Vec<(AgentId, Unfit)>) {
    let mut out = Vec::new();
    let mut left_out = Vec::new();
    for fact in &facts.agents {
        if let Some(why) = unfit(fact, capability, excluded, now) {
            left_out.push((fact.id.clone(), why));
            continue;
        }
        let Some(registration) = &fact.view.state.registration else { continue };
        let (view, judged) = (&fact.view, &fact.judgement);
        let passport = &registration.passport.passport;
        let max = registration.max_concurrency.max(1);
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
            agent_id: fact.id.clone(),
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
    (out, left_out)
}

/// A jitter factor in [0.5, 1.5) derived from an event id: deterministic, so a redelivered
/// input decides the same wait.
pub(crate) fn jitter(id: EventId) -> f64 {
    let bits = id.0.as_u128() as u64;
    0.5 + (bits % 1_000) as f64 / 1_000.0
}

/// The input that woke matching: its kind, the version it was recorded at and its id (the
/// jitter of a wait).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wake {
    pub(crate) kind: TaskEventKind,
    pub(crate) version: Version,
    pub(crate) id: EventId,
}

impl Wake {
    fn of(input: &RecordedEvent) -> Option<Self> {
        let kind = TaskEventKind::of(input.event_type.as_str())?;
        Some(Self { kind, version: input.version, id: input.id })
    }
}

/// Whether the task waits for matching after `wake`: its context is ready, or `wake` is the
/// latest retry or wait (a later event makes it stale).
pub(crate) fn awaits_agent(loaded: &Loaded, wake: &Wake) -> bool {
    let state = &loaded.state;
    match wake.kind {
        TaskEventKind::ContextGathered => state.status == TaskStatus::ContextReady,
        TaskEventKind::RetryScheduled => {
            state.status == TaskStatus::Retrying && loaded.version == wake.version
        }
        TaskEventKind::NoAgentAvailable => {
            state.status == TaskStatus::Waiting && loaded.version == wake.version
        }
        _ => false,
    }
}

/// The decider: for a task waiting for an agent, `task_failed` when its deadline has passed,
/// `agent_selected` with the best candidate, or `no_agent_available` with the time to look
/// again (exponential backoff with jitter, never past the deadline) and why each agent
/// offering the capability was left out; nothing for a stale input.
pub(crate) fn decide(loaded: &Loaded, wake: &Wake, facts: &Facts, now: i64) -> Vec<Output> {
    if !awaits_agent(loaded, wake) {
        return Vec::new();
    }
    let state = &loaded.state;
    let Some(spec) = state.spec() else { return Vec::new() };
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
    let (scored, left_out) = score(facts, &spec.capability, &state.excluded_agents, now);
    if let Some(best) = scored.first() {
        let agent_id = best.score.agent_id.clone();
        let candidates = scored.into_iter().take(CANDIDATES_RECORDED_MAX).map(|c| c.score).collect();
        return vec![(
            "selected".into(),
            TaskEvent::AgentSelected(AgentSelected { agent_id, attempt: state.attempt, candidates }),
        )];
    }
    let shift = state.no_agent_count.min(16);
    let wait = (NO_AGENT_WAIT_MS_BASE << shift).min(NO_AGENT_WAIT_MS_MAX);
    let wait = (wait as f64 * jitter(wake.id)) as i64;
    let retry_at_ms = (now + wait).min(loaded.deadline_ms());
    let reason = no_agent_reason(&spec.capability, &left_out);
    vec![("no_agent".into(), TaskEvent::NoAgentAvailable(NoAgentAvailable { reason, retry_at_ms }))]
}

/// Why no agent could be chosen: none offers the capability, or each that does and why not.
fn no_agent_reason(capability: &str, left_out: &[(AgentId, Unfit)]) -> String {
    if left_out.is_empty() {
        return format!("no registered agent offers {capability:?}");
    }
    let mut named: Vec<String> =
        left_out.iter().take(UNFIT_NAMED_MAX).map(|(agent, why)| format!("{agent} {why}")).collect();
    if left_out.len() > UNFIT_NAMED_MAX {
        named.push(format!("{} more", left_out.len() - UNFIT_NAMED_MAX));
    }
    format!("no agent can take {capability:?} now: {}", named.join("; "))
}

/// The agent a decision selects when it is a half-open candidate (selecting it makes its
/// trial, which must be claimed).
fn selected_trial(outputs: &[Output], facts: &Facts) -> Option<AgentId> {
    let [(_, TaskEvent::AgentSelected(selected))] = outputs else { return None };
    facts.agents.iter().find(|f| f.id == selected.agent_id && f.judgement.trial).map(|f| f.id.clone())
}

/// Phase 3.
pub(crate) struct Matching;

#[async_trait]
impl Phase for Matching {
    fn name(&self) -> &'static str {
        "matching"
    }

    fn inputs(&self) -> &'static [TaskEventKind] {
        &[TaskEventKind::ContextGathered, TaskEventKind::RetryScheduled, TaskEventKind::NoAgentAvailable]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let Some(wake) = Wake::of(input) else { return Ok(Handled::Done) };
        // A retry or a wait carries the time it may go ahead: wait for it (the input stays
        // unacknowledged meanwhile, so the timer survives a restart).
        let wake_at = match TaskEvent::from_recorded(input) {
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
        decide_and_append(ctx, input, self.name(), |loaded| {
            let Some(spec) = loaded.state.spec().filter(|_| awaits_agent(loaded, &wake)) else {
                return Vec::new();
            };
            let now = ctx.clock.now_ms();
            let task = Some(loaded.task_id);
            let mut facts = Facts::gather(&ctx.registry, &ctx.standing, &spec.capability, now, task);
            loop {
                let outputs = decide(loaded, &wake, &facts, now);
                // A half-open agent selected is claimed for this task's trial; when another
                // task of this process took that trial a moment ago, decide again without it.
                match selected_trial(&outputs, &facts) {
                    Some(agent) if !ctx.standing.claim_trial(&agent, loaded.task_id, now) => {
                        facts.leave_out(&agent);
                    }
                    _ => return outputs,
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use events::agent::{AgentRegistered, AgentTransport};
    use events::task::ExecutionFailed;
    use events::{AgentState, KeyPair, Passport, SignedPassport, TaskSpec};

    use super::*;
    use crate::phase::tests::{attempt_started, loaded_after};
    use crate::registry::AgentStats;

    const NOW: i64 = 2_000;
    const DAY_MS: i64 = 24 * 3_600 * 1_000;

    /// An active agent offering `capabilities`, its passport valid for ten days around NOW,
    /// running `in_flight` of at most 4 tasks here, judged healthy with no record.
    fn agent(id: &str, capabilities: &[&str], in_flight: u32) -> AgentFact {
        let federation = KeyPair::generate();
        let passport = Passport {
            agent_id: AgentId::new(id).unwrap(),
            public_key: KeyPair::generate().public_key(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            not_before_ms: 0,
            not_after_ms: NOW + 10 * DAY_MS,
        };
        let registration = AgentRegistered {
            passport: SignedPassport::issue(passport, &federation).unwrap(),
            max_concurrency: 4,
            transport: AgentTransport::InProcess { builtin: "echo".into() },
            slo: None,
        };
        let state = AgentState {
            version: 1,
            status: AgentStatus::Active,
            registration: Some(registration),
            ..Default::default()
        };
        AgentFact {
            id: AgentId::new(id).unwrap(),
            view: AgentView { state, stats: AgentStats::default(), in_flight },
            judgement: Judgement { excluded: false, trial: false, reputation: None, health: None },
        }
    }

    fn facts(agents: Vec<AgentFact>) -> Facts {
        Facts { agents }
    }

    /// Given: a task asking for `echo` (30 s, submitted at 1,000 ms) whose context is ready.
    fn ready() -> (Loaded, Wake) {
        let loaded =
            loaded_after(TaskId::new(), TaskSpec::new("echo", "say hi"), &KeyPair::generate(), Vec::new());
        let wake = Wake { kind: TaskEventKind::ContextGathered, version: loaded.version, id: EventId::new() };
        (loaded, wake)
    }

    #[test]
    fn the_best_candidate_is_selected_and_the_top_three_recorded() {
        let (task, wake) = ready();
        let agents = facts(vec![
            agent("generalist", &["echo", "summarize", "translate"], 0),
            agent("busy", &["echo"], 3),
            agent("specialist", &["echo"], 0),
            agent("other", &["summarize"], 0),
            agent("fourth", &["echo", "summarize"], 2),
        ]);
        let outputs = decide(&task, &wake, &agents, NOW);
        let [(_, TaskEvent::AgentSelected(selected))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(selected.agent_id.as_str(), "specialist");
        assert_eq!(selected.attempt, 1);
        let ranked: Vec<&str> = selected.candidates.iter().map(|c| c.agent_id.as_str()).collect();
        assert_eq!(ranked.len(), CANDIDATES_RECORDED_MAX);
        assert_eq!(ranked[0], "specialist");
        assert!(!ranked.contains(&"other"), "an agent without the capability is no candidate");
        let totals: Vec<f64> = selected.candidates.iter().map(|c| c.total).collect();
        assert!(totals.windows(2).all(|w| w[0] >= w[1]), "{totals:?}");
    }

    #[test]
    fn a_half_open_agent_comes_first_for_its_trial() {
        let (task, wake) = ready();
        let mut recovering = agent("recovering", &["echo", "summarize"], 0);
        recovering.judgement =
            Judgement { excluded: false, trial: true, reputation: Some(0.2), health: Some(0.25) };
        let agents = facts(vec![agent("healthy", &["echo"], 0), recovering]);
        let outputs = decide(&task, &wake, &agents, NOW);
        assert_eq!(selected_trial(&outputs, &agents).map(|a| a.to_string()), Some("recovering".into()));
        // Its trial taken by another task: decided again without it.
        let mut agents = agents;
        agents.leave_out(&AgentId::new("recovering").unwrap());
        let outputs = decide(&task, &wake, &agents, NOW);
        let [(_, TaskEvent::AgentSelected(selected))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(selected.agent_id.as_str(), "healthy");
        assert_eq!(selected_trial(&outputs, &agents), None);
    }

    #[test]
    fn with_no_candidate_the_wait_backs_off_and_says_why_each_agent_was_left_out() {
        // A task whose first attempt failed on `failed`, retried.
        let federation = KeyPair::generate();
        let spec = TaskSpec::new("echo", "say hi");
        let failed_agent = AgentId::new("failed").unwrap();
        let task = attempt_started(spec, &federation, &failed_agent, 1_000, |_| {
            vec![
                TaskEvent::ExecutionFailed(ExecutionFailed {
                    agent_id: failed_agent.clone(),
                    attempt: 1,
                    cause: events::task::FailureCause::Agent,
                    reason: "boom".into(),
                }),
                TaskEvent::RetryScheduled(events::task::RetryScheduled {
                    attempt: 2,
                    not_before_ms: 1_500,
                    exclude_agents: vec![failed_agent.clone()],
                }),
            ]
        });
        let wake = Wake { kind: TaskEventKind::RetryScheduled, version: task.version, id: EventId::new() };
        let mut suspended = agent("suspended", &["echo"], 0);
        suspended.view.state.status = AgentStatus::Suspended;
        let mut expired = agent("expired", &["echo"], 0);
        if let Some(r) = expired.view.state.registration.as_mut() {
            r.passport.passport.not_after_ms = NOW;
        }
        let mut unhealthy = agent("unhealthy", &["echo"], 0);
        unhealthy.judgement.excluded = true;
        let agents = facts(vec![
            suspended,
            expired,
            agent("full", &["echo"], 4),
            agent("failed", &["echo"], 0),
            unhealthy,
        ]);
        let outputs = decide(&task, &wake, &agents, NOW);
        let [(_, TaskEvent::NoAgentAvailable(wait))] = outputs.as_slice() else { panic!("{outputs:?}") };
        // 100 ms times a jitter in [0.5, 1.5).
        assert!((NOW + 50..NOW + 150).contains(&wait.retry_at_ms), "{}", wait.retry_at_ms);
        for why in [
            "suspended is suspended",
            "expired has an expired passport",
            "full is at capacity (4 of 4)",
            "failed failed an earlier attempt of this task",
            "unhealthy is unhealthy or on trial",
        ] {
            assert!(wait.reason.contains(why), "{why:?} not in {:?}", wait.reason);
        }
        // Nobody offers it at all.
        let outputs = decide(&task, &wake, &Facts::default(), NOW);
        let [(_, TaskEvent::NoAgentAvailable(wait))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(wait.reason, "no registered agent offers \"echo\"");
        // The wait never goes past the deadline (1,000 + the default 30,000 ms).
        let outputs = decide(&task, &wake, &Facts::default(), 30_990);
        let [(_, TaskEvent::NoAgentAvailable(wait))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(wait.retry_at_ms, 31_000);
    }

    #[test]
    fn the_deadline_ends_a_task_that_waited_or_was_late() {
        let (task, wake) = ready();
        let outputs = decide(&task, &wake, &facts(vec![agent("a", &["echo"], 0)]), 31_000);
        let [(_, TaskEvent::Failed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(failed.code, FailureCode::DeadlineExceeded);
        // Waiting for an agent when the deadline passes: no agent.
        let waiting = loaded_after(
            task.task_id,
            TaskSpec::new("echo", "say hi"),
            &KeyPair::generate(),
            vec![TaskEvent::NoAgentAvailable(NoAgentAvailable { reason: "none".into(), retry_at_ms: 1_100 })],
        );
        let wake =
            Wake { kind: TaskEventKind::NoAgentAvailable, version: waiting.version, id: EventId::new() };
        let outputs = decide(&waiting, &wake, &Facts::default(), 31_000);
        let [(_, TaskEvent::Failed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(failed.code, FailureCode::NoAgent);
    }

    #[test]
    fn a_stale_wake_or_a_task_matched_already_decides_nothing() {
        let waiting = loaded_after(
            TaskId::new(),
            TaskSpec::new("echo", "say hi"),
            &KeyPair::generate(),
            vec![
                TaskEvent::NoAgentAvailable(NoAgentAvailable { reason: "none".into(), retry_at_ms: 1_100 }),
                TaskEvent::NoAgentAvailable(NoAgentAvailable { reason: "none".into(), retry_at_ms: 1_300 }),
            ],
        );
        let agents = facts(vec![agent("a", &["echo"], 0)]);
        // The first wait was followed by another: only the latest one wakes matching.
        let stale =
            Wake { kind: TaskEventKind::NoAgentAvailable, version: waiting.version - 1, id: EventId::new() };
        assert!(decide(&waiting, &stale, &agents, NOW).is_empty());
        let latest = Wake { version: waiting.version, ..stale };
        assert_eq!(decide(&waiting, &latest, &agents, NOW).len(), 1);
        // A task already matched (the decision is in the log): nothing more.
        let matched = attempt_started(
            TaskSpec::new("echo", "x"),
            &KeyPair::generate(),
            &AgentId::new("a").unwrap(),
            1_000,
            |_| Vec::new(),
        );
        let wake = Wake { kind: TaskEventKind::ContextGathered, version: 3, id: EventId::new() };
        assert!(decide(&matched, &wake, &agents, NOW).is_empty());
    }
}
