//! What agents and reviewers report outside a task's own stream: heartbeats
//! (`heartbeat-<agent_id>`) and quality ratings of finished work (`feedback-<task_id>`).
//!
//! Heartbeats themselves stay out of the log: an agent beats every
//! [`HEARTBEAT_INTERVAL_MS_DEFAULT`] into a table of last-seen times (`agent_liveness` in the
//! read models' database), and the log records only the changes of what those beats say
//! ([`AgentLivenessChanged`]: live, stale, lost), so an idle federation's history does not fill
//! with beats. `agent_heartbeat` events of earlier logs still fold. The category is its own,
//! so task and agent folds never see it and the audit ledger can leave it out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::domain_events;
use crate::id::{AgentId, StreamId, TaskId};

/// How often an agent should send a heartbeat by default, in ms.
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 5_000;

/// An agent says it is alive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentHeartbeat {
    /// The agent.
    pub agent_id: AgentId,
    /// Tasks it is running now.
    pub tasks_in_flight: u32,
    /// When the agent sent it, ms since the epoch (by the agent's clock).
    pub sent_at_ms: i64,
}

/// What an agent's last heartbeat says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Beating.
    Live,
    /// Its last beat is older than three intervals: at least degraded.
    Stale,
    /// Its last beat is older than a minute: unhealthy.
    Lost,
}

impl Liveness {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Stale => "stale",
            Self::Lost => "lost",
        }
    }

    /// The liveness a name stands for.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "live" => Some(Self::Live),
            "stale" => Some(Self::Stale),
            "lost" => Some(Self::Lost),
            _ => None,
        }
    }
}

/// What an agent's heartbeats say of it changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentLivenessChanged {
    /// The agent.
    pub agent_id: AgentId,
    /// What they say now.
    pub liveness: Liveness,
    /// Its last heartbeat, ms since the epoch.
    pub last_seen_ms: i64,
}

domain_events! {
    /// Every event of a heartbeat stream.
    pub enum HeartbeatEvent: "heartbeat", kinds HeartbeatEventKind {
        /// Alive (logs written before liveness left the log).
        Beat(AgentHeartbeat) = "agent_heartbeat" @ 1,
        /// Its heartbeats began, stopped or resumed.
        LivenessChanged(AgentLivenessChanged) = "agent_liveness_changed" @ 1,
    }
}

/// Someone rated the quality of a task's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QualityRated {
    /// The task.
    pub task_id: TaskId,
    /// The agent whose result is rated.
    pub agent_id: AgentId,
    /// The capability the task asked for.
    pub capability: String,
    /// The rating, 0 (useless) to 1 (perfect).
    pub score: f64,
    /// Who rated it.
    pub by: String,
}

domain_events! {
    /// Every event of a feedback stream.
    pub enum FeedbackEvent: "feedback", kinds FeedbackEventKind {
        /// A rating.
        QualityRated(QualityRated) = "quality_rated" @ 1,
    }
}

/// The heartbeat stream of an agent, `heartbeat-<agent_id>`.
pub fn heartbeat_stream(agent_id: &AgentId) -> StreamId {
    // An agent id is valid stream-id material (a-z 0-9 _ -), so this cannot fail.
    StreamId::new(format!("heartbeat-{agent_id}")).expect("an agent id makes a valid stream id")
}

/// The feedback stream of a task, `feedback-<task_id>`.
pub fn feedback_stream(task_id: TaskId) -> StreamId {
    // A UUID makes a valid stream id.
    StreamId::new(format!("feedback-{task_id}")).expect("a task id makes a valid stream id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainEvent;

    #[test]
    fn heartbeats_roundtrip_and_have_their_own_stream() {
        let agent = AgentId::new("echo").unwrap();
        assert_eq!(heartbeat_stream(&agent).as_str(), "heartbeat-echo");
        let beat =
            HeartbeatEvent::Beat(AgentHeartbeat { agent_id: agent, tasks_in_flight: 2, sent_at_ms: 7 });
        let payload = beat.to_payload().unwrap();
        let back = HeartbeatEvent::from_payload(&"agent_heartbeat".parse().unwrap(), 1, &payload).unwrap();
        assert_eq!(back, beat);
    }
}
