//! Heartbeats of the agents this process hosts: one `agent_heartbeat` on the log
//! (`heartbeat-<agent>`) per agent every [`HEARTBEAT_INTERVAL_MS`], the first at start. The
//! health projection turns their freshness into health (an agent whose heartbeats stop is
//! degraded, then unhealthy); in-process agents live exactly as long as this process, so the
//! runtime beats for them, and stops at shutdown.
//!
//! Each beat's id is derived from the agent and the interval it falls in (`now` divided by
//! the interval), so a process restarted within an interval, or two processes hosting the same
//! agent, write one beat for that interval: the log answers `duplicate` to the second.

use events::signals::{AgentHeartbeat, HeartbeatEvent, heartbeat_stream};
use events::{AgentId, DomainEvent, EventId, ExpectedVersion, Metadata, now_ms};

use crate::error::Result;
use crate::phase::Ctx;

/// How often each hosted agent's heartbeat is sent: the vocabulary's default, 5 s — a third
/// of the age at which the health projection calls an agent degraded
/// (`projections::health::HEARTBEAT_DEGRADED_MS`, 15 s), so one late or lost beat is no
/// alarm.
pub const HEARTBEAT_INTERVAL_MS: u64 = events::signals::HEARTBEAT_INTERVAL_MS_DEFAULT;

/// The root of derived heartbeat ids.
const HEARTBEAT_ID_ROOT: EventId = EventId(uuid::Uuid::from_u128(0x7061_6e74_6865_6f6e_6865_6172_7462_6561));

/// The id of `agent`'s heartbeat for the interval holding `at_ms`.
pub(crate) fn beat_id(agent: &AgentId, at_ms: i64) -> EventId {
    let interval = at_ms.div_euclid(i64::try_from(HEARTBEAT_INTERVAL_MS).unwrap_or(i64::MAX));
    EventId::derived(HEARTBEAT_ID_ROOT, &format!("heartbeat {agent} {interval}"))
}

/// Sends one heartbeat for each hosted agent; returns how many the log recorded now (not
/// counting beats of this interval it held already). Stops at the first log failure.
pub(crate) async fn beat_all(ctx: &Ctx) -> Result<usize> {
    let mut written = 0;
    let mut agents: Vec<&AgentId> =
        ctx.agents.iter().filter(|(_, endpoint)| endpoint.is_hosted()).map(|(id, _)| id).collect();
    agents.sort();
    for agent in agents {
        let at = now_ms();
        let beat = HeartbeatEvent::Beat(AgentHeartbeat {
            agent_id: agent.clone(),
            tasks_in_flight: ctx.registry.in_flight(agent),
            sent_at_ms: at,
        });
        let mut metadata = Metadata::now("runtime");
        metadata.occurred_at_ms = at;
        let event = beat.to_new_event(beat_id(agent, at), metadata)?;
        let outcome = ctx.log.append(&heartbeat_stream(agent), ExpectedVersion::Any, vec![event]).await?;
        if !outcome.duplicate {
            written += 1;
        }
        ctx.standing.beat(agent, at);
    }
    Ok(written)
}

/// Beats every [`HEARTBEAT_INTERVAL_MS`] (the first beat is [`beat_all`] at start) until the
/// runtime shuts down; a failed round is logged and the next one tried.
pub(crate) fn spawn(ctx: std::sync::Arc<Ctx>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(HEARTBEAT_INTERVAL_MS);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                () = ctx.shutdown.cancelled() => break,
                beaten = beat_all(&ctx) => {
                    if let Err(error) = beaten {
                        tracing::warn!(%error, "heartbeats not sent; trying again next interval");
                    }
                }
            }
        }
    })
}
