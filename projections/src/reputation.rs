//! Reputation per agent and capability: how likely the agent is to succeed at the capability,
//! from the outcomes of its attempts, smoothed by a prior and fading with time.
//!
//! # The formula
//! Every outcome adds weight to the agent's *success evidence* `s` or *failure evidence* `f`:
//!
//! | outcome | s | f |
//! |---|---|---|
//! | result verified | +1 | |
//! | failed, the agent's fault (`cause: agent`) | | +1 |
//! | timed out | | +1 |
//! | result refused by verification (`cause: verification`) | | +2 (a forged or tampered result is worse than no result) |
//! | failed reaching the agent (`cause: transport`) | | +0.25 (maybe the network, not the agent) |
//! | failed because the task cannot succeed (`cause: task`) | | 0 (not the agent's fault; counted apart) |
//! | quality rated `q` (0 to 1) | +q | +(1 − q) |
//!
//! Before adding, the evidence decays by `2^(−Δt / H)` with the half-life
//! [`REPUTATION_HALF_LIFE_MS`] `H` = 24 hours, Δt the time since the last update (event time,
//! so a rebuild computes the same numbers). The score is the mean of a Beta posterior whose
//! prior is Beta(α₀, β₀) = Beta(2, 2) ([`PRIOR_SUCCESSES`], [`PRIOR_FAILURES`]):
//!
//! ```text
//! score(now) = (α₀ + s·d) / (α₀ + β₀ + (s + f)·d),   d = 2^(−(now − last update) / H)
//! ```
//!
//! A new agent scores 0.5 — neither trusted nor shunned — and the prior's weight of four
//! outcomes keeps one early success or failure from swinging it far.
//!
//! # Worked example
//! An agent registers: s = f = 0, score = 2 / 4 = **0.50**. Within a few minutes it succeeds 8
//! times and fails twice (decay over minutes is negligible): s = 8, f = 2, score = (2 + 8) /
//! (4 + 10) = **0.714**. It then does nothing for a day: d = 2^(−1) = 0.5, so the evidence
//! counts as s = 4, f = 1 and the score drifts back toward the prior: (2 + 4) / (4 + 5) =
//! **0.667**. After a week idle (d = 2^(−7)) it is 0.506: old behaviour has faded.
//!
//! Latency (an exponentially weighted mean of successful attempts' latency, weight
//! [`LATENCY_EWMA_WEIGHT`]) and quality are kept beside the score for matching to weigh.

use std::collections::HashMap;

use async_trait::async_trait;
use events::RecordedEvent;
use events::task::FailureCause;
use serde::Serialize;

use crate::Result;
use crate::db::{Db, Tx, execute, fetch, read};
use crate::outcomes::{self, Happening, Outcome, OutcomeKind};
use crate::runner::Projection;

/// The half-life of evidence: 24 hours. Agents run many tasks a day, so yesterday's behaviour
/// counts half as much as today's, and last week's hardly at all.
pub const REPUTATION_HALF_LIFE_MS: f64 = 24.0 * 3_600_000.0;

/// α₀: the prior's successes.
pub const PRIOR_SUCCESSES: f64 = 2.0;

/// β₀: the prior's failures.
pub const PRIOR_FAILURES: f64 = 2.0;

/// The weight of the newest latency in its running mean.
pub const LATENCY_EWMA_WEIGHT: f64 = 0.2;

/// The failure weight of a result refused by verification.
pub const VERIFICATION_FAILURE_WEIGHT: f64 = 2.0;

/// The failure weight of a transport failure.
pub const TRANSPORT_FAILURE_WEIGHT: f64 = 0.25;

/// The reputation projection.
pub(crate) struct ReputationProjection;

/// One agent's reputation for one capability.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
pub struct Reputation {
    /// The agent.
    pub agent_id: String,
    /// The capability.
    pub capability: String,
    /// Success evidence as of `decayed_at_ms`.
    pub success_weight: f64,
    /// Failure evidence as of `decayed_at_ms`.
    pub failure_weight: f64,
    /// When the evidence was last decayed (the last outcome's time).
    pub decayed_at_ms: i64,
    /// Verified results, all time.
    pub successes: i64,
    /// Failures that were the agent's fault.
    pub failures_agent: i64,
    /// Timeouts.
    pub failures_timeout: i64,
    /// Failures reaching the agent.
    pub failures_transport: i64,
    /// Results refused by verification.
    pub failures_verification: i64,
    /// Failures because the task could not succeed (no effect on the score).
    pub task_errors: i64,
    /// Running mean latency of successful attempts, ms.
    pub latency_ms_ewma: Option<f64>,
    /// Running mean quality rating, 0 to 1.
    pub quality_ewma: Option<f64>,
}

fn decay_factor(from_ms: i64, to_ms: i64) -> f64 {
    let elapsed = (to_ms.saturating_sub(from_ms)).max(0) as f64;
    (-elapsed / REPUTATION_HALF_LIFE_MS).exp2()
}

impl Reputation {
    fn new(agent_id: &str, capability: &str, at_ms: i64) -> Self {
        Self {
            agent_id: agent_id.to_string(),
            capability: capability.to_string(),
            success_weight: 0.0,
            failure_weight: 0.0,
            decayed_at_ms: at_ms,
            successes: 0,
            failures_agent: 0,
            failures_timeout: 0,
            failures_transport: 0,
            failures_verification: 0,
            task_errors: 0,
            latency_ms_ewma: None,
            quality_ewma: None,
        }
    }

    /// The score at `now_ms` (see the module docs).
    pub fn score_at(&self, now_ms: i64) -> f64 {
        let d = decay_factor(self.decayed_at_ms, now_ms);
        (PRIOR_SUCCESSES + self.success_weight * d)
            / (PRIOR_SUCCESSES + PRIOR_FAILURES + (self.success_weight + self.failure_weight) * d)
    }

    fn apply(&mut self, outcome: &Outcome) {
        let d = decay_factor(self.decayed_at_ms, outcome.at_ms);
        self.success_weight *= d;
        self.failure_weight *= d;
        self.decayed_at_ms = self.decayed_at_ms.max(outcome.at_ms);
        let (s, f) = match outcome.kind {
            OutcomeKind::Success => {
                self.successes += 1;
                if let Some(latency) = outcome.latency_ms {
                    let latency = latency as f64;
                    self.latency_ms_ewma = Some(
                        self.latency_ms_ewma.map_or(latency, |m| m + LATENCY_EWMA_WEIGHT * (latency - m)),
                    );
                }
                (1.0, 0.0)
            }
            OutcomeKind::Failure(FailureCause::Agent) => {
                self.failures_agent += 1;
                (0.0, 1.0)
            }
            OutcomeKind::Failure(FailureCause::Verification) => {
                self.failures_verification += 1;
                (0.0, VERIFICATION_FAILURE_WEIGHT)
            }
            OutcomeKind::Failure(FailureCause::Transport) => {
                self.failures_transport += 1;
                (0.0, TRANSPORT_FAILURE_WEIGHT)
            }
            OutcomeKind::Failure(FailureCause::Task) => {
                self.task_errors += 1;
                (0.0, 0.0)
            }
            OutcomeKind::TimedOut => {
                self.failures_timeout += 1;
                (0.0, 1.0)
            }
            OutcomeKind::Quality(q) => {
                self.quality_ewma = Some(self.quality_ewma.map_or(q, |m| m + LATENCY_EWMA_WEIGHT * (q - m)));
                (q, 1.0 - q)
            }
        };
        self.success_weight += s;
        self.failure_weight += f;
    }
}

/// Reads reputation; what matching calls.
#[derive(Clone, Debug)]
pub struct ReputationReader {
    db: Db,
}

const SELECT: &str = "SELECT agent_id, capability, success_weight, failure_weight, decayed_at_ms, successes, \
     failures_agent, failures_timeout, failures_transport, failures_verification, task_errors, latency_ms_ewma, \
     quality_ewma FROM projection_reputation";

impl ReputationReader {
    /// A reader over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// The agent's score for the capability now, 0 to 1 (0.5 when nothing is known).
    pub async fn score(&self, agent_id: &str, capability: &str) -> Result<f64> {
        self.score_at(agent_id, capability, events::now_ms()).await
    }

    /// The score at a given time (for tests and replays).
    pub async fn score_at(&self, agent_id: &str, capability: &str, now_ms: i64) -> Result<f64> {
        let prior = PRIOR_SUCCESSES / (PRIOR_SUCCESSES + PRIOR_FAILURES);
        Ok(self.get(agent_id, capability).await?.map_or(prior, |r| r.score_at(now_ms)))
    }

    /// The full record.
    pub async fn get(&self, agent_id: &str, capability: &str) -> Result<Option<Reputation>> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE agent_id = $1 AND capability = $2"));
        Ok(read!(&self.db, fetch_optional, Reputation, sql, agent_id, capability)?)
    }

    /// Every record of one agent (all capabilities), or of everyone.
    pub async fn list(&self, agent_id: Option<&str>) -> Result<Vec<Reputation>> {
        Ok(match agent_id {
            Some(agent) => {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE agent_id = $1 ORDER BY capability"));
                read!(&self.db, fetch_all, Reputation, sql, agent)?
            }
            None => {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY agent_id, capability"));
                read!(&self.db, fetch_all, Reputation, sql)?
            }
        })
    }
}

#[async_trait]
impl Projection for ReputationProjection {
    fn tables(&self) -> &'static [&'static str] {
        &["projection_reputation", "projection_reputation_tasks"]
    }

    fn digest_queries(&self, _postgres: bool) -> &'static [&'static str] {
        &[
            "SELECT agent_id || '|' || capability || '|' || CAST(success_weight AS TEXT) || '|' \
             || CAST(failure_weight AS TEXT) || '|' || CAST(decayed_at_ms AS TEXT) || '|' || CAST(successes AS TEXT) \
             || '|' || CAST(failures_agent AS TEXT) || '|' || CAST(failures_timeout AS TEXT) || '|' \
             || CAST(failures_transport AS TEXT) || '|' || CAST(failures_verification AS TEXT) || '|' \
             || CAST(task_errors AS TEXT) || '|' || COALESCE(CAST(latency_ms_ewma AS TEXT), '-') || '|' \
             || COALESCE(CAST(quality_ewma AS TEXT), '-') FROM projection_reputation ORDER BY agent_id, capability",
            "SELECT task_id || '|' || capability || '|' || COALESCE(CAST(attempt_start_ms AS TEXT), '-') || '|' \
             || COALESCE(CAST(result_latency_ms AS TEXT), '-') FROM projection_reputation_tasks ORDER BY task_id",
        ]
    }

    async fn apply(&mut self, tx: &mut Tx, events: &[RecordedEvent]) -> Result<()> {
        let happenings = outcomes::extract(tx, "projection_reputation_tasks", events).await?;
        let outcomes: Vec<&Outcome> = happenings
            .iter()
            .filter_map(|h| match h {
                Happening::Ended(outcome) => Some(outcome),
                Happening::Selected(_) => None,
            })
            .collect();
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut rows: HashMap<(String, String), Reputation> = HashMap::new();
        let mut order: Vec<(String, String)> = Vec::new();
        for outcome in outcomes {
            let key = (outcome.agent_id.clone(), outcome.capability.clone());
            if !rows.contains_key(&key) {
                let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE agent_id = $1 AND capability = $2"));
                let stored =
                    fetch!(&mut *tx, fetch_optional, Reputation, sql, key.0.as_str(), key.1.as_str())?;
                let row = stored.unwrap_or_else(|| Reputation::new(&key.0, &key.1, outcome.at_ms));
                rows.insert(key.clone(), row);
                order.push(key.clone());
            }
            if let Some(row) = rows.get_mut(&key) {
                row.apply(outcome);
            }
        }
        // Few agent × capability pairs change per batch: one upsert each is cheap on both
        // backends.
        for key in order {
            let Some(r) = rows.remove(&key) else { continue };
            execute!(
                &mut *tx,
                "INSERT INTO projection_reputation (agent_id, capability, success_weight, failure_weight, \
                 decayed_at_ms, successes, failures_agent, failures_timeout, failures_transport, \
                 failures_verification, task_errors, latency_ms_ewma, quality_ewma) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (agent_id, capability) DO UPDATE SET success_weight = excluded.success_weight, \
                 failure_weight = excluded.failure_weight, decayed_at_ms = excluded.decayed_at_ms, \
                 successes = excluded.successes, failures_agent = excluded.failures_agent, \
                 failures_timeout = excluded.failures_timeout, failures_transport = excluded.failures_transport, \
                 failures_verification = excluded.failures_verification, task_errors = excluded.task_errors, \
                 latency_ms_ewma = excluded.latency_ms_ewma, quality_ewma = excluded.quality_ewma",
                r.agent_id,
                r.capability,
                r.success_weight,
                r.failure_weight,
                r.decayed_at_ms,
                r.successes,
                r.failures_agent,
                r.failures_timeout,
                r.failures_transport,
                r.failures_verification,
                r.task_errors,
                r.latency_ms_ewma,
                r.quality_ewma
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: OutcomeKind, at_ms: i64) -> Outcome {
        Outcome {
            task_id: None,
            agent_id: "a".into(),
            capability: "c".into(),
            kind,
            latency_ms: Some(100),
            at_ms,
        }
    }

    #[test]
    fn the_worked_example_of_the_docs() {
        let mut r = Reputation::new("a", "c", 0);
        assert_eq!(r.score_at(0), 0.5);
        for i in 0..8 {
            r.apply(&outcome(OutcomeKind::Success, i));
        }
        r.apply(&outcome(OutcomeKind::Failure(FailureCause::Agent), 8));
        r.apply(&outcome(OutcomeKind::TimedOut, 9));
        assert!((r.score_at(9) - 10.0 / 14.0).abs() < 1e-6, "{}", r.score_at(9));
        let day = REPUTATION_HALF_LIFE_MS as i64;
        assert!((r.score_at(9 + day) - 6.0 / 9.0).abs() < 1e-6);
        assert!((r.score_at(9 + 7 * day) - 0.506).abs() < 1e-3);
        assert_eq!(r.successes, 8);
        assert_eq!((r.failures_agent, r.failures_timeout), (1, 1));
    }

    #[test]
    fn causes_weigh_differently() {
        let score = |kind| {
            let mut r = Reputation::new("a", "c", 0);
            r.apply(&outcome(kind, 0));
            r.score_at(0)
        };
        let task = score(OutcomeKind::Failure(FailureCause::Task));
        let transport = score(OutcomeKind::Failure(FailureCause::Transport));
        let agent = score(OutcomeKind::Failure(FailureCause::Agent));
        let forged = score(OutcomeKind::Failure(FailureCause::Verification));
        assert_eq!(task, 0.5);
        assert!(task > transport && transport > agent && agent > forged);
        assert!(score(OutcomeKind::Quality(0.9)) > 0.5 && score(OutcomeKind::Quality(0.1)) < 0.5);
    }
}
