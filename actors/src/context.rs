//! Phase 2, context: `ingress_screened` → `context_gathered`. Sources are gathered in
//! parallel, each within [`CONTEXT_SOURCE_MS_MAX`]; a source that fails or is late is
//! recorded as such and the rest is used (partial results). The one source today is the
//! history of the capability (recent finished tasks, from the registry view): similar tasks by
//! word overlap, what worked, what failed, and a complexity estimate.

use std::time::Instant;

use async_trait::async_trait;
use events::RecordedEvent;
use events::task::{ContextGathered, ContextSource, SimilarTask, TaskEvent, TaskStatus};

use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append};
use crate::registry::RecentTask;

/// The longest one context source may take.
pub const CONTEXT_SOURCE_MS_MAX: u64 = 200;

/// Similar tasks recorded at most.
pub const SIMILAR_TASKS_MAX: usize = 3;

fn jaccard(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let a: std::collections::HashSet<&String> = a.iter().collect();
    let b: std::collections::HashSet<&String> = b.iter().collect();
    let shared = a.intersection(&b).count() as f64;
    shared / ((a.len() + b.len()) as f64 - shared)
}

/// Context from history: similar recent tasks and the lessons they carry.
fn from_history(description: &str, recent: &[RecentTask]) -> (Vec<SimilarTask>, Vec<String>, Vec<String>) {
    let words: Vec<String> = description
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(64)
        .map(str::to_lowercase)
        .collect();
    let mut similar: Vec<(f64, &RecentTask)> =
        recent.iter().map(|t| (jaccard(&words, &t.words), t)).filter(|(s, _)| *s > 0.0).collect();
    similar.sort_by(|a, b| b.0.total_cmp(&a.0));
    similar.truncate(SIMILAR_TASKS_MAX);
    let mut practices = Vec::new();
    let mut pitfalls = Vec::new();
    for (_, task) in &similar {
        let agent = task.agent_id.as_ref().map_or("an agent".to_string(), |a| format!("agent {a}"));
        if task.succeeded {
            practices.push(format!("a similar task ({}) succeeded with {agent}", task.task_id));
        } else {
            pitfalls.push(format!("a similar task ({}) failed with {agent}", task.task_id));
        }
    }
    let similar = similar
        .into_iter()
        .map(|(similarity, t)| SimilarTask {
            task_id: t.task_id,
            similarity: (similarity * 1_000.0).round() / 1_000.0,
            succeeded: t.succeeded,
            agent_id: t.agent_id.clone(),
        })
        .collect();
    (similar, practices, pitfalls)
}

/// Phase 2.
pub(crate) struct Context;

#[async_trait]
impl Phase for Context {
    fn name(&self) -> &'static str {
        "context"
    }

    fn inputs(&self) -> &'static [&'static str] {
        &["ingress_screened"]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        decide_and_append(ctx, input, self.name(), |loaded: &Loaded| -> Vec<Output> {
            if loaded.state.status != TaskStatus::Screened {
                return Vec::new();
            }
            let Some(spec) = loaded.state.spec() else { return Vec::new() };
            let description = loaded.state.description.clone().unwrap_or_default();
            let started = Instant::now();
            let recent = ctx.registry.recent(&spec.capability);
            let (similar_tasks, best_practices, pitfalls) = from_history(&description, &recent);
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let late = elapsed_ms > CONTEXT_SOURCE_MS_MAX;
            let input_bytes = serde_json::to_vec(&spec.input).map_or(0, |v| v.len());
            let complexity = ((description.split_whitespace().count() as f64 / 200.0)
                + (input_bytes as f64 / 65_536.0))
                .min(1.0);
            let gathered = ContextGathered {
                similar_tasks: if late { Vec::new() } else { similar_tasks },
                best_practices: if late { Vec::new() } else { best_practices },
                pitfalls: if late { Vec::new() } else { pitfalls },
                complexity: (complexity * 1_000.0).round() / 1_000.0,
                sources: vec![ContextSource {
                    name: "history".into(),
                    ok: !late,
                    elapsed_ms,
                    error: late.then(|| format!("took longer than {CONTEXT_SOURCE_MS_MAX} ms")),
                }],
            };
            vec![("context".into(), TaskEvent::ContextGathered(gathered))]
        })
        .await
    }
}
