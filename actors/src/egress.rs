//! Phase 8, egress screening: `result_stored` → `egress_screened` (with findings and, when
//! something was redacted, the redacted output) or `task_failed` when the screener withholds
//! the result. Uses the same [`crate::screening::Screener`] seam as ingress.

use async_trait::async_trait;
use events::RecordedEvent;
use events::task::{EgressScreened, FailureCode, TaskEvent, TaskFailed, TaskStatus};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append};
use crate::screening::Verdict;

/// Phase 8 (egress).
pub(crate) struct EgressScreening;

#[async_trait]
impl Phase for EgressScreening {
    fn name(&self) -> &'static str {
        "egress"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[events::TaskEventKind::ResultStored]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        decide_and_append(ctx, input, self.name(), |loaded| {
            // The fact: the screener's verdict on the stored output (scanned only when there
            // is a stored output to decide on).
            let verdict = match (&loaded.state.status, &loaded.state.result) {
                (TaskStatus::Stored, Some(result)) => ctx.screener.screen_egress(&result.result.output),
                _ => return Vec::new(),
            };
            ctx.metrics.screened("egress", &verdict);
            decide(loaded, verdict)
        })
        .await
    }
}

/// The decider: on a stored result, `egress_screened` (with the redacted output when the
/// screener redacted it) or `task_failed` when it withholds the result; else nothing.
pub(crate) fn decide(loaded: &Loaded, verdict: Verdict) -> Vec<Output> {
    if loaded.state.status != TaskStatus::Stored {
        return Vec::new();
    }
    let Some(result) = &loaded.state.result else { return Vec::new() };
    let output = &result.result.output;
    match verdict {
        Verdict::Pass { findings, redacted } => {
            let redacted_output = redacted.map(|text| match output {
                serde_json::Value::String(_) => serde_json::Value::String(text),
                _ => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
            });
            vec![("screened".into(), TaskEvent::EgressScreened(EgressScreened { findings, redacted_output }))]
        }
        Verdict::Refuse { reason, .. } => vec![(
            "withheld".into(),
            TaskEvent::Failed(TaskFailed {
                code: FailureCode::ResultWithheld,
                reason: format!("egress screening withheld the result: {reason}"),
            }),
        )],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use events::task::{ScreeningFinding, TaskStatus};
    use events::{AgentId, AgentResult, Hash, KeyPair, SignedResult, TaskId, TaskSpec};

    use super::*;
    use crate::phase::tests::loaded_after;

    /// A task at `status` holding a result whose output is `output`.
    pub(crate) fn with_result(status: TaskStatus, output: serde_json::Value) -> Loaded {
        let key = KeyPair::generate();
        let task_id = TaskId::new();
        let mut loaded = loaded_after(task_id, TaskSpec::new("echo", "x"), &key, Vec::new());
        let agent_id = AgentId::new("a1").unwrap();
        let result = AgentResult {
            task_id,
            attempt: 1,
            agent_id: agent_id.clone(),
            envelope_hash: Hash::of(b"envelope"),
            output,
            completed_at_ms: 2_000,
        };
        loaded.state.result = Some(SignedResult::sign(result, &key).unwrap());
        loaded.state.agent_id = Some(agent_id);
        loaded.state.status = status;
        loaded
    }

    #[test]
    fn a_passing_output_is_screened_with_its_redacted_form() {
        let task = with_result(TaskStatus::Stored, serde_json::json!({"a": 1}));
        let findings = vec![ScreeningFinding {
            kind: "pii.email".into(),
            rule_id: "pii.email".into(),
            start: 0,
            end: 1,
            action: events::task::FindingAction::Redact,
        }];
        let verdict = Verdict::Pass { findings, redacted: Some(r#"{"a":2}"#.into()) };
        let outputs = decide(&task, verdict);
        let [(_, TaskEvent::EgressScreened(screened))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(screened.redacted_output, Some(serde_json::json!({"a": 2})), "structured output kept");
        assert_eq!(screened.findings.len(), 1);
    }

    #[test]
    fn a_refused_output_fails_the_task_and_nothing_is_decided_before_storage() {
        let task = with_result(TaskStatus::Stored, serde_json::json!("text"));
        let verdict = Verdict::Refuse {
            code: events::task::RejectionCode::Blocked,
            reason: "prompt_injection".into(),
            findings: Vec::new(),
        };
        let outputs = decide(&task, verdict.clone());
        let [(_, TaskEvent::Failed(failed))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(failed.code, FailureCode::ResultWithheld);
        let verified = with_result(TaskStatus::Verified, serde_json::json!("text"));
        assert!(decide(&verified, verdict).is_empty());
    }
}
