//! What matching knows from the read models: each agent's health and its reputation per
//! capability, read from the projections' database ([`projections::HealthReader`],
//! [`projections::ReputationReader`]) when the runtime has one (`RuntimeOptions::read_model`).
//! Without a read model every agent counts as healthy and matching scores as it did before
//! (reputation from the registry's own counts).
//!
//! # A cache refreshed in the background, not a query per decision
//! The view is loaded whole (one query per table) every [`STANDING_REFRESH_MS`] by a task the
//! runtime owns and stops at shutdown; matching reads it from memory. Matching decides inside
//! a synchronous closure that may run again after a conflicting append, for every task, at
//! thousands of tasks per second: a query per decision would put the database on the hot path
//! of every task (and a slow database would slow every match), while health and reputation
//! change only as outcomes arrive. A view about a second old (plus the projections' own lag of
//! tens of milliseconds) decides as well. A refresh that fails or takes longer than
//! [`STANDING_READ_MS_MAX`] keeps the previous view and is logged.
//!
//! Two things make the cache exact where staleness would matter:
//! - Health is evaluated at decision time from the cached records (the cool-down is a matter
//!   of time, not of new events), and for the agents this process hosts the heartbeats it sent
//!   itself count as fresh even before the projection applied them (after a restart, the last
//!   stored heartbeat may be minutes old).
//! - A half-open agent selected for its trial is claimed in memory at once, so the next
//!   decisions of this process leave it out until the projection records the trial (status
//!   `trial`) — or for [`TRIAL_CLAIM_MS_MAX`] at most, if that selection was never appended.
//!   Two processes may each give it a trial; both count, the first to end decides.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use events::{AgentId, TaskId, now_ms};
use projections::reputation::{PRIOR_FAILURES, PRIOR_SUCCESSES};
use projections::{AgentHealth, Db, HealthReader, HealthStatus, Reputation, ReputationReader};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// How often the view is read again from the read models.
pub const STANDING_REFRESH_MS: u64 = 1_000;

/// The longest one refresh may take (both queries); past it the previous view stays.
pub const STANDING_READ_MS_MAX: u64 = 2_000;

/// How long a half-open agent stays claimed for a trial this process selected it for, at
/// most: longer than the projections take to record the selection (tens of ms, plus one
/// refresh), short enough that a selection that was never appended does not keep the agent
/// out for long.
pub const TRIAL_CLAIM_MS_MAX: i64 = 10_000;

/// The health part of a degraded agent's score (healthy: 1).
pub const HEALTH_SCORE_DEGRADED: f64 = 0.5;

/// The health part of a half-open agent's score (it is selected first anyway, for its trial).
pub const HEALTH_SCORE_HALF_OPEN: f64 = 0.25;

/// How matching sees one agent for one capability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Judgement {
    /// Leave it out: unhealthy, running its trial, or claimed for a trial.
    pub(crate) excluded: bool,
    /// Half-open: selecting it makes its trial.
    pub(crate) trial: bool,
    /// Its reputation for the capability (0 to 1), when there is a read model.
    pub(crate) reputation: Option<f64>,
    /// Its health factor (0 to 1), when there is a read model.
    pub(crate) health: Option<f64>,
}

impl Judgement {
    const UNKNOWN: Self = Self { excluded: false, trial: false, reputation: None, health: None };
}

struct Source {
    health: HealthReader,
    reputation: ReputationReader,
    cool_down_ms: i64,
}

#[derive(Default)]
struct View {
    health: HashMap<String, AgentHealth>,
    /// Agent → capability → record.
    reputation: HashMap<String, HashMap<String, Reputation>>,
    /// Half-open agents claimed for a trial: agent → (task, when).
    claims: HashMap<String, (TaskId, i64)>,
    /// The last heartbeat this process sent for each agent it hosts, ms.
    beats: HashMap<String, i64>,
}

/// The cached view. Shared by the phases of one process.
pub(crate) struct Standing {
    source: Option<Source>,
    view: RwLock<View>,
}

impl std::fmt::Debug for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standing").field("read_model", &self.source.is_some()).finish_non_exhaustive()
    }
}

impl Standing {
    /// A view of `db` (`None`: no read model, every agent counts as healthy), in which an
    /// unhealthy agent gets its trial after `cool_down_ms`.
    pub(crate) fn new(db: Option<Db>, cool_down_ms: i64) -> Self {
        let source = db.map(|db| Source {
            health: HealthReader::new(db.clone()).with_cool_down_ms(cool_down_ms),
            reputation: ReputationReader::new(db),
            cool_down_ms: cool_down_ms.max(0),
        });
        Self { source, view: RwLock::new(View::default()) }
    }

    /// Reads the read models again (nothing without one). On failure the previous view stays.
    pub(crate) async fn refresh(&self) -> Result<()> {
        let Some(source) = &self.source else { return Ok(()) };
        let read = async { tokio::try_join!(source.health.list(), source.reputation.list(None)) };
        let (health, reputation) = tokio::time::timeout(Duration::from_millis(STANDING_READ_MS_MAX), read)
            .await
            .map_err(|_| {
                Error::Timeout(format!("reading the read models took over {STANDING_READ_MS_MAX} ms"))
            })?
            .map_err(Error::ReadModel)?;
        let health: HashMap<String, AgentHealth> =
            health.into_iter().map(|h| (h.agent_id.clone(), h)).collect();
        let mut by_agent: HashMap<String, HashMap<String, Reputation>> = HashMap::new();
        for record in reputation {
            by_agent.entry(record.agent_id.clone()).or_default().insert(record.capability.clone(), record);
        }
        let now = now_ms();
        let Ok(mut view) = self.view.write() else { return Ok(()) };
        // A claim ends when the projection shows the agent anything but half-open (its trial
        // was recorded, or it ended), or when it is too old.
        view.claims.retain(|agent, (_, at)| {
            now.saturating_sub(*at) < TRIAL_CLAIM_MS_MAX
                && health.get(agent).is_some_and(|record| {
                    record.status_with_cool_down(now, source.cool_down_ms).0 == HealthStatus::HalfOpen
                })
        });
        view.health = health;
        view.reputation = by_agent;
        Ok(())
    }

    /// How matching sees `agent` for `capability` at `now`, deciding for `task` (whose own
    /// trial claim does not exclude the agent: a re-decision after a conflict).
    pub(crate) fn judge(
        &self,
        agent: &AgentId,
        capability: &str,
        now: i64,
        task: Option<TaskId>,
    ) -> Judgement {
        let Some(source) = &self.source else { return Judgement::UNKNOWN };
        let Ok(view) = self.view.read() else { return Judgement::UNKNOWN };
        let status = match view.health.get(agent.as_str()) {
            None => HealthStatus::Healthy,
            Some(record) => match view.beats.get(agent.as_str()) {
                // This process beat for it more recently than the projection knows.
                Some(&beat) if record.last_heartbeat_ms.is_some_and(|stored| stored < beat) => {
                    let mut fresher = record.clone();
                    fresher.last_heartbeat_ms = Some(beat);
                    fresher.status_with_cool_down(now, source.cool_down_ms).0
                }
                _ => record.status_with_cool_down(now, source.cool_down_ms).0,
            },
        };
        let claimed = view.claims.get(agent.as_str()).is_some_and(|(holder, at)| {
            Some(*holder) != task && now.saturating_sub(*at) < TRIAL_CLAIM_MS_MAX
        });
        let (excluded, trial, health) = match status {
            HealthStatus::Healthy => (false, false, 1.0),
            HealthStatus::Degraded => (false, false, HEALTH_SCORE_DEGRADED),
            HealthStatus::HalfOpen if !claimed => (false, true, HEALTH_SCORE_HALF_OPEN),
            HealthStatus::HalfOpen | HealthStatus::Unhealthy | HealthStatus::Trial => (true, false, 0.0),
        };
        let prior = PRIOR_SUCCESSES / (PRIOR_SUCCESSES + PRIOR_FAILURES);
        let reputation = view
            .reputation
            .get(agent.as_str())
            .and_then(|by_capability| by_capability.get(capability))
            .map_or(prior, |record| record.score_at(now));
        Judgement { excluded, trial, reputation: Some(reputation), health: Some(health) }
    }

    /// Claims a half-open agent for `task`'s trial. False when another task of this process
    /// holds a live claim (the caller then picks someone else); claiming again for the same
    /// task (a re-decision) succeeds.
    pub(crate) fn claim_trial(&self, agent: &AgentId, task: TaskId, now: i64) -> bool {
        let Ok(mut view) = self.view.write() else { return false };
        match view.claims.get(agent.as_str()) {
            Some((holder, at)) if *holder != task && now.saturating_sub(*at) < TRIAL_CLAIM_MS_MAX => false,
            _ => {
                view.claims.insert(agent.to_string(), (task, now));
                true
            }
        }
    }

    /// Notes a heartbeat this process sent for `agent` at `at_ms`.
    pub(crate) fn beat(&self, agent: &AgentId, at_ms: i64) {
        if let Ok(mut view) = self.view.write() {
            let last = view.beats.entry(agent.to_string()).or_insert(at_ms);
            *last = (*last).max(at_ms);
        }
    }

    /// Whether there is a read model to refresh from.
    pub(crate) fn has_read_model(&self) -> bool {
        self.source.is_some()
    }
}

/// Refreshes `standing` every [`STANDING_REFRESH_MS`] until `shutdown` (nothing to do, and no
/// task, without a read model).
pub(crate) fn spawn_refresher(
    standing: Arc<Standing>,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if !standing.has_read_model() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(STANDING_REFRESH_MS)) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                refreshed = standing.refresh() => {
                    if let Err(error) = refreshed {
                        tracing::warn!(%error, "agent health and reputation not refreshed; the previous view stays");
                    }
                }
            }
        }
    }))
}
