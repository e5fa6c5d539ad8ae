//! What agents and reviewers report outside a task's own stream: heartbeats
//! (`heartbeat-<agent_id>`) and quality ratings of finished work (`feedback-<task_id>`).
//!
//! Heartbeats go to the log on the embedded default (one small event every
//! [`HEARTBEAT_INTERVAL_MS_DEFAULT`]); the health projection turns their freshness into an
//! agent's health. They live in their own category so task and agent folds never see them and
//! the audit ledger can leave them out.

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

domain_events! {
    /// Every event of a heartbeat stream.
    pub enum HeartbeatEvent: "heartbeat", kinds HeartbeatEventKind {
        /// Alive.
        Beat(AgentHeartbeat) = "agent_heartbeat" @ 1,
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
