//! Phase 8, egress screening: `result_stored` → `egress_screened` (with findings and, when
//! something was redacted, the redacted output) or `task_failed` when the screener withholds
//! the result. Uses the same [`crate::screening::Screener`] seam as ingress.

use async_trait::async_trait;
use events::RecordedEvent;
use events::task::{EgressScreened, FailureCode, TaskEvent, TaskFailed, TaskStatus};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Phase, decide_and_append};
use crate::screening::Verdict;

/// Phase 8 (egress).
pub(crate) struct EgressScreening;

#[async_trait]
impl Phase for EgressScreening {
    fn name(&self) -> &'static str {
        "egress"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["result_stored"]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        decide_and_append(ctx, input, self.name(), |loaded| {
            if loaded.state.status != TaskStatus::Stored {
                return Vec::new();
            }
            let Some(result) = &loaded.state.result else { return Vec::new() };
            let output = &result.result.output;
            match ctx.screener.screen_egress(output) {
                Verdict::Pass { findings, redacted } => {
                    let redacted_output = redacted.map(|text| match output {
                        serde_json::Value::String(_) => serde_json::Value::String(text),
                        _ => serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
                    });
                    vec![(
                        "screened".into(),
                        TaskEvent::EgressScreened(EgressScreened { findings, redacted_output }),
                    )]
                }
                Verdict::Refuse { reason, .. } => vec![(
                    "withheld".into(),
                    TaskEvent::Failed(TaskFailed {
                        code: FailureCode::ResultWithheld,
                        reason: format!("egress screening withheld the result: {reason}"),
                    }),
                )],
            }
        })
        .await
    }
}
