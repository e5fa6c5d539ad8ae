//! The supervisor: starts one [`PhaseActor`] per phase, linked to it, and restarts a phase
//! actor that fails (its pump met errors it could not get past, or its subscription would not
//! open) after a short backoff. A restarted actor reopens its durable subscription and resumes
//! from the last acknowledged input; inputs that were in flight are delivered again and the
//! handlers' derived ids keep their outputs single.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::phase::{Ctx, Phase, PhaseActor, PhaseArgs, PhaseMsg};

/// The wait before restarting a failed phase actor, doubled for each consecutive failure.
pub const RESTART_DELAY_MS_BASE: u64 = 100;

/// The longest wait before a restart.
pub const RESTART_DELAY_MS_MAX: u64 = 5_000;

/// How long the supervisor waits for its children when it stops.
pub const CHILDREN_STOP_MS_MAX: u64 = 15_000;

/// Messages of the supervisor.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Start (again) the phase at this index.
    Start(usize),
    /// Make a phase's actor fail, as a fault would (for fault-injection tests).
    Fail(String, RpcReplyPort<bool>),
    /// How many restarts so far.
    Restarts(RpcReplyPort<u32>),
    /// Inputs handled so far by each phase's current actor.
    Handled(RpcReplyPort<Vec<(&'static str, u64)>>),
}

/// The supervisor's state.
pub struct SupervisorState {
    ctx: Arc<Ctx>,
    phases: Vec<Arc<dyn Phase>>,
    children: HashMap<ActorId, (usize, ActorRef<PhaseMsg>)>,
    failures: Vec<u32>,
    restarts: u32,
}

/// The supervisor of the phase actors.
pub(crate) struct Supervisor;

/// What the supervisor starts with.
pub(crate) struct SupervisorArgs {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) phases: Vec<Arc<dyn Phase>>,
}

impl Supervisor {
    async fn start_child(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, index: usize) {
        let Some(phase) = state.phases.get(index).cloned() else { return };
        let args = PhaseArgs { ctx: Arc::clone(&state.ctx), phase: Arc::clone(&phase) };
        match Actor::spawn_linked(None, PhaseActor, args, myself.get_cell()).await {
            Ok((child, _handle)) => {
                state.children.insert(child.get_id(), (index, child));
            }
            Err(error) => {
                tracing::warn!(phase = phase.name(), %error, "phase actor did not start; retrying");
                Self::schedule_restart(myself, state, index);
            }
        }
    }

    fn schedule_restart(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, index: usize) {
        if state.ctx.shutdown.is_cancelled() {
            return;
        }
        let failures = state.failures.get(index).copied().unwrap_or(0);
        if let Some(f) = state.failures.get_mut(index) {
            *f = f.saturating_add(1);
        }
        state.restarts += 1;
        let delay = (RESTART_DELAY_MS_BASE << failures.min(10)).min(RESTART_DELAY_MS_MAX);
        myself.send_after(Duration::from_millis(delay), move || SupervisorMsg::Start(index));
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let count = args.phases.len();
        let mut state = SupervisorState {
            ctx: args.ctx,
            phases: args.phases,
            children: HashMap::new(),
            failures: vec![0; count],
            restarts: 0,
        };
        for index in 0..count {
            let phase = Arc::clone(&state.phases[index]);
            let args = PhaseArgs { ctx: Arc::clone(&state.ctx), phase };
            // At start a phase that cannot subscribe is a startup failure, reported to the caller.
            let (child, _) = Actor::spawn_linked(None, PhaseActor, args, myself.get_cell()).await?;
            state.children.insert(child.get_id(), (index, child));
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Start(index) => {
                if !state.ctx.shutdown.is_cancelled() {
                    Self::start_child(&myself, state, index).await;
                }
            }
            SupervisorMsg::Fail(name, reply) => {
                let child = state
                    .children
                    .values()
                    .find(|(index, _)| state.phases.get(*index).is_some_and(|p| p.name() == name));
                let found = match child {
                    Some((_, child)) => {
                        child.cast(PhaseMsg::PumpFailed(format!("{name} made to fail"))).is_ok()
                    }
                    None => false,
                };
                let _ = reply.send(found);
            }
            SupervisorMsg::Restarts(reply) => {
                let _ = reply.send(state.restarts);
            }
            SupervisorMsg::Handled(reply) => {
                let mut out = Vec::new();
                for (index, child) in state.children.values() {
                    let name = state.phases.get(*index).map_or("?", |p| p.name());
                    let handled = ractor::call_t!(child, PhaseMsg::Handled, 1_000).unwrap_or(0);
                    out.push((name, handled));
                }
                out.sort();
                let _ = reply.send(out);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        let Some((index, _)) = state.children.remove(&cell.get_id()) else { return Ok(()) };
        if state.ctx.shutdown.is_cancelled() {
            return Ok(());
        }
        let name = state.phases.get(index).map_or("?", |p| p.name());
        tracing::warn!(phase = name, reason = %why, "phase actor ended; restarting it");
        Self::schedule_restart(&myself, state, index);
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        _state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(
                Some("shutdown".into()),
                Some(Duration::from_millis(CHILDREN_STOP_MS_MAX)),
            )
            .await;
        Ok(())
    }
}
