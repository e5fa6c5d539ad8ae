//! Phase 4, envelope sealing: `agent_selected` → `envelope_sealed`. The federation key signs
//! the blake3 hash of the envelope: task, attempt, agent, capability, the (screened)
//! description, input, context, and the deadline as the envelope's expiry.

use async_trait::async_trait;
use events::task::{EnvelopeSealed, TaskEvent, TaskStatus};
use events::{RecordedEvent, SealedEnvelope, TaskEnvelope, now_ms};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Phase, decide_and_append};

/// Phase 4.
pub(crate) struct Sealing;

#[async_trait]
impl Phase for Sealing {
    fn name(&self) -> &'static str {
        "sealing"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["agent_selected"]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        decide_and_append(ctx, input, self.name(), |loaded| {
            let state = &loaded.state;
            if state.status != TaskStatus::AgentSelected || loaded.version != input.version {
                return Vec::new();
            }
            let (Some(spec), Some(agent_id)) = (state.spec(), state.agent_id.clone()) else {
                return Vec::new();
            };
            let envelope = TaskEnvelope {
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
                issued_at_ms: now_ms(),
                expires_at_ms: loaded.deadline_ms(),
            };
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
