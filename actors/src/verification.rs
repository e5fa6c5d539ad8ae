//! Phase 6, result verification and storage: `result_received` → `result_verified` +
//! `result_stored` (one atomic append), or `task_failed` with the reason when the result does
//! not verify. The agent's signature is checked against the public key of its passport (read
//! from the agent's stream, the passport itself checked against the federation key), and the
//! result must answer exactly the envelope sealed for this attempt: forged, tampered and
//! replayed results are refused.

use async_trait::async_trait;
use events::agent::AgentEvent;
use events::task::{FailureCode, ResultStored, ResultVerified, TaskEvent, TaskFailed, TaskStatus};
use events::{AgentId, AgentState, Aggregate, DomainEvent, RecordedEvent, StreamId, codec, now_ms};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Phase, decide_and_append};

/// Phase 6.
async fn agent_state(ctx: &Ctx, agent: &AgentId) -> Result<AgentState> {
    let recorded = ctx.log.read_stream(&StreamId::agent(agent), 1, 10_000).await?;
    let mut state = AgentState::default();
    for event in &recorded {
        if let Ok(decoded) = AgentEvent::from_recorded(event) {
            let _ = state.apply(&decoded);
        }
    }
    Ok(state)
}

/// Agents' folded streams kept at most by the phase.
const AGENT_CACHE_COUNT_MAX: usize = 1_024;

/// An agent's stream folded at a version, and whether its passport's signature verified.
#[derive(Clone)]
struct KnownAgent {
    version: events::Version,
    state: AgentState,
    /// The federation's signature on the passport, checked once per version of the stream
    /// (its validity window is checked on every use).
    passport_signed: bool,
}

/// Phase 6. Keeps each agent's folded stream by version: a result costs one look at the
/// stream's version instead of a read of the whole stream and a passport verification, and
/// any change to the agent (suspension, retirement, a renewed passport) is a new version and
/// is read in full.
#[derive(Default)]
pub(crate) struct Verification {
    agents: std::sync::Mutex<std::collections::HashMap<AgentId, KnownAgent>>,
}

impl Verification {
    async fn agent(&self, ctx: &Ctx, agent: &AgentId) -> Result<KnownAgent> {
        let stream_id = StreamId::agent(agent);
        let version = ctx.log.stream_version(&stream_id).await?;
        let cached = self.agents.lock().ok().and_then(|known| known.get(agent).cloned());
        if let Some(known) = cached.filter(|known| known.version == version) {
            return Ok(known);
        }
        let state = agent_state(ctx, agent).await?;
        let federation = ctx.federation.public_key();
        let passport_signed = state
            .registration
            .as_ref()
            .is_some_and(|r| r.passport.verify(&federation, r.passport.passport.not_before_ms).is_ok());
        let known = KnownAgent { version, state, passport_signed };
        if let Ok(mut agents) = self.agents.lock() {
            if agents.len() >= AGENT_CACHE_COUNT_MAX {
                agents.clear();
            }
            agents.insert(agent.clone(), known.clone());
        }
        Ok(known)
    }
}

#[async_trait]
impl Phase for Verification {
    fn name(&self) -> &'static str {
        "verification"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["result_received"]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let TaskEvent::ResultReceived(received) = TaskEvent::from_recorded(input)? else {
            return Ok(Handled::Done);
        };
        let agent = received.result.result.agent_id.clone();
        let known = self.agent(ctx, &agent).await?;
        let agent_state = known.state;
        let federation = ctx.federation.public_key();
        decide_and_append(ctx, input, self.name(), |loaded| {
            let state = &loaded.state;
            if state.status != TaskStatus::ResultReceived || loaded.version != input.version {
                return Vec::new();
            }
            let (Some(result), Some(envelope)) = (&state.result, &state.envelope) else { return Vec::new() };
            let verdict = match &agent_state.registration {
                None => Err(format!("agent {agent} has no passport")),
                Some(registration) => {
                    let passport = &registration.passport.passport;
                    let now = now_ms();
                    if known.passport_signed
                        && (passport.not_before_ms..=passport.not_after_ms).contains(&now)
                    {
                        Ok(())
                    } else {
                        // Unsigned, or outside its window: the full check says which.
                        registration.passport.verify(&federation, now).map_err(|e| e.to_string())
                    }
                }
                .and_then(|()| {
                    result.verify(&registration.passport.passport, envelope).map_err(|e| e.to_string())
                }),
            };
            match verdict {
                Ok(()) => {
                    let output_bytes = codec::to_msgpack(&result.result.output).map_or(0, |b| b.len() as u64);
                    vec![
                        (
                            "verified".into(),
                            TaskEvent::ResultVerified(ResultVerified {
                                agent_id: agent.clone(),
                                result_hash: result.hash,
                            }),
                        ),
                        (
                            "stored".into(),
                            TaskEvent::ResultStored(ResultStored { result_hash: result.hash, output_bytes }),
                        ),
                    ]
                }
                Err(reason) => vec![(
                    "refused".into(),
                    TaskEvent::Failed(TaskFailed {
                        code: FailureCode::VerificationFailed,
                        reason: format!("the result did not verify: {reason}"),
                    }),
                )],
            }
        })
        .await
    }
}
