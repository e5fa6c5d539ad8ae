//! Heartbeats of the agents this process hosts, and the watch that records changes of any
//! agent's liveness on the log.
//!
//! Every [`HEARTBEAT_INTERVAL_MS`] (the first at start) each hosted agent's beat is written to
//! the liveness table of the read models' database ([`projections::LivenessTable`]): one row
//! per agent, overwritten in place, never the log. In-process agents live exactly as long as
//! this process, so the runtime beats for them, and stops at shutdown; an agent hosted by two
//! processes stays live while either beats.
//!
//! After each round the watch reads every agent's row and asks the pure
//! [`projections::liveness::decide`] whether what the last beat says (live, stale, lost) differs
//! from what the log last recorded; a change is appended as `agent_liveness_changed` with an id
//! derived from the agent, the new liveness and the beat judged, so processes watching the same
//! table record it once (the log answers `duplicate` to the others). An idle federation's log
//! stays still; an agent whose process died is recorded stale, then lost, by whichever process
//! is left. Without a read model there is no table and nothing beats (nothing would read it).

use events::signals::{AgentLivenessChanged, HeartbeatEvent, heartbeat_stream};
use events::{AgentId, DomainEvent, ExpectedVersion, Metadata};
use projections::LivenessTable;
use projections::liveness::{change_id, decide};

use crate::error::Result;
use crate::phase::Ctx;

/// How often each hosted agent's heartbeat is sent: the vocabulary's default, 5 s — a third
/// of the age at which the health projection calls an agent degraded
/// (`projections::health::HEARTBEAT_DEGRADED_MS`, 15 s), so one late or lost beat is no
/// alarm.
pub const HEARTBEAT_INTERVAL_MS: u64 = events::signals::HEARTBEAT_INTERVAL_MS_DEFAULT;

/// Writes one heartbeat for each hosted agent to the liveness table; returns how many.
/// Stops at the first failure.
pub(crate) async fn beat_all(ctx: &Ctx) -> Result<usize> {
    let Some(table) = &ctx.liveness else { return Ok(0) };
    let mut agents: Vec<&AgentId> =
        ctx.agents.iter().filter(|(_, endpoint)| endpoint.is_hosted()).map(|(id, _)| id).collect();
    agents.sort();
    for agent in &agents {
        let at = ctx.clock.now_ms();
        let in_flight = i64::from(ctx.registry.in_flight(agent));
        table.beat(agent.as_str(), at, in_flight).await?;
        ctx.standing.beat(agent, at);
    }
    Ok(agents.len())
}

/// Records on the log every change of an agent's liveness since the last one recorded (every
/// agent with a row, hosted here or not); returns the changes this call appended.
pub(crate) async fn watch(ctx: &Ctx, table: &LivenessTable) -> Result<usize> {
    let now = ctx.clock.now_ms();
    let mut appended = 0;
    for row in table.list().await? {
        let Some(liveness) = decide(row.recorded(), row.last_seen_ms, now) else { continue };
        // A row's agent id came from an agent id; one that no longer parses is left alone.
        let Ok(agent) = AgentId::new(&row.agent_id) else { continue };
        let change = HeartbeatEvent::LivenessChanged(AgentLivenessChanged {
            agent_id: agent.clone(),
            liveness,
            last_seen_ms: row.last_seen_ms,
        });
        let mut metadata = Metadata::now("runtime");
        metadata.occurred_at_ms = now;
        let event = change.to_new_event(change_id(&agent, liveness, row.last_seen_ms), metadata)?;
        let outcome = ctx.log.append(&heartbeat_stream(&agent), ExpectedVersion::Any, vec![event]).await?;
        if !outcome.duplicate {
            appended += 1;
            tracing::info!(agent = %agent, liveness = liveness.as_str(), last_seen_ms = row.last_seen_ms, "agent liveness changed");
        }
        table.mark_recorded(agent.as_str(), liveness).await?;
    }
    Ok(appended)
}

/// One round: the beats, then the watch.
pub(crate) async fn round(ctx: &Ctx) -> Result<()> {
    beat_all(ctx).await?;
    if let Some(table) = &ctx.liveness {
        watch(ctx, table).await?;
    }
    Ok(())
}

/// Beats and watches every [`HEARTBEAT_INTERVAL_MS`] (the first round runs at start) until the
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
                done = round(&ctx) => {
                    if let Err(error) = done {
                        tracing::warn!(%error, "heartbeats not sent or liveness not watched; trying again next interval");
                    }
                }
            }
        }
    })
}
