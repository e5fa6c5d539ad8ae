//! Health and SLOs per agent: from heartbeats, error rate and latency against the SLO the
//! agent declared at registration (or [`SLO_SUCCESS_TARGET_DEFAULT`] /
//! [`SLO_LATENCY_MS_DEFAULT`]).
//!
//! # States
//! ```text
//!            error rate > 0.2 or latency > SLO           3 failures in a row or error rate ≥ 0.5
//!  healthy ───────────────────────────────► degraded ────────────────────────────────► unhealthy
//!     ▲  ◄──────────────────────────────────    │                                          │
//!     │   error rate < 0.1 and latency < 0.8·SLO │ (also from healthy)                      │ cool-down
//!     │                                                                                    ▼ (30 s)
//!     └─────────────── trial succeeds ◄──── trial ◄──── selected for one task ◄──── half_open
//!                                             └──── trial fails ────► unhealthy (cool-down again)
//! ```
//! - The error rate is an exponentially weighted mean of bad outcomes (a failure, a timeout, or
//!   a success slower than the SLO latency), weight [`ERROR_RATE_EWMA_WEIGHT`]. Entering and
//!   leaving `degraded` use different thresholds (hysteresis), so an agent on the edge does not
//!   flap. Failures whose cause is the task itself do not count.
//! - `unhealthy` is left only through a trial: once the cool-down ([`COOL_DOWN_MS`] by default;
//!   [`crate::Projections::with_health_cool_down_ms`] and [`HealthReader::with_cool_down_ms`]
//!   change it, and both must agree) has passed it reads as `half_open`, matching may select it
//!   for one task (it is `trial` while that runs), and the trial's success makes it healthy
//!   again.
//! - Heartbeats (the newer of the log's `agent_liveness_changed` and the liveness table,
//!   [`crate::liveness`]): when an agent has sent any, one older than [`HEARTBEAT_DEGRADED_MS`] makes it
//!   at least `degraded` and one older than [`HEARTBEAT_UNHEALTHY_MS`] makes it `unhealthy` (read
//!   time: a heartbeat arriving restores it). Agents that never sent one (in-process built-ins)
//!   are judged by outcomes alone.
//!
//! # SLO compliance and burn rate
//! Outcomes are counted good or bad in one-minute buckets per agent and per capability.
//! Compliance over a window is good / (good + bad); the burn rate is the bad fraction divided
//! by the error budget (1 − target): 1 spends the budget exactly over the SLO period, 14.4 over
//! the fast window is the classic page-now signal. Two windows: [`FAST_WINDOW_MS`] (5 min) and
//! [`SLOW_WINDOW_MS`] (1 h); buckets older than [`SLO_RETENTION_MS`] are dropped.
//! Per-capability SLOs use [`SLO_SUCCESS_TARGET_DEFAULT`].

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use events::signals::HeartbeatEvent;
use events::task::FailureCause;
use events::{AgentEvent, DomainEvent, RecordedEvent};
use serde::Serialize;
use tracing::warn;

use crate::Result;
use crate::db::{Db, Tx, execute, fetch, read};
use crate::outcomes::{self, Happening, Outcome, OutcomeKind};
use crate::runner::Projection;

/// The success target of an agent that declared no SLO.
pub const SLO_SUCCESS_TARGET_DEFAULT: f64 = 0.99;

/// The latency objective of an agent that declared no SLO: the default task deadline.
pub const SLO_LATENCY_MS_DEFAULT: i64 = 30_000;

/// The weight of the newest outcome in the error rate: about the last ten outcomes count.
pub const ERROR_RATE_EWMA_WEIGHT: f64 = 0.1;

/// The weight of the newest latency in its running mean.
pub const LATENCY_EWMA_WEIGHT: f64 = 0.2;

/// Above this error rate a healthy agent becomes degraded.
pub const DEGRADED_ENTER_ERROR_RATE: f64 = 0.2;

/// Below this error rate (and latency under [`LATENCY_RECOVERY_FRACTION`] of the SLO) a degraded
/// agent becomes healthy again. Lower than the entry threshold: hysteresis.
pub const DEGRADED_EXIT_ERROR_RATE: f64 = 0.1;

/// The fraction of the SLO latency the running mean must fall under to leave `degraded`.
pub const LATENCY_RECOVERY_FRACTION: f64 = 0.8;

/// At or above this error rate an agent is unhealthy.
pub const UNHEALTHY_ERROR_RATE: f64 = 0.5;

/// This many failures in a row make an agent unhealthy at once.
pub const UNHEALTHY_CONSECUTIVE_FAILURES: i64 = 3;

/// How long an unhealthy agent is left alone before it may get a trial task, by default (the
/// `[health] cool-down-ms` of the pipeline's config sets the one `pantheon up` uses).
pub const COOL_DOWN_MS: i64 = 30_000;

/// A heartbeat older than this (three default intervals) makes an agent degraded.
pub const HEARTBEAT_DEGRADED_MS: i64 = 15_000;

/// A heartbeat older than this makes an agent unhealthy.
pub const HEARTBEAT_UNHEALTHY_MS: i64 = 60_000;

/// The fast SLO window.
pub const FAST_WINDOW_MS: i64 = 5 * 60_000;

/// The slow SLO window.
pub const SLOW_WINDOW_MS: i64 = 60 * 60_000;

/// SLO buckets are kept this long (twice the slow window).
pub const SLO_RETENTION_MS: i64 = 2 * SLOW_WINDOW_MS;

/// The width of one SLO bucket.
pub const SLO_BUCKET_MS: i64 = 60_000;

/// The scope key meaning "every agent" or "every capability" in the SLO buckets.
const ALL: &str = "*";

/// An agent's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Within its SLO.
    Healthy,
    /// Erring or slow, still selectable (matching may weigh it down).
    Degraded,
    /// Not selected.
    Unhealthy,
    /// Unhealthy, cool-down over: may be selected for one trial task.
    HalfOpen,
    /// Running its trial task: not selected again until it ends.
    Trial,
}

impl HealthStatus {
    /// Whether matching may select the agent.
    pub fn is_selectable(self) -> bool {
        matches!(self, Self::Healthy | Self::Degraded | Self::HalfOpen)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
            Self::HalfOpen => "half_open",
            Self::Trial => "trial",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "degraded" => Self::Degraded,
            "unhealthy" => Self::Unhealthy,
            "half_open" => Self::HalfOpen,
            "trial" => Self::Trial,
            _ => Self::Healthy,
        }
    }
}

/// The stored health of one agent.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct AgentHealth {
    /// The agent.
    pub agent_id: String,
    /// Its success target.
    pub success_target: f64,
    /// Its latency objective, ms.
    pub latency_ms_slo: i64,
    /// Its last heartbeat, ms since the epoch.
    pub last_heartbeat_ms: Option<i64>,
    /// Running bad-outcome rate, 0 to 1.
    pub error_rate_ewma: f64,
    /// Running mean latency, ms.
    pub latency_ms_ewma: Option<f64>,
    /// Failures in a row.
    pub consecutive_failures: i64,
    /// The state as outcomes left it (`healthy`, `degraded`, `unhealthy`, `trial`).
    pub state: String,
    /// Since when.
    pub state_since_ms: i64,
    /// The task of the running trial.
    pub trial_task_id: Option<String>,
    /// The last event applied, ms since the epoch.
    pub updated_at_ms: i64,
}

/// Health as matching and operators see it at a moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HealthReport {
    /// The status now.
    pub status: HealthStatus,
    /// Why, in words.
    pub reason: String,
    /// The stored record (`None` for an agent never seen).
    pub record: Option<AgentHealth>,
}

impl AgentHealth {
    fn new(agent_id: &str, at_ms: i64) -> Self {
        Self {
            agent_id: agent_id.to_string(),
            success_target: SLO_SUCCESS_TARGET_DEFAULT,
            latency_ms_slo: SLO_LATENCY_MS_DEFAULT,
            last_heartbeat_ms: None,
            error_rate_ewma: 0.0,
            latency_ms_ewma: None,
            consecutive_failures: 0,
            state: HealthStatus::Healthy.as_str().to_string(),
            state_since_ms: at_ms,
            trial_task_id: None,
            updated_at_ms: at_ms,
        }
    }

    fn set_state(&mut self, status: HealthStatus, at_ms: i64) {
        if self.state != status.as_str() {
            self.state = status.as_str().to_string();
            self.state_since_ms = at_ms;
        }
    }

    /// Whether an outcome is bad for the SLO (`None`: it does not count).
    fn is_bad(&self, outcome: &Outcome) -> Option<bool> {
        match outcome.kind {
            OutcomeKind::Success => Some(outcome.latency_ms.is_some_and(|l| l > self.latency_ms_slo)),
            OutcomeKind::Failure(FailureCause::Task) | OutcomeKind::Quality(_) => None,
            OutcomeKind::Failure(_) | OutcomeKind::TimedOut => Some(true),
        }
    }

    /// The state machine's step for one outcome.
    fn apply(&mut self, outcome: &Outcome, task_id_of_trial: bool) {
        let Some(bad) = self.is_bad(outcome) else { return };
        let failed = !matches!(outcome.kind, OutcomeKind::Success);
        let at = outcome.at_ms;
        self.error_rate_ewma += ERROR_RATE_EWMA_WEIGHT * (f64::from(u8::from(bad)) - self.error_rate_ewma);
        if let Some(latency) = outcome.latency_ms {
            let latency = latency as f64;
            self.latency_ms_ewma =
                Some(self.latency_ms_ewma.map_or(latency, |m| m + LATENCY_EWMA_WEIGHT * (latency - m)));
        }
        self.consecutive_failures = if failed { self.consecutive_failures + 1 } else { 0 };
        let current = HealthStatus::parse(&self.state);
        if current == HealthStatus::Trial || (current == HealthStatus::Unhealthy && task_id_of_trial) {
            if task_id_of_trial {
                self.trial_task_id = None;
                if failed {
                    self.set_state(HealthStatus::Unhealthy, at);
                    // A new cool-down starts even if it was already unhealthy.
                    self.state_since_ms = at;
                } else {
                    // Back, with a clean slate: the trial proved it works again.
                    self.error_rate_ewma = 0.0;
                    self.consecutive_failures = 0;
                    self.set_state(HealthStatus::Healthy, at);
                }
            }
            return;
        }
        if current == HealthStatus::Unhealthy {
            // Only a trial brings an unhealthy agent back.
            return;
        }
        let slo = self.latency_ms_slo as f64;
        let slow = self.latency_ms_ewma.is_some_and(|l| l > slo);
        if self.consecutive_failures >= UNHEALTHY_CONSECUTIVE_FAILURES
            || self.error_rate_ewma >= UNHEALTHY_ERROR_RATE
        {
            self.set_state(HealthStatus::Unhealthy, at);
        } else if current == HealthStatus::Healthy
            && (self.error_rate_ewma > DEGRADED_ENTER_ERROR_RATE || slow)
        {
            self.set_state(HealthStatus::Degraded, at);
        } else if current == HealthStatus::Degraded
            && self.error_rate_ewma < DEGRADED_EXIT_ERROR_RATE
            && self.latency_ms_ewma.is_none_or(|l| l < slo * LATENCY_RECOVERY_FRACTION)
        {
            self.set_state(HealthStatus::Healthy, at);
        }
    }

    /// The status at `now_ms`, with its reason, after the default cool-down [`COOL_DOWN_MS`].
    pub fn status_at(&self, now_ms: i64) -> (HealthStatus, String) {
        self.status_with_cool_down(now_ms, COOL_DOWN_MS)
    }

    /// The status at `now_ms`, with its reason, when an unhealthy agent waits `cool_down_ms`
    /// before its trial.
    pub fn status_with_cool_down(&self, now_ms: i64, cool_down_ms: i64) -> (HealthStatus, String) {
        let stored = HealthStatus::parse(&self.state);
        let heartbeat_age = self.last_heartbeat_ms.map(|t| now_ms.saturating_sub(t));
        if let Some(age) = heartbeat_age
            && age > HEARTBEAT_UNHEALTHY_MS
        {
            return (HealthStatus::Unhealthy, format!("no heartbeat for {} s", age / 1_000));
        }
        let status = match stored {
            HealthStatus::Unhealthy if now_ms.saturating_sub(self.state_since_ms) >= cool_down_ms => {
                return (HealthStatus::HalfOpen, "cool-down over: one trial task allowed".to_string());
            }
            HealthStatus::Unhealthy => {
                return (
                    HealthStatus::Unhealthy,
                    format!(
                        "error rate {:.2}, {} failures in a row; cool-down until {}",
                        self.error_rate_ewma,
                        self.consecutive_failures,
                        self.state_since_ms.saturating_add(cool_down_ms)
                    ),
                );
            }
            HealthStatus::Trial => {
                let task = self.trial_task_id.as_deref().unwrap_or("?");
                return (HealthStatus::Trial, format!("running trial task {task}"));
            }
            other => other,
        };
        if let Some(age) = heartbeat_age
            && age > HEARTBEAT_DEGRADED_MS
        {
            return (HealthStatus::Degraded, format!("last heartbeat {} s ago", age / 1_000));
        }
        let reason = format!(
            "error rate {:.2}, mean latency {} ms (SLO {} ms)",
            self.error_rate_ewma,
            self.latency_ms_ewma.map_or("-".to_string(), |l| format!("{l:.0}")),
            self.latency_ms_slo
        );
        (status, reason)
    }
}

/// SLO compliance over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloWindow {
    /// The window's length, ms.
    pub window_ms: i64,
    /// Good outcomes in it.
    pub good: i64,
    /// Bad outcomes in it.
    pub bad: i64,
    /// good / (good + bad); `None` with no outcomes.
    pub compliance: Option<f64>,
    /// The bad fraction over the error budget; `None` with no outcomes.
    pub burn_rate: Option<f64>,
}

/// SLO compliance of one agent or one capability over the fast and the slow window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloReport {
    /// The agent, or `*` for a capability's report.
    pub agent_id: String,
    /// The capability, or `*` for an agent's report.
    pub capability: String,
    /// The success target.
    pub success_target: f64,
    /// Over [`FAST_WINDOW_MS`].
    pub fast: SloWindow,
    /// Over [`SLOW_WINDOW_MS`].
    pub slow: SloWindow,
}

/// Reads health and SLOs; what matching calls.
#[derive(Clone, Debug)]
pub struct HealthReader {
    db: Db,
    cool_down_ms: i64,
}

/// The stored record, as the projection folds it.
const SELECT: &str = "SELECT agent_id, success_target, latency_ms_slo, last_heartbeat_ms, error_rate_ewma, \
     latency_ms_ewma, consecutive_failures, state, state_since_ms, trial_task_id, updated_at_ms FROM projection_health";

/// The record as readers see it: the last heartbeat is the newer of the projection's (from
/// the log) and the liveness table's (beats kept out of the log, [`crate::liveness`]).
const SELECT_READ: &str = "SELECT h.agent_id, h.success_target, h.latency_ms_slo, \
     CASE WHEN l.last_seen_ms IS NOT NULL AND (h.last_heartbeat_ms IS NULL OR l.last_seen_ms > h.last_heartbeat_ms) \
     THEN l.last_seen_ms ELSE h.last_heartbeat_ms END AS last_heartbeat_ms, h.error_rate_ewma, \
     h.latency_ms_ewma, h.consecutive_failures, h.state, h.state_since_ms, h.trial_task_id, h.updated_at_ms \
     FROM projection_health h LEFT JOIN agent_liveness l ON l.agent_id = h.agent_id";

impl HealthReader {
    /// A reader over `db`, with the default cool-down [`COOL_DOWN_MS`].
    pub fn new(db: Db) -> Self {
        Self { db, cool_down_ms: COOL_DOWN_MS }
    }

    /// Reads `half_open` after `cool_down_ms` instead of [`COOL_DOWN_MS`] (the projection
    /// must use the same: [`crate::Projections::with_health_cool_down_ms`]).
    pub fn with_cool_down_ms(mut self, cool_down_ms: i64) -> Self {
        self.cool_down_ms = cool_down_ms.max(0);
        self
    }

    /// The agent's status now (healthy for an agent never seen).
    pub async fn status(&self, agent_id: &str) -> Result<HealthStatus> {
        Ok(self.report_at(agent_id, events::now_ms()).await?.status)
    }

    /// The agent's status and its reason at `now_ms`.
    pub async fn report_at(&self, agent_id: &str, now_ms: i64) -> Result<HealthReport> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT_READ} WHERE h.agent_id = $1"));
        let record: Option<AgentHealth> = read!(&self.db, fetch_optional, AgentHealth, sql, agent_id)?;
        Ok(match record {
            Some(record) => {
                let (status, reason) = record.status_with_cool_down(now_ms, self.cool_down_ms);
                HealthReport { status, reason, record: Some(record) }
            }
            None => HealthReport {
                status: HealthStatus::Healthy,
                reason: "no outcomes yet".to_string(),
                record: None,
            },
        })
    }

    /// Every agent's stored health.
    pub async fn list(&self) -> Result<Vec<AgentHealth>> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT_READ} ORDER BY h.agent_id"));
        Ok(read!(&self.db, fetch_all, AgentHealth, sql)?)
    }

    /// SLO compliance of an agent (all capabilities) at `now_ms`.
    pub async fn agent_slo_at(&self, agent_id: &str, now_ms: i64) -> Result<SloReport> {
        let target = self
            .report_at(agent_id, now_ms)
            .await?
            .record
            .map_or(SLO_SUCCESS_TARGET_DEFAULT, |r| r.success_target);
        self.slo(agent_id, ALL, target, now_ms).await
    }

    /// SLO compliance of a capability (all agents) at `now_ms`.
    pub async fn capability_slo_at(&self, capability: &str, now_ms: i64) -> Result<SloReport> {
        self.slo(ALL, capability, SLO_SUCCESS_TARGET_DEFAULT, now_ms).await
    }

    async fn slo(&self, agent_id: &str, capability: &str, target: f64, now_ms: i64) -> Result<SloReport> {
        let mut windows = Vec::with_capacity(2);
        for window_ms in [FAST_WINDOW_MS, SLOW_WINDOW_MS] {
            let from = now_ms.saturating_sub(window_ms);
            let (good, bad): (Option<i64>, Option<i64>) = read!(
                &self.db,
                fetch_one,
                (Option<i64>, Option<i64>),
                "SELECT CAST(SUM(good) AS BIGINT), CAST(SUM(bad) AS BIGINT) FROM projection_slo_buckets \
                 WHERE agent_id = $1 AND capability = $2 AND bucket_start_ms > $3 - $4 AND bucket_start_ms <= $5",
                agent_id,
                capability,
                from,
                SLO_BUCKET_MS,
                now_ms
            )?;
            let (good, bad) = (good.unwrap_or(0), bad.unwrap_or(0));
            let total = good + bad;
            let compliance = (total > 0).then(|| good as f64 / total as f64);
            let budget = (1.0 - target).max(f64::EPSILON);
            let burn_rate = (total > 0).then(|| (bad as f64 / total as f64) / budget);
            windows.push(SloWindow { window_ms, good, bad, compliance, burn_rate });
        }
        let slow = windows.pop().unwrap_or(SloWindow {
            window_ms: SLOW_WINDOW_MS,
            good: 0,
            bad: 0,
            compliance: None,
            burn_rate: None,
        });
        let fast = windows.pop().unwrap_or(SloWindow {
            window_ms: FAST_WINDOW_MS,
            good: 0,
            bad: 0,
            compliance: None,
            burn_rate: None,
        });
        Ok(SloReport {
            agent_id: agent_id.to_string(),
            capability: capability.to_string(),
            success_target: target,
            fast,
            slow,
        })
    }
}

/// The health projection.
pub(crate) struct HealthProjection {
    /// How long an unhealthy agent waits before a selection is its trial.
    pub(crate) cool_down_ms: i64,
}

#[async_trait]
impl Projection for HealthProjection {
    fn tables(&self) -> &'static [&'static str] {
        &["projection_health", "projection_health_tasks", "projection_slo_buckets"]
    }

    fn digest_queries(&self, _postgres: bool) -> &'static [&'static str] {
        &[
            "SELECT agent_id || '|' || CAST(success_target AS TEXT) || '|' || CAST(latency_ms_slo AS TEXT) || '|' \
             || COALESCE(CAST(last_heartbeat_ms AS TEXT), '-') || '|' || CAST(error_rate_ewma AS TEXT) || '|' \
             || COALESCE(CAST(latency_ms_ewma AS TEXT), '-') || '|' || CAST(consecutive_failures AS TEXT) || '|' \
             || state || '|' || CAST(state_since_ms AS TEXT) || '|' || COALESCE(trial_task_id, '-') \
             FROM projection_health ORDER BY agent_id",
            "SELECT agent_id || '|' || capability || '|' || CAST(bucket_start_ms AS TEXT) || '|' \
             || CAST(good AS TEXT) || '|' || CAST(bad AS TEXT) FROM projection_slo_buckets \
             ORDER BY agent_id, capability, bucket_start_ms",
        ]
    }

    async fn apply(&mut self, tx: &mut Tx, events: &[RecordedEvent]) -> Result<()> {
        let happenings = outcomes::extract(tx, "projection_health_tasks", events).await?;
        let mut agents: HashMap<String, AgentHealth> = HashMap::new();
        let mut touched: Vec<String> = Vec::new();
        // Buckets: (agent, capability, bucket start) → (good, bad) to add.
        let mut buckets: BTreeMap<(String, String, i64), (i64, i64)> = BTreeMap::new();
        let mut latest_ms = i64::MIN;

        // Registrations and heartbeats, then outcomes, in log order.
        enum Step<'a> {
            Registered(&'a RecordedEvent, Box<events::agent::AgentRegistered>),
            Heartbeat(String, i64),
            Happened(&'a Happening),
        }
        let mut steps: Vec<Step<'_>> = Vec::new();
        for event in events {
            match (event.stream_id.category(), event.event_type.as_str()) {
                ("agent", "agent_registered") => match AgentEvent::from_recorded(event) {
                    Ok(AgentEvent::Registered(e)) => steps.push(Step::Registered(event, Box::new(e))),
                    Ok(_) => {}
                    Err(error) => {
                        warn!(position = event.position, %error, "skipping an undecodable agent event")
                    }
                },
                ("heartbeat", "agent_liveness_changed") => match HeartbeatEvent::from_recorded(event) {
                    Ok(HeartbeatEvent::LivenessChanged(e)) => {
                        steps.push(Step::Heartbeat(e.agent_id.to_string(), e.last_seen_ms));
                    }
                    Ok(_) => {}
                    Err(error) => {
                        warn!(position = event.position, %error, "skipping an undecodable liveness event")
                    }
                },
                ("heartbeat", _) => {
                    steps.push(Step::Heartbeat(
                        event.stream_id.entity_id().to_string(),
                        event.metadata.occurred_at_ms,
                    ));
                }
                _ => {}
            }
        }
        // Outcomes come from task events; their relative order with registrations and
        // heartbeats does not change any result (different fields), so they follow.
        steps.extend(happenings.iter().map(Step::Happened));

        for step in &steps {
            let (agent_id, at_ms) = match step {
                Step::Registered(event, e) => {
                    (e.passport.passport.agent_id.to_string(), event.metadata.occurred_at_ms)
                }
                Step::Heartbeat(agent, at) => (agent.clone(), *at),
                Step::Happened(Happening::Selected(s)) => (s.agent_id.clone(), s.at_ms),
                Step::Happened(Happening::Ended(o)) => (o.agent_id.clone(), o.at_ms),
            };
            latest_ms = latest_ms.max(at_ms);
            if !agents.contains_key(&agent_id) {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE agent_id = $1"));
                let stored = fetch!(&mut *tx, fetch_optional, AgentHealth, sql, agent_id.as_str())?;
                agents.insert(agent_id.clone(), stored.unwrap_or_else(|| AgentHealth::new(&agent_id, at_ms)));
                touched.push(agent_id.clone());
            }
            let Some(agent) = agents.get_mut(&agent_id) else { continue };
            agent.updated_at_ms = agent.updated_at_ms.max(at_ms);
            match step {
                Step::Registered(_, e) => {
                    if let Some(slo) = &e.slo {
                        agent.success_target = slo.success_target.clamp(0.0, 1.0);
                        agent.latency_ms_slo = i64::try_from(slo.latency_ms).unwrap_or(i64::MAX);
                    }
                }
                Step::Heartbeat(_, at) => {
                    agent.last_heartbeat_ms = Some(agent.last_heartbeat_ms.map_or(*at, |t| t.max(*at)));
                }
                Step::Happened(Happening::Selected(selection)) => {
                    if HealthStatus::parse(&agent.state) == HealthStatus::Unhealthy
                        && selection.at_ms.saturating_sub(agent.state_since_ms) >= self.cool_down_ms
                    {
                        agent.trial_task_id = Some(selection.task_id.clone());
                        agent.set_state(HealthStatus::Trial, selection.at_ms);
                    }
                }
                Step::Happened(Happening::Ended(outcome)) => {
                    let is_trial = agent.trial_task_id.is_some() && agent.trial_task_id == outcome.task_id;
                    if let Some(bad) = agent.is_bad(outcome) {
                        let bucket = outcome.at_ms.div_euclid(SLO_BUCKET_MS) * SLO_BUCKET_MS;
                        for key in [
                            (outcome.agent_id.clone(), ALL.to_string(), bucket),
                            (ALL.to_string(), outcome.capability.clone(), bucket),
                        ] {
                            let counts = buckets.entry(key).or_insert((0, 0));
                            if bad {
                                counts.1 += 1;
                            } else {
                                counts.0 += 1;
                            }
                        }
                    }
                    agent.apply(outcome, is_trial);
                }
            }
        }
        for agent_id in touched {
            let Some(a) = agents.remove(&agent_id) else { continue };
            execute!(
                &mut *tx,
                "INSERT INTO projection_health (agent_id, success_target, latency_ms_slo, last_heartbeat_ms, \
                 error_rate_ewma, latency_ms_ewma, consecutive_failures, state, state_since_ms, trial_task_id, \
                 updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (agent_id) DO UPDATE SET success_target = excluded.success_target, \
                 latency_ms_slo = excluded.latency_ms_slo, last_heartbeat_ms = excluded.last_heartbeat_ms, \
                 error_rate_ewma = excluded.error_rate_ewma, latency_ms_ewma = excluded.latency_ms_ewma, \
                 consecutive_failures = excluded.consecutive_failures, state = excluded.state, \
                 state_since_ms = excluded.state_since_ms, trial_task_id = excluded.trial_task_id, \
                 updated_at_ms = excluded.updated_at_ms",
                a.agent_id,
                a.success_target,
                a.latency_ms_slo,
                a.last_heartbeat_ms,
                a.error_rate_ewma,
                a.latency_ms_ewma,
                a.consecutive_failures,
                a.state,
                a.state_since_ms,
                a.trial_task_id,
                a.updated_at_ms
            )?;
        }
        for ((agent_id, capability, bucket), (good, bad)) in buckets {
            execute!(
                &mut *tx,
                "INSERT INTO projection_slo_buckets (agent_id, capability, bucket_start_ms, good, bad) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (agent_id, capability, bucket_start_ms) \
                 DO UPDATE SET good = projection_slo_buckets.good + excluded.good, \
                 bad = projection_slo_buckets.bad + excluded.bad",
                agent_id,
                capability,
                bucket,
                good,
                bad
            )?;
        }
        if latest_ms > i64::MIN {
            execute!(
                &mut *tx,
                "DELETE FROM projection_slo_buckets WHERE bucket_start_ms < $1",
                latest_ms.saturating_sub(SLO_RETENTION_MS)
            )?;
        }
        Ok(())
    }
}
