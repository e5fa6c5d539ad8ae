//! Phase 2, context: `ingress_screened` → `context_gathered`. Sources are gathered in
//! parallel, each within its timeout; a source that fails or is late is recorded as such in
//! `sources` and the rest is used (partial results). The built-in source, [`HISTORY_SOURCE`],
//! is the history of the capability (recent finished tasks, from the registry view): similar
//! tasks by word overlap, what worked, what failed, and a complexity estimate. Configured
//! sources ([`crate::config::ContextSourceConfig`]) are HTTP services: each is `POST`ed
//! `{"task_id", "capability", "description"}` and answers
//! `{"best_practices": ["…"], "pitfalls": ["…"]}` (both optional), which are added to the
//! history's, at most [`CONTEXT_ITEMS_PER_SOURCE_MAX`] of each, each cut to
//! [`CONTEXT_ITEM_BYTES_MAX`] bytes.
//!
//! # Deciding and doing
//! Asking the sources (the history, timed, and the configured ones over HTTP, screened) is
//! the effect, done first; what they answered is the [`Facts`] the pure [`decide`] turns into
//! `context_gathered`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::task::{ContextGathered, ContextSource, SimilarTask, TaskEvent, TaskStatus};
use events::{RecordedEvent, TaskId};

use crate::agents::http::{BodyError, excerpt, read_body};
use crate::config::ContextSourceConfig;
use crate::error::Result;
use crate::phase::{Ctx, Handled, Loaded, Output, Phase, decide_and_append, load_task_cached, task_id_of};
use crate::registry::RecentTask;

/// The name of the built-in source: the capability's recent history.
pub const HISTORY_SOURCE: &str = "history";

/// The largest answer taken from a context source, in bytes.
pub const CONTEXT_ANSWER_BYTES_MAX: usize = 64 * 1024;

/// Best practices, and pitfalls, taken from one source at most.
pub const CONTEXT_ITEMS_PER_SOURCE_MAX: usize = 8;

/// The longest best practice or pitfall taken from a source, in bytes; longer ones are cut.
pub const CONTEXT_ITEM_BYTES_MAX: usize = 512;

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

/// What the context phase asks a source about a task.
#[derive(serde::Serialize)]
struct Query<'a> {
    task_id: TaskId,
    capability: &'a str,
    description: &'a str,
}

/// What a source answers.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub(crate) struct Found {
    #[serde(default)]
    best_practices: Vec<String>,
    #[serde(default)]
    pitfalls: Vec<String>,
}

impl Found {
    /// Keeps as many items as the limits allow; each is cut to [`CONTEXT_ITEM_BYTES_MAX`] once
    /// screened ([`screen_found`]): cut first, a secret across the cut would no longer be
    /// recognised, and its first part would be recorded.
    fn bounded(mut self) -> Self {
        for items in [&mut self.best_practices, &mut self.pitfalls] {
            items.retain(|item| !item.trim().is_empty());
            items.truncate(CONTEXT_ITEMS_PER_SOURCE_MAX);
        }
        self
    }
}

/// A context source reached over HTTP.
#[derive(Debug)]
pub(crate) struct HttpSource {
    config: ContextSourceConfig,
    client: reqwest::Client,
}

impl HttpSource {
    /// The source `config` describes.
    pub(crate) fn new(config: ContextSourceConfig) -> Result<Self> {
        let client = crate::agents::http::client().map_err(|e| crate::Error::Config {
            path: format!("context source {}", config.name),
            reason: format!("cannot build the HTTP client: {e}"),
        })?;
        Ok(Self { config, client })
    }

    /// Whether tasks of `capability` are asked about.
    fn serves(&self, capability: &str) -> bool {
        self.config.capabilities.is_empty() || self.config.capabilities.iter().any(|c| c == capability)
    }

    /// Asks the source, without a timeout of its own.
    async fn ask(&self, query: &Query<'_>) -> std::result::Result<Found, String> {
        let mut response = self
            .client
            .post(&self.config.url)
            .json(query)
            .send()
            .await
            .map_err(|e| format!("POST {}: {}", self.config.url, events::error_chain(&e)))?;
        let status = response.status();
        let body = read_body(&mut response, CONTEXT_ANSWER_BYTES_MAX).await.map_err(|e| match e {
            BodyError::Read(e) => format!("reading the answer: {e}"),
            BodyError::TooLarge => format!("the answer is over the {CONTEXT_ANSWER_BYTES_MAX}-byte limit"),
        })?;
        if !status.is_success() {
            return Err(format!("answered {status}: {}", excerpt(&body)));
        }
        serde_json::from_slice::<Found>(&body)
            .map(Found::bounded)
            .map_err(|e| format!("answered something that is not context: {e}"))
    }

    /// Asks the source within its timeout; how it fared, and what it found.
    async fn gather(&self, query: &Query<'_>) -> (ContextSource, Option<Found>) {
        let started = Instant::now();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let outcome = match tokio::time::timeout(timeout, self.ask(query)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("took longer than {} ms", self.config.timeout_ms)),
        };
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let name = self.config.name.clone();
        match outcome {
            Ok(found) => (ContextSource { name, ok: true, elapsed_ms, error: None }, Some(found)),
            Err(error) => {
                tracing::warn!(source = %name, %error, "a context source failed");
                (ContextSource { name, ok: false, elapsed_ms, error: Some(error) }, None)
            }
        }
    }
}

/// Screens what a source said before it is recorded and sealed into the envelope an agent
/// reads: an item the policy blocks (an injection) is withheld, and the source's record says
/// how many and why; secrets and personal data are redacted; then each item is cut to
/// [`CONTEXT_ITEM_BYTES_MAX`].
fn screen_found(screener: &dyn crate::Screener, source: &mut ContextSource, found: &mut Found) {
    let mut withheld = Vec::new();
    for items in [&mut found.best_practices, &mut found.pitfalls] {
        items.retain_mut(|item| match screener.screen_egress(&serde_json::Value::String(item.clone())) {
            crate::Verdict::Refuse { reason, .. } => {
                withheld.push(reason);
                false
            }
            crate::Verdict::Pass { redacted, .. } => {
                if let Some(redacted) = redacted {
                    *item = redacted;
                }
                crate::cut_utf8(item, CONTEXT_ITEM_BYTES_MAX);
                true
            }
        });
    }
    if let Some(reason) = withheld.first() {
        source.error = Some(format!("withheld {} item(s) by screening: {reason}", withheld.len()));
    }
}

/// What the sources answered about a task: the history's, and each configured source's.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    /// How the history fared, the similar tasks it found and the lessons they carry.
    pub(crate) history: (ContextSource, Vec<SimilarTask>, Found),
    /// How each configured source serving the capability fared, and what it found.
    pub(crate) configured: Vec<(ContextSource, Option<Found>)>,
}

/// Asks the history of `capability` about `description` (the registry's recent tasks), timed:
/// a look that took longer than [`CONTEXT_SOURCE_MS_MAX`] is recorded as late, and its
/// findings dropped.
fn ask_history(
    registry: &crate::registry::Registry,
    capability: &str,
    description: &str,
) -> (ContextSource, Vec<SimilarTask>, Found) {
    let started = Instant::now();
    let recent = registry.recent(capability);
    let (similar, best_practices, pitfalls) = from_history(description, &recent);
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let late = elapsed_ms > CONTEXT_SOURCE_MS_MAX;
    let source = ContextSource {
        name: HISTORY_SOURCE.into(),
        ok: !late,
        elapsed_ms,
        error: late.then(|| format!("took longer than {CONTEXT_SOURCE_MS_MAX} ms")),
    };
    if late {
        return (source, Vec::new(), Found::default());
    }
    (source, similar, Found { best_practices, pitfalls })
}

/// The decider: for a screened task, `context_gathered` with the history's similar tasks, the
/// lessons of every source (the history's first), each source's record and a complexity
/// estimate (description words and input size, 0 to 1); nothing otherwise.
pub(crate) fn decide(loaded: &Loaded, facts: &Facts) -> Vec<Output> {
    let state = &loaded.state;
    if state.status != TaskStatus::Screened {
        return Vec::new();
    }
    let Some(spec) = state.spec() else { return Vec::new() };
    let description = state.description.as_deref().unwrap_or_default();
    let input_bytes = serde_json::to_vec(&spec.input).map_or(0, |v| v.len());
    let complexity =
        ((description.split_whitespace().count() as f64 / 200.0) + (input_bytes as f64 / 65_536.0)).min(1.0);
    let (history, similar_tasks, found) = &facts.history;
    let mut best_practices = found.best_practices.clone();
    let mut pitfalls = found.pitfalls.clone();
    let mut sources = vec![history.clone()];
    for (source, found) in &facts.configured {
        sources.push(source.clone());
        if let Some(found) = found {
            best_practices.extend(found.best_practices.iter().cloned());
            pitfalls.extend(found.pitfalls.iter().cloned());
        }
    }
    let gathered = ContextGathered {
        similar_tasks: similar_tasks.clone(),
        best_practices,
        pitfalls,
        complexity: (complexity * 1_000.0).round() / 1_000.0,
        sources,
    };
    vec![("context".into(), TaskEvent::ContextGathered(gathered))]
}

/// Phase 2.
#[derive(Default)]
pub(crate) struct Context {
    /// The configured sources, besides the history.
    sources: Vec<Arc<HttpSource>>,
}

impl Context {
    /// The phase, asking `sources` besides the history.
    pub(crate) fn new(sources: Vec<Arc<HttpSource>>) -> Self {
        Self { sources }
    }

    /// What the configured sources serving the task's capability say, asked in parallel; none
    /// when no source serves it or the task is not waiting for context.
    async fn gather_configured(
        &self,
        ctx: &Ctx,
        input: &RecordedEvent,
    ) -> Result<Vec<(ContextSource, Option<Found>)>> {
        if self.sources.is_empty() {
            return Ok(Vec::new());
        }
        let Some(task_id) = task_id_of(&input.stream_id) else { return Ok(Vec::new()) };
        let loaded = load_task_cached(ctx, task_id).await?;
        if loaded.state.status != TaskStatus::Screened {
            return Ok(Vec::new());
        }
        let Some(spec) = loaded.state.spec() else { return Ok(Vec::new()) };
        let description = loaded.state.description.clone().unwrap_or_default();
        let query = Query { task_id, capability: &spec.capability, description: &description };
        let asked = self.sources.iter().filter(|s| s.serves(&spec.capability)).map(|s| s.gather(&query));
        Ok(futures::future::join_all(asked).await)
    }
}

#[async_trait]
impl Phase for Context {
    fn name(&self) -> &'static str {
        "context"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[events::TaskEventKind::IngressScreened]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let mut configured = self.gather_configured(ctx, input).await?;
        for (source, found) in &mut configured {
            if let Some(found) = found {
                screen_found(ctx.screener.as_ref(), source, found);
            }
            // A source's error may quote its answer: recorded with secrets redacted.
            if let Some(error) = &mut source.error
                && let Some(clean) = security::scrub(error)
            {
                *error = clean;
            }
        }
        decide_and_append(ctx, input, self.name(), |loaded: &Loaded| -> Vec<Output> {
            if loaded.state.status != TaskStatus::Screened {
                return Vec::new();
            }
            let Some(spec) = loaded.state.spec() else { return Vec::new() };
            let description = loaded.state.description.as_deref().unwrap_or_default();
            let history = ask_history(&ctx.registry, &spec.capability, description);
            decide(loaded, &Facts { history, configured: configured.clone() })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use events::{KeyPair, TaskSpec};

    use super::*;
    use crate::phase::tests::loaded_after;

    fn source(name: &str, ok: bool, error: Option<&str>) -> ContextSource {
        ContextSource { name: name.into(), ok, elapsed_ms: 3, error: error.map(String::from) }
    }

    fn found(practice: &str, pitfall: &str) -> Found {
        Found { best_practices: vec![practice.into()], pitfalls: vec![pitfall.into()] }
    }

    /// Given: a task just screened (the fold before its context).
    fn screened(description: &str, input: serde_json::Value) -> Loaded {
        let mut spec = TaskSpec::new("echo", description);
        spec.input = input;
        let mut loaded = loaded_after(TaskId::new(), spec, &KeyPair::generate(), Vec::new());
        // `loaded_after` gathers a context: step back to the screened task.
        loaded.state.status = TaskStatus::Screened;
        loaded
    }

    #[test]
    fn every_source_is_recorded_and_their_lessons_merged_history_first() {
        let task = screened("summarise the quarterly report", serde_json::Value::Null);
        let similar =
            SimilarTask { task_id: TaskId::new(), similarity: 0.5, succeeded: true, agent_id: None };
        let facts = Facts {
            history: (
                source(HISTORY_SOURCE, true, None),
                vec![similar.clone()],
                found("h-practice", "h-pitfall"),
            ),
            configured: vec![
                (source("wiki", true, None), Some(found("w-practice", "w-pitfall"))),
                (source("slow", false, Some("took longer than 50 ms")), None),
            ],
        };
        let outputs = decide(&task, &facts);
        let [(_, TaskEvent::ContextGathered(gathered))] = outputs.as_slice() else { panic!("{outputs:?}") };
        assert_eq!(gathered.similar_tasks, [similar]);
        assert_eq!(gathered.best_practices, ["h-practice", "w-practice"]);
        assert_eq!(gathered.pitfalls, ["h-pitfall", "w-pitfall"]);
        let names: Vec<(&str, bool)> = gathered.sources.iter().map(|s| (s.name.as_str(), s.ok)).collect();
        assert_eq!(names, [(HISTORY_SOURCE, true), ("wiki", true), ("slow", false)]);
        assert_eq!(gathered.sources[2].error.as_deref(), Some("took longer than 50 ms"));
    }

    #[test]
    fn complexity_grows_with_the_description_and_the_input_and_stops_at_one() {
        let facts = Facts {
            history: (source(HISTORY_SOURCE, true, None), Vec::new(), Found::default()),
            configured: Vec::new(),
        };
        let complexity = |task: &Loaded| {
            let outputs = decide(task, &facts);
            let [(_, TaskEvent::ContextGathered(gathered))] = outputs.as_slice() else {
                panic!("{outputs:?}")
            };
            gathered.complexity
        };
        let short = complexity(&screened("one two three four", serde_json::Value::Null));
        assert_eq!(short, 0.02);
        let longer = complexity(&screened(&"word ".repeat(100), serde_json::Value::Null));
        assert_eq!(longer, 0.5);
        let big_input = complexity(&screened("x", serde_json::Value::String("y".repeat(40_000))));
        assert!(big_input > 0.6, "{big_input}");
        assert_eq!(complexity(&screened(&"word ".repeat(400), serde_json::Value::Null)), 1.0);
    }

    #[test]
    fn a_task_not_waiting_for_context_decides_nothing() {
        let facts = Facts {
            history: (source(HISTORY_SOURCE, true, None), Vec::new(), Found::default()),
            configured: Vec::new(),
        };
        // Its context gathered already (a redelivered input).
        let gathered =
            loaded_after(TaskId::new(), TaskSpec::new("echo", "x"), &KeyPair::generate(), Vec::new());
        assert!(decide(&gathered, &facts).is_empty());
    }
}
