//! Phase 8, completion: `egress_screened` → `task_completed` with the output to deliver (the
//! redacted one when egress screening redacted it).

use async_trait::async_trait;
use events::task::{EgressScreened, TaskCompleted, TaskEvent, TaskStatus};
use events::{DomainEvent, RecordedEvent};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append};

/// Phase 8 (completion).
pub(crate) struct Completion;

#[async_trait]
impl Phase for Completion {
    fn name(&self) -> &'static str {
        "completion"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[events::TaskEventKind::EgressScreened]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let TaskEvent::EgressScreened(screened) = TaskEvent::from_recorded(input)? else {
            return Ok(Handled::Done);
        };
        decide_and_append(ctx, input, self.name(), |loaded| decide(loaded, &screened)).await
    }
}

/// The decider: on an egress-screened result, `task_completed` with the output to deliver —
/// the redacted one when egress screening redacted it; else nothing.
pub(crate) fn decide(loaded: &Loaded, screened: &EgressScreened) -> Vec<Output> {
    let state = &loaded.state;
    if state.status != TaskStatus::EgressScreened {
        return Vec::new();
    }
    let (Some(agent_id), Some(result)) = (state.agent_id.clone(), &state.result) else {
        return Vec::new();
    };
    let output = screened.redacted_output.clone().unwrap_or_else(|| result.result.output.clone());
    vec![("completed".into(), TaskEvent::Completed(TaskCompleted { agent_id, output }))]
}

#[cfg(test)]
mod tests {
    use events::task::{EgressScreened, TaskStatus};

    use super::*;
    use crate::egress::tests::with_result;

    #[test]
    fn the_completed_output_is_the_redacted_one_when_egress_redacted() {
        let task = with_result(TaskStatus::EgressScreened, serde_json::json!("raw"));
        let plain = EgressScreened { findings: Vec::new(), redacted_output: None };
        let outputs = decide(&task, &plain);
        let [(_, TaskEvent::Completed(done))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(done.output, serde_json::json!("raw"));
        let redacted =
            EgressScreened { findings: Vec::new(), redacted_output: Some(serde_json::json!("[x]")) };
        let outputs = decide(&task, &redacted);
        let [(_, TaskEvent::Completed(done))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(done.output, serde_json::json!("[x]"));
        let stored = with_result(TaskStatus::Stored, serde_json::json!("raw"));
        assert!(decide(&stored, &plain).is_empty(), "not before egress screening");
    }
}
