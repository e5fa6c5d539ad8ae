//! Workflows: the definition a user registers (a DAG of steps, each an ordinary task for a
//! capability, with references, conditions, fan-out and fan-in, timeouts and retries), the
//! events of a definition's stream (`workflowdef-<name>`: its versions) and of a run's stream
//! (`workflow-<run_id>`), and a run's state as the fold of its events.
//!
//! A run's first event holds the whole definition it runs, pinned by its blake3 hash, so a
//! run is read, replayed and decided from its own stream alone. What happens next is decided
//! by the pure decider of the `workflow` crate; this module only records and folds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::domain_events;
use crate::event::Version;
use crate::id::{TaskId, WorkflowId};
use crate::state::{Aggregate, TransitionError};

/// The longest workflow or step name, bytes.
pub const WORKFLOW_NAME_BYTES_MAX: usize = 64;

/// The largest definition document, bytes (YAML or JSON as sent).
pub const DEFINITION_BYTES_MAX: usize = 256 * 1024;

/// The most steps in a definition.
pub const STEPS_MAX: usize = 200;

/// A fan-out's item limit when the workflow names none.
pub const FAN_OUT_ITEMS_DEFAULT: u32 = 100;

/// The highest item limit a workflow may set.
pub const FAN_OUT_ITEMS_MAX: u32 = 1_000;

/// The most attempts a step's `retry` may ask for.
pub const STEP_ATTEMPTS_MAX: u32 = 10;

/// What a fan-out does when an item fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemFailure {
    /// Start no more items, and fail the step once the running ones end (the default).
    #[default]
    FailFast,
    /// Run every item; the step completes with each item's `{ok, output | error}`.
    Continue,
}

/// What a step does when a step it needs was skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkippedNeeds {
    /// It is skipped too (the default).
    #[default]
    Skip,
    /// It runs all the same (the skipped step's output reads as `null`).
    Run,
}

/// A step's retries: a failed task is run again as a new task, up to `attempts` in all,
/// after `backoff` (doubled at each retry, at most `backoff_max`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included (1 to 10).
    pub attempts: u32,
    /// The wait before the first retry (`1s`, `500ms`; default none: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// The longest wait between retries (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_max: Option<String>,
}

/// What an approval step does when no signal came in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// The step fails, and the run with it (the default).
    #[default]
    Fail,
    /// The step is skipped (its dependents are skipped unless they say `on_skipped_needs: run`).
    Skip,
}

/// A step that waits for a person or another system: it completes when the run receives the
/// signal (`POST /runs/{id}/signals/{signal}`, `pantheon workflow approve RUN STEP`), its
/// output the signal's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The signal's name (default `approve`).
    #[serde(default = "default_signal")]
    pub signal: String,
    /// How long to wait (`1h`; default: without end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// What happens when nothing came in time.
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

fn default_signal() -> String {
    "approve".to_string()
}

/// A step's compensating task (a saga's undo): run when the run fails after the step
/// completed, in reverse completion order. Its templates see the step's output as
/// `steps.<name>.output`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compensation {
    /// The capability of the compensating task.
    pub capability: String,
    /// What to do: a template.
    #[serde(default)]
    pub description: String,
    /// Its input: a template.
    #[serde(default)]
    pub input: Value,
}

/// A step that runs another registered workflow as a child run; the step's output is the
/// child's output, and a child that fails fails the step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildWorkflow {
    /// The registered workflow's name.
    pub name: String,
    /// Its version (default: the latest when the step starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// How deep child runs may nest.
pub const CHILD_DEPTH_MAX: u32 = 8;

/// One step: a task for a capability, run when the steps it needs have ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Unique in the workflow: 1 to 64 of `a-z 0-9 _ -`, starting with a letter.
    pub name: String,
    /// The capability its task needs (a step is a task for a capability, or an approval).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub capability: String,
    /// A step that waits for a signal instead of running a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// A step that runs another workflow (its `input` is the child's input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<ChildWorkflow>,
    /// What to do, in words: a template (`${…}` interpolated).
    #[serde(default)]
    pub description: String,
    /// The task's input: JSON in which every string is a template (a string that is exactly
    /// one `${expr}` takes the expression's value, of any type).
    #[serde(default)]
    pub input: Value,
    /// The steps that must end first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Runs only when this expression is true (else the step is skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Fan-out: an expression giving a list; one task per item (`item`, `index` in the
    /// step's templates), and the step's output is the ordered list of `{ok, output | error}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// The most items running at once (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// The most items the list may hold (default: the workflow's `max_items`, at most that).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    /// What a failed item does to the step.
    #[serde(default)]
    pub on_item_failure: ItemFailure,
    /// What the step does when a step it needs was skipped.
    #[serde(default)]
    pub on_skipped_needs: SkippedNeeds,
    /// The task's timeout (`30s`, `5m`; default the task's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries of a failed task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// What undoes the step when the run fails after it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<Compensation>,
}

/// A workflow definition, as registered (YAML or JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The workflow's name: 1 to 64 of `a-z 0-9 _ -`, starting with a letter.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Its steps: a DAG by `needs`.
    pub steps: Vec<Step>,
    /// The run's output: a template over `input` and `steps` (default: every step's output
    /// by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The item limit of its fan-outs (default 100, at most 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u32>,
    /// The whole run's deadline from its start (`10m`): past it, the run fails and its
    /// running step tasks are cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

impl Definition {
    /// The fan-out item limit of `step`.
    pub fn item_limit(&self, step: &Step) -> u32 {
        let workflow = self.max_items.unwrap_or(FAN_OUT_ITEMS_DEFAULT);
        step.max_items.map_or(workflow, |s| s.min(workflow))
    }

    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

/// A definition's version was registered (`workflowdef-<name>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DefinitionRegistered {
    /// The workflow's name.
    pub name: String,
    /// 1, 2, …: one more for each different definition of the name.
    pub version: u32,
    /// blake3 of the definition's canonical encoding, hex.
    pub hash: String,
    /// The definition.
    pub definition: Definition,
    /// Who registered it.
    pub by: String,
}

domain_events! {
    /// Every event of a definition's stream.
    pub enum DefinitionEvent: "workflowdef", kinds DefinitionEventKind {
        /// A version registered.
        Registered(DefinitionRegistered) = "definition_registered" @ 1,
    }
}

/// A run started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowStarted {
    /// The run.
    pub run_id: WorkflowId,
    /// The definition's name and version.
    pub name: String,
    /// Its version.
    pub version: u32,
    /// Its hash, hex: the run is pinned to it.
    pub definition_hash: String,
    /// The definition run.
    pub definition: Definition,
    /// The run's input.
    #[serde(default)]
    pub input: Value,
    /// Who started it.
    pub submitter: String,
    /// A key that makes a repeated start return this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// When it started, ms since the epoch (the deadline counts from it).
    #[serde(default)]
    pub started_at_ms: i64,
    /// The run and step that started it, for a child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRun>,
    /// How deep it nests (0: started by a user).
    #[serde(default)]
    pub depth: u32,
    /// Where the run's end is posted (a signed webhook, as a task's), if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
}

/// The run and step a child run answers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParentRun {
    /// The parent run.
    pub run_id: WorkflowId,
    /// Its step.
    pub step: String,
}

/// A child run was asked for (the engine starts it, with this id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChildScheduled {
    /// The step.
    pub step: String,
    /// The child run's id, derived from the run and the step.
    pub run_id: WorkflowId,
    /// The workflow.
    pub name: String,
    /// Its version, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// Its input.
    #[serde(default)]
    pub input: Value,
}

/// A child run ended (or could not start).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChildEnded {
    /// The step.
    pub step: String,
    /// The child run.
    pub run_id: WorkflowId,
    /// Whether it completed.
    pub ok: bool,
    /// Its output, when it completed.
    #[serde(default)]
    pub output: Value,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A task of a step was scheduled (the engine submits it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepScheduled {
    /// The step.
    pub step: String,
    /// The item of a fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// 1, 2, …: the step's retries.
    pub attempt: u32,
    /// The task, derived from the run, step, item and attempt.
    pub task_id: TaskId,
    /// The task's capability.
    pub capability: String,
    /// Its description.
    pub description: String,
    /// Its input.
    #[serde(default)]
    pub input: Value,
    /// Its timeout, ms (none: the task's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// A fan-out's list was evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepExpanded {
    /// The step.
    pub step: String,
    /// The items, in order.
    pub items: Vec<Value>,
}

/// A step will not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepSkipped {
    /// The step.
    pub step: String,
    /// Why.
    pub reason: String,
}

/// A step's task ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepTaskEnded {
    /// The step.
    pub step: String,
    /// The item of a fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<u32>,
    /// The attempt.
    pub attempt: u32,
    /// The task.
    pub task_id: TaskId,
    /// Whether it completed.
    pub ok: bool,
    /// Its output, when it completed.
    #[serde(default)]
    pub output: Value,
    /// Why it did not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A step completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepCompleted {
    /// The step.
    pub step: String,
    /// Its output (a fan-out's: the ordered list of `{ok, output | error}`).
    pub output: Value,
}

/// A step failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepFailed {
    /// The step.
    pub step: String,
    /// Why.
    pub reason: String,
}

/// The run failed after steps that declare a compensation completed: they are undone, in
/// reverse completion order, before the run ends failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompensationStarted {
    /// Why the run fails.
    pub reason: String,
}

/// A step's compensating task was scheduled (the engine submits it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompensationScheduled {
    /// The step it undoes.
    pub step: String,
    /// The task.
    pub task_id: TaskId,
    /// Its capability.
    pub capability: String,
    /// Its description.
    pub description: String,
    /// Its input.
    #[serde(default)]
    pub input: Value,
}

/// A compensating task ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CompensationEnded {
    /// The step it undid.
    pub step: String,
    /// The task.
    pub task_id: TaskId,
    /// Whether it completed.
    pub ok: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A durable timer was set: at `fire_at_ms` the engine records `timer_fired` (a retry's
/// backoff, an approval's timeout, the run's deadline).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimerSet {
    /// The timer: `retry:<step>:<item>:<attempt>`, `approval:<step>`, `deadline`.
    pub timer: String,
    /// When it fires, ms since the epoch.
    pub fire_at_ms: i64,
}

/// A timer fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimerFired {
    /// The timer.
    pub timer: String,
}

/// An approval step waits for its signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequested {
    /// The step.
    pub step: String,
    /// The signal it waits for.
    pub signal: String,
    /// Until when, if bounded, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at_ms: Option<i64>,
}

/// A signal reached the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignalReceived {
    /// Its name.
    pub name: String,
    /// The step it is meant for, if named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// What it carries (the approval step's output).
    #[serde(default)]
    pub payload: Value,
    /// Who sent it.
    pub by: String,
}

/// The run completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowCompleted {
    /// Its output.
    pub output: Value,
}

/// The run failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowFailed {
    /// Why.
    pub reason: String,
}

/// Someone asked to cancel the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CancelRequested {
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// The run was cancelled: nothing starts after it; running step tasks are cancelled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowCancelled {
    /// Who asked.
    pub by: String,
    /// Why.
    pub reason: String,
}

domain_events! {
    /// Every event of a run's stream.
    #[allow(
        clippy::large_enum_variant,
        reason = "events are decoded one at a time; the start, which holds the definition, is the large one"
    )]
    pub enum WorkflowEvent: "workflow", kinds WorkflowEventKind {
        /// Started.
        Started(WorkflowStarted) = "workflow_started" @ 2,
        /// A step's task was scheduled.
        StepScheduled(StepScheduled) = "step_scheduled" @ 2,
        /// A fan-out's list was evaluated.
        StepExpanded(StepExpanded) = "step_expanded" @ 1,
        /// A step will not run.
        StepSkipped(StepSkipped) = "step_skipped" @ 1,
        /// A step's task ended.
        StepTaskEnded(StepTaskEnded) = "step_task_ended" @ 1,
        /// A step completed.
        StepCompleted(StepCompleted) = "step_completed" @ 2,
        /// A step failed.
        StepFailed(StepFailed) = "step_failed" @ 2,
        /// The run completed.
        Completed(WorkflowCompleted) = "workflow_completed" @ 2,
        /// The run failed.
        Failed(WorkflowFailed) = "workflow_failed" @ 2,
        /// A cancel was asked for.
        CancelRequested(CancelRequested) = "workflow_cancel_requested" @ 1,
        /// The run was cancelled.
        Cancelled(WorkflowCancelled) = "workflow_cancelled" @ 1,
        /// A timer was set.
        TimerSet(TimerSet) = "timer_set" @ 1,
        /// A timer fired.
        TimerFired(TimerFired) = "timer_fired" @ 1,
        /// An approval step waits for its signal.
        ApprovalRequested(ApprovalRequested) = "approval_requested" @ 1,
        /// A signal reached the run.
        SignalReceived(SignalReceived) = "signal_received" @ 1,
        /// The run fails: completed steps are being undone.
        CompensationStarted(CompensationStarted) = "compensation_started" @ 1,
        /// A compensating task was scheduled.
        CompensationScheduled(CompensationScheduled) = "compensation_scheduled" @ 1,
        /// A compensating task ended.
        CompensationEnded(CompensationEnded) = "compensation_ended" @ 1,
        /// A child run was asked for.
        ChildScheduled(ChildScheduled) = "child_scheduled" @ 1,
        /// A child run ended.
        ChildEnded(ChildEnded) = "child_ended" @ 1,
        /// An attempt to post the run's end to its webhook.
        WebhookAttempted(crate::task::WebhookAttempted) = "run_webhook_attempted" @ 1,
        /// The run's webhook was given up after its attempts.
        WebhookDeadLettered(crate::task::WebhookDeadLettered) = "run_webhook_dead_lettered" @ 1,
    }
}

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// No events yet.
    #[default]
    New,
    /// Steps are running.
    Running,
    /// It fails: completed steps are being undone.
    Compensating,
    /// Every step completed or was skipped.
    Completed,
    /// A step failed.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl WorkflowStatus {
    /// Whether the run has ended.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Where a step is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    #[default]
    Pending,
    /// Its task (or its items' tasks) running.
    Running,
    /// Completed.
    Completed,
    /// Failed.
    Failed,
    /// Skipped.
    Skipped,
}

impl StepStatus {
    /// Whether the step has ended.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Skipped)
    }
}

/// One task of a step (the item of a fan-out, or the step's own), at its latest attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemRun {
    /// The latest attempt.
    pub attempt: u32,
    /// Its task.
    pub task_id: TaskId,
    /// How it ended, once it has: the output, or the reason.
    pub ended: Option<Result<Value, String>>,
}

/// A step's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepRun {
    /// Where it is.
    pub status: StepStatus,
    /// A fan-out's items, once evaluated.
    pub items: Option<Vec<Value>>,
    /// Its tasks by item (`None` for a step without fan-out).
    pub runs: BTreeMap<Option<u32>, ItemRun>,
    /// Its output, once completed.
    pub output: Option<Value>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// Its child run, and how it ended once it has.
    pub child: Option<(WorkflowId, Option<Result<Value, String>>)>,
}

/// A run's state: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkflowState {
    /// Events applied.
    pub version: Version,
    /// Where it is.
    pub status: WorkflowStatus,
    /// How it started (the definition, the input).
    pub started: Option<WorkflowStarted>,
    /// Each step's state, by name.
    pub steps: BTreeMap<String, StepRun>,
    /// Each scheduled task's step and item.
    pub tasks: BTreeMap<TaskId, (String, Option<u32>)>,
    /// A cancel asked for: who and why.
    pub cancel_requested: Option<(String, String)>,
    /// Timers set and not fired: when each fires.
    pub timers: BTreeMap<String, i64>,
    /// Timers fired.
    pub fired: std::collections::BTreeSet<String>,
    /// Signals received, in order: name, step named, payload, sender.
    pub signals: Vec<SignalReceived>,
    /// Completed steps, in completion order.
    pub completed_order: Vec<String>,
    /// Why the run fails, while it compensates.
    pub compensating_for: Option<String>,
    /// Compensations by step: the task, and how it ended once it has.
    pub compensations: BTreeMap<String, (TaskId, Option<Result<(), String>>)>,
    /// Approval steps waiting: the signal each waits for, and how many signals the run had
    /// received when it began to wait (a signal naming no step counts only after).
    pub waiting: BTreeMap<String, (String, usize)>,
    /// The run's output, once completed.
    pub output: Option<Value>,
    /// Why it failed or was cancelled.
    pub failure: Option<String>,
}

impl WorkflowState {
    fn refuse(&self, event: &WorkflowEvent, reason: impl Into<String>) -> TransitionError {
        use crate::domain::DomainEvent;
        TransitionError {
            entity: "workflow",
            state: format!("{:?}", self.status).to_lowercase(),
            event_type: event.event_type().to_string(),
            reason: reason.into(),
        }
    }

    fn step_mut(&mut self, event: &WorkflowEvent, step: &str) -> Result<&mut StepRun, TransitionError> {
        if !self.steps.contains_key(step) {
            return Err(self.refuse(event, format!("the definition has no step {step:?}")));
        }
        Ok(self.steps.entry(step.to_string()).or_default())
    }

    /// The child runs still running: step and run.
    pub fn running_children(&self) -> Vec<(String, WorkflowId)> {
        self.steps
            .iter()
            .filter_map(|(name, step)| match &step.child {
                Some((run, None)) => Some((name.clone(), *run)),
                _ => None,
            })
            .collect()
    }

    /// The tasks running now: step, item and task.
    pub fn running_tasks(&self) -> Vec<(String, Option<u32>, TaskId)> {
        self.steps
            .iter()
            .flat_map(|(name, step)| {
                step.runs
                    .iter()
                    .filter(|(_, run)| run.ended.is_none())
                    .map(move |(item, run)| (name.clone(), *item, run.task_id))
            })
            .collect()
    }
}

impl Aggregate for WorkflowState {
    type Event = WorkflowEvent;

    fn version(&self) -> Version {
        self.version
    }

    fn apply(&mut self, event: &WorkflowEvent) -> Result<(), TransitionError> {
        use WorkflowStatus as S;
        match (self.status, event) {
            // Webhook deliveries are records beside the run: they change nothing of it.
            (_, WorkflowEvent::WebhookAttempted(_) | WorkflowEvent::WebhookDeadLettered(_)) => {}
            (S::New, WorkflowEvent::Started(e)) => {
                self.steps =
                    e.definition.steps.iter().map(|s| (s.name.clone(), StepRun::default())).collect();
                self.started = Some(e.clone());
                self.status = S::Running;
            }
            (S::Running, WorkflowEvent::StepScheduled(e)) => {
                let step = self.step_mut(event, &e.step)?;
                if step.status.is_final() {
                    return Err(self.refuse(event, format!("step {:?} has ended", e.step)));
                }
                step.status = StepStatus::Running;
                step.runs.insert(e.item, ItemRun { attempt: e.attempt, task_id: e.task_id, ended: None });
                self.tasks.insert(e.task_id, (e.step.clone(), e.item));
            }
            (S::Running, WorkflowEvent::StepExpanded(e)) => {
                let step = self.step_mut(event, &e.step)?;
                if step.items.is_some() || step.status.is_final() {
                    return Err(self.refuse(event, format!("step {:?} was expanded or has ended", e.step)));
                }
                step.items = Some(e.items.clone());
                step.status = StepStatus::Running;
            }
            (S::Running, WorkflowEvent::StepSkipped(e)) => {
                let waiting = self.waiting.remove(&e.step).is_some();
                let step = self.step_mut(event, &e.step)?;
                if step.status != StepStatus::Pending && !waiting {
                    return Err(self.refuse(event, format!("step {:?} has started", e.step)));
                }
                step.status = StepStatus::Skipped;
                step.reason = Some(e.reason.clone());
            }
            (S::Running, WorkflowEvent::CompensationStarted(e)) => {
                self.compensating_for = Some(e.reason.clone());
                self.waiting.clear();
                self.status = S::Compensating;
            }
            (S::Compensating, WorkflowEvent::CompensationScheduled(e)) => {
                if self.compensations.contains_key(&e.step) {
                    return Err(self.refuse(event, format!("step {:?} was compensated already", e.step)));
                }
                self.compensations.insert(e.step.clone(), (e.task_id, None));
            }
            (S::Compensating, WorkflowEvent::CompensationEnded(e)) => {
                let open =
                    self.compensations.get(&e.step).is_some_and(|(t, end)| *t == e.task_id && end.is_none());
                if !open {
                    return Err(self.refuse(
                        event,
                        format!("no compensation of {:?} runs as task {}", e.step, e.task_id),
                    ));
                }
                let end = if e.ok { Ok(()) } else { Err(e.error.clone().unwrap_or_default()) };
                self.compensations.insert(e.step.clone(), (e.task_id, Some(end)));
            }
            (S::Compensating, WorkflowEvent::Failed(e)) => {
                self.failure = Some(e.reason.clone());
                self.status = S::Failed;
            }
            (S::Running | S::Compensating | S::Failed | S::Cancelled, WorkflowEvent::StepTaskEnded(e)) => {
                let step = self.step_mut(event, &e.step)?;
                let run = step.runs.get_mut(&e.item).filter(|r| r.task_id == e.task_id && r.ended.is_none());
                let Some(run) = run else {
                    return Err(self
                        .refuse(event, format!("task {} is not running for step {:?}", e.task_id, e.step)));
                };
                run.ended =
                    Some(if e.ok { Ok(e.output.clone()) } else { Err(e.error.clone().unwrap_or_default()) });
            }
            (S::Running, WorkflowEvent::StepCompleted(e)) => {
                let step = self.step_mut(event, &e.step)?;
                if step.status.is_final() {
                    return Err(self.refuse(event, format!("step {:?} has ended", e.step)));
                }
                step.status = StepStatus::Completed;
                step.output = Some(e.output.clone());
                self.waiting.remove(&e.step);
                self.completed_order.push(e.step.clone());
            }
            (S::Running, WorkflowEvent::StepFailed(e)) => {
                let step = self.step_mut(event, &e.step)?;
                if step.status.is_final() {
                    return Err(self.refuse(event, format!("step {:?} has ended", e.step)));
                }
                step.status = StepStatus::Failed;
                step.reason = Some(e.reason.clone());
                self.waiting.remove(&e.step);
            }
            (S::Running, WorkflowEvent::TimerSet(e)) => {
                if self.fired.contains(&e.timer) || self.timers.contains_key(&e.timer) {
                    return Err(self.refuse(event, format!("timer {} was set already", e.timer)));
                }
                self.timers.insert(e.timer.clone(), e.fire_at_ms);
            }
            (S::Running, WorkflowEvent::TimerFired(e)) => {
                if self.timers.remove(&e.timer).is_none() {
                    return Err(self.refuse(event, format!("timer {} is not set", e.timer)));
                }
                self.fired.insert(e.timer.clone());
            }
            (S::Running, WorkflowEvent::ApprovalRequested(e)) => {
                let step = self.step_mut(event, &e.step)?;
                if step.status != StepStatus::Pending {
                    return Err(self.refuse(event, format!("step {:?} has started", e.step)));
                }
                step.status = StepStatus::Running;
                let received = self.signals.len();
                self.waiting.insert(e.step.clone(), (e.signal.clone(), received));
            }
            (S::Running, WorkflowEvent::SignalReceived(e)) => self.signals.push(e.clone()),
            (S::Running, WorkflowEvent::ChildScheduled(e)) => {
                let step = self.step_mut(event, &e.step)?;
                if step.status != StepStatus::Pending {
                    return Err(self.refuse(event, format!("step {:?} has started", e.step)));
                }
                step.status = StepStatus::Running;
                step.child = Some((e.run_id, None));
            }
            (S::Running | S::Compensating | S::Failed | S::Cancelled, WorkflowEvent::ChildEnded(e)) => {
                let step = self.step_mut(event, &e.step)?;
                match &step.child {
                    Some((run, None)) if *run == e.run_id => {}
                    _ => {
                        return Err(
                            self.refuse(event, format!("step {:?} runs no child {}", e.step, e.run_id))
                        );
                    }
                }
                let end = if e.ok { Ok(e.output.clone()) } else { Err(e.error.clone().unwrap_or_default()) };
                step.child = Some((e.run_id, Some(end)));
            }
            (S::Running, WorkflowEvent::CancelRequested(e)) => {
                if self.cancel_requested.is_none() {
                    self.cancel_requested = Some((e.by.clone(), e.reason.clone()));
                }
            }
            (S::Running, WorkflowEvent::Completed(e)) => {
                if let Some((name, _)) = self
                    .steps
                    .iter()
                    .find(|(_, s)| !matches!(s.status, StepStatus::Completed | StepStatus::Skipped))
                {
                    return Err(self.refuse(event, format!("step {name:?} has not completed")));
                }
                self.output = Some(e.output.clone());
                self.status = S::Completed;
            }
            (S::Running, WorkflowEvent::Failed(e)) => {
                self.failure = Some(e.reason.clone());
                self.status = S::Failed;
            }
            (S::Running, WorkflowEvent::Cancelled(e)) => {
                self.failure = Some(format!("cancelled by {}: {}", e.by, e.reason));
                self.status = S::Cancelled;
            }
            (S::Completed | S::Failed | S::Cancelled, _) => {
                return Err(self.refuse(event, "the run has ended"));
            }
            _ => return Err(self.refuse(event, "not allowed in this state")),
        }
        self.version += 1;
        Ok(())
    }
}
