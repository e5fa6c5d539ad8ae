//! Liveness outside the log: the last heartbeat of each agent, kept in one row per agent
//! (`agent_liveness`) and overwritten in place, and the pure rule that says when what those
//! beats say has changed enough to be recorded on the log.
//!
//! A beat every few seconds per agent made up a third of an idle federation's history, and
//! said nothing new 99 times in 100. So a beat is an upsert here, the health reader takes the
//! newer of this table's time and the projection's, and the log records only changes:
//! [`decide`] compares what was last recorded with what the last beat says now and answers the
//! [`events::signals::AgentLivenessChanged`] to append, if any. The event's id is derived from
//! the agent, the new liveness and the beat it judged ([`change_id`]), so processes watching
//! the same table record each change once.
//!
//! The table lives in the read models' database (the SQLite file, or PostgreSQL shared by
//! every process of a federation), so every process sees every agent's beats. It is not a
//! projection's table: a rebuild leaves it alone, and its rows are not derived from the log.

use events::signals::Liveness;
use events::{AgentId, EventId};

use crate::Result;
use crate::db::{Db, execute, read};
use crate::health::{HEARTBEAT_DEGRADED_MS, HEARTBEAT_UNHEALTHY_MS};

/// One agent's row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentLiveness {
    /// The agent.
    pub agent_id: String,
    /// Its last heartbeat, ms since the epoch.
    pub last_seen_ms: i64,
    /// The tasks it said it was running then.
    pub tasks_in_flight: i64,
    /// The last liveness recorded on the log for it (`None`: none yet).
    pub recorded: Option<String>,
}

impl AgentLiveness {
    /// The last liveness recorded on the log, typed.
    pub fn recorded(&self) -> Option<Liveness> {
        self.recorded.as_deref().and_then(Liveness::parse)
    }
}

/// What a heartbeat last seen at `last_seen_ms` says at `now_ms`: stale past
/// [`HEARTBEAT_DEGRADED_MS`], lost past [`HEARTBEAT_UNHEALTHY_MS`] (the health reader's
/// thresholds).
pub fn judge(last_seen_ms: i64, now_ms: i64) -> Liveness {
    let age = now_ms.saturating_sub(last_seen_ms);
    if age > HEARTBEAT_UNHEALTHY_MS {
        Liveness::Lost
    } else if age > HEARTBEAT_DEGRADED_MS {
        Liveness::Stale
    } else {
        Liveness::Live
    }
}

/// The change to record, if any: what the last beat says at `now_ms`, when it is not what was
/// last recorded. Pure.
pub fn decide(recorded: Option<Liveness>, last_seen_ms: i64, now_ms: i64) -> Option<Liveness> {
    let now = judge(last_seen_ms, now_ms);
    (recorded != Some(now)).then_some(now)
}

/// The root of derived liveness-change ids.
const CHANGE_ID_ROOT: EventId = EventId(uuid::Uuid::from_u128(0x7061_6e74_6865_6f6e_6c69_7665_6e65_7373));

/// The id of the event recording that `agent` became `liveness`, judged from its beat at
/// `last_seen_ms`: the same for every process that judges the same beat.
pub fn change_id(agent: &AgentId, liveness: Liveness, last_seen_ms: i64) -> EventId {
    EventId::derived(CHANGE_ID_ROOT, &format!("liveness {agent} {} {last_seen_ms}", liveness.as_str()))
}

/// The table. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LivenessTable {
    db: Db,
}

impl LivenessTable {
    /// The table of `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Notes a heartbeat of `agent` at `at_ms` (an older one than the row's changes nothing).
    pub async fn beat(&self, agent: &str, at_ms: i64, tasks_in_flight: i64) -> Result<()> {
        let mut tx = self.db.begin().await?;
        execute!(
            &mut tx,
            "INSERT INTO agent_liveness (agent_id, last_seen_ms, tasks_in_flight, recorded) \
             VALUES ($1, $2, $3, NULL) ON CONFLICT (agent_id) DO UPDATE SET \
             tasks_in_flight = CASE WHEN excluded.last_seen_ms >= agent_liveness.last_seen_ms \
             THEN excluded.tasks_in_flight ELSE agent_liveness.tasks_in_flight END, \
             last_seen_ms = CASE WHEN excluded.last_seen_ms > agent_liveness.last_seen_ms \
             THEN excluded.last_seen_ms ELSE agent_liveness.last_seen_ms END",
            agent,
            at_ms,
            tasks_in_flight
        )?;
        tx.commit().await
    }

    /// Notes that `liveness` is now the last one recorded on the log for `agent`.
    pub async fn mark_recorded(&self, agent: &str, liveness: Liveness) -> Result<()> {
        let mut tx = self.db.begin().await?;
        execute!(
            &mut tx,
            "UPDATE agent_liveness SET recorded = $1 WHERE agent_id = $2",
            liveness.as_str(),
            agent
        )?;
        tx.commit().await
    }

    /// Every agent's row, by agent.
    pub async fn list(&self) -> Result<Vec<AgentLiveness>> {
        Ok(read!(
            &self.db,
            fetch_all,
            AgentLiveness,
            "SELECT agent_id, last_seen_ms, tasks_in_flight, recorded FROM agent_liveness ORDER BY agent_id"
        )?)
    }

    /// One agent's row.
    pub async fn get(&self, agent: &str) -> Result<Option<AgentLiveness>> {
        Ok(read!(
            &self.db,
            fetch_optional,
            AgentLiveness,
            "SELECT agent_id, last_seen_ms, tasks_in_flight, recorded FROM agent_liveness WHERE agent_id = $1",
            agent
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    #[test]
    fn a_fresh_beat_with_nothing_recorded_is_recorded_live() {
        assert_eq!(decide(None, NOW - 1_000, NOW), Some(Liveness::Live));
    }

    #[test]
    fn nothing_is_recorded_while_what_the_beat_says_does_not_change() {
        assert_eq!(decide(Some(Liveness::Live), NOW - HEARTBEAT_DEGRADED_MS, NOW), None);
        assert_eq!(decide(Some(Liveness::Stale), NOW - HEARTBEAT_DEGRADED_MS - 1, NOW), None);
        assert_eq!(decide(Some(Liveness::Lost), NOW - 10 * HEARTBEAT_UNHEALTHY_MS, NOW), None);
    }

    #[test]
    fn beats_that_stop_go_stale_then_lost_and_a_new_beat_makes_it_live() {
        assert_eq!(decide(Some(Liveness::Live), NOW - HEARTBEAT_DEGRADED_MS - 1, NOW), Some(Liveness::Stale));
        assert_eq!(
            decide(Some(Liveness::Stale), NOW - HEARTBEAT_UNHEALTHY_MS - 1, NOW),
            Some(Liveness::Lost)
        );
        // A process that was not watching while the beats stopped records lost at once.
        assert_eq!(decide(Some(Liveness::Live), NOW - HEARTBEAT_UNHEALTHY_MS - 1, NOW), Some(Liveness::Lost));
        assert_eq!(decide(Some(Liveness::Lost), NOW, NOW), Some(Liveness::Live));
    }

    #[test]
    fn processes_judging_the_same_beat_derive_the_same_id() {
        let agent = AgentId::new("echo").unwrap();
        assert_eq!(change_id(&agent, Liveness::Lost, 5), change_id(&agent, Liveness::Lost, 5));
        assert_ne!(change_id(&agent, Liveness::Lost, 5), change_id(&agent, Liveness::Live, 5));
        assert_ne!(change_id(&agent, Liveness::Live, 5), change_id(&agent, Liveness::Live, 6));
    }
}
