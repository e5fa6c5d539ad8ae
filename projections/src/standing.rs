//! Every agent's health and reputation at one moment, as matching sees them: what
//! `pantheon agents` and the gateway's `/agents` show. Two queries, whatever the number of
//! agents.

use std::collections::HashMap;

use crate::Result;
use crate::db::Db;
use crate::health::{AgentHealth, HealthReader, HealthStatus};
use crate::reputation::{Reputation, ReputationReader};

/// The reason given for an agent the health projection has not seen yet.
pub const NOT_SEEN_REASON: &str = "no outcomes or heartbeats yet";

/// Health and reputation of every agent, read at `now_ms`.
#[derive(Clone, Debug)]
pub struct Standings {
    now_ms: i64,
    cool_down_ms: i64,
    health: HashMap<String, AgentHealth>,
    reputation: HashMap<String, Vec<Reputation>>,
}

impl Standings {
    /// Reads them from `db`, judging health with the deployment's `cool_down_ms`.
    pub async fn read(db: &Db, cool_down_ms: i64, now_ms: i64) -> Result<Self> {
        let health = HealthReader::new(db.clone())
            .list()
            .await?
            .into_iter()
            .map(|h| (h.agent_id.clone(), h))
            .collect();
        let mut reputation: HashMap<String, Vec<Reputation>> = HashMap::new();
        for r in ReputationReader::new(db.clone()).list(None).await? {
            reputation.entry(r.agent_id.clone()).or_default().push(r);
        }
        Ok(Self { now_ms, cool_down_ms, health, reputation })
    }

    /// The agent's health now, why, and its stored record (none for an agent never seen,
    /// which is healthy).
    pub fn health(&self, agent_id: &str) -> (HealthStatus, String, Option<&AgentHealth>) {
        match self.health.get(agent_id) {
            Some(record) => {
                let (status, reason) = record.status_with_cool_down(self.now_ms, self.cool_down_ms);
                (status, reason, Some(record))
            }
            None => (HealthStatus::Healthy, NOT_SEEN_REASON.to_string(), None),
        }
    }

    /// The agent's reputation per capability it has outcomes for.
    pub fn reputation(&self, agent_id: &str) -> &[Reputation] {
        self.reputation.get(agent_id).map_or(&[], Vec::as_slice)
    }

    /// A reputation's score at the moment these were read.
    pub fn score(&self, reputation: &Reputation) -> f64 {
        reputation.score_at(self.now_ms)
    }
}
