//! Phase 4, envelope sealing: `agent_selected` → `envelope_sealed`. The federation key signs
//! the blake3 hash of the envelope: task, attempt, agent, capability, the (screened)
//! description, input, context, and the deadline as the envelope's expiry.

use async_trait::async_trait;
use events::task::{EnvelopeSealed, TaskEvent, TaskStatus};
use events::{RecordedEvent, SealedEnvelope, TaskEnvelope};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Phase, decide_and_append};

/// Phase 4.
pub(crate) struct Sealing;

#[async_trait]
impl Phase for Sealing {
    fn name(&self) -> &'static str {
        "sealing"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[events::TaskEventKind::AgentSelected]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        decide_and_append(ctx, input, self.name(), |loaded| {
            if loaded.version != input.version {
                return Vec::new(); // a later event answered this selection already
            }
            let Some(envelope) = decide(loaded, ctx.clock.now_ms()) else { return Vec::new() };
            // The effect after the decision: the federation key signs the envelope.
            match SealedEnvelope::seal(envelope, &ctx.federation) {
                Ok(envelope) => {
                    vec![("sealed".into(), TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope }))]
                }
                Err(error) => {
                    tracing::error!(task_id = %loaded.task_id, %error, "cannot seal an envelope");
                    Vec::new()
                }
            }
        })
        .await
    }
}

/// The decider: for a task whose agent was just selected, the envelope to seal — the task,
/// attempt, agent, capability, the (screened) description, input and context, issued `now`
/// and expiring at the task's deadline; else nothing.
pub(crate) fn decide(loaded: &Loaded, now: i64) -> Option<TaskEnvelope> {
    let state = &loaded.state;
    if state.status != TaskStatus::AgentSelected {
        return None;
    }
    let (Some(spec), Some(agent_id)) = (state.spec(), state.agent_id.clone()) else { return None };
    Some(TaskEnvelope {
        task_id: loaded.task_id,
        attempt: state.attempt,
        agent_id,
        capability: spec.capability.clone(),
        description: state.description.clone().unwrap_or_default(),
        input: spec.input.clone(),
        context: state
            .context
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or(serde_json::Value::Null),
        issued_at_ms: now,
        expires_at_ms: loaded.deadline_ms(),
    })
}

#[cfg(test)]
mod tests {
    use events::task::AgentSelected;
    use events::{AgentId, KeyPair, TaskId, TaskSpec};

    use super::*;
    use crate::phase::tests::loaded_after;

    #[test]
    fn a_selected_agent_gets_an_envelope_for_its_attempt_expiring_at_the_deadline() {
        let mut spec = TaskSpec::new("echo", "say hi");
        spec.timeout_ms = 5_000;
        spec.input = serde_json::json!({"text": "hi"});
        let agent_id = AgentId::new("a1").unwrap();
        let task = loaded_after(
            TaskId::new(),
            spec,
            &KeyPair::generate(),
            vec![TaskEvent::AgentSelected(AgentSelected {
                agent_id: agent_id.clone(),
                attempt: 1,
                candidates: Vec::new(),
            })],
        );
        let envelope = decide(&task, 2_000).expect("an envelope");
        assert_eq!(envelope.agent_id, agent_id);
        assert_eq!(envelope.attempt, 1);
        assert_eq!(envelope.issued_at_ms, 2_000, "the injected time");
        assert_eq!(envelope.expires_at_ms, 1_000 + 5_000, "submitted at 1,000 ms, 5 s to run");
        assert_eq!(envelope.input, serde_json::json!({"text": "hi"}));
        assert_eq!(envelope.description, "say hi");
    }

    #[test]
    fn nothing_is_sealed_before_a_selection() {
        let task = loaded_after(TaskId::new(), TaskSpec::new("echo", "x"), &KeyPair::generate(), Vec::new());
        assert!(decide(&task, 2_000).is_none());
    }
}
