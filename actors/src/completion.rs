//! Phase 8, completion: `egress_screened` → `task_completed` with the output to deliver (the
//! redacted one when egress screening redacted it).

use async_trait::async_trait;
use events::task::{TaskCompleted, TaskEvent, TaskStatus};
use events::{DomainEvent, RecordedEvent};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Phase, decide_and_append};

/// Phase 8 (completion).
pub(crate) struct Completion;

#[async_trait]
impl Phase for Completion {
    fn name(&self) -> &'static str {
        "completion"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["egress_screened"]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let TaskEvent::EgressScreened(screened) = TaskEvent::from_recorded(input)? else {
            return Ok(Handled::Done);
        };
        decide_and_append(ctx, input, self.name(), |loaded| {
            let state = &loaded.state;
            if state.status != TaskStatus::EgressScreened {
                return Vec::new();
            }
            let (Some(agent_id), Some(result)) = (state.agent_id.clone(), &state.result) else {
                return Vec::new();
            };
            let output = screened.redacted_output.clone().unwrap_or_else(|| result.result.output.clone());
            vec![("completed".into(), TaskEvent::Completed(TaskCompleted { agent_id, output }))]
        })
        .await
    }
}
