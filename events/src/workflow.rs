//! A workflow's events (`workflow-<workflow_id>`): a DAG of steps, each a task for a capability,
//! with fan-out and fan-in; and its state as a fold.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::domain_events;
use crate::event::Version;
use crate::id::{TaskId, WorkflowId};
use crate::state::{Aggregate, TransitionError};

/// One step of a workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepSpec {
    /// The step's name, unique in the workflow.
    pub name: String,
    /// The capability it needs.
    pub capability: String,
    /// What to do.
    pub description: String,
    /// Input data.
    #[serde(default)]
    pub input: serde_json::Value,
    /// Steps whose outputs it needs (fan-in).
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// A workflow started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowStarted {
    /// The workflow.
    pub workflow_id: WorkflowId,
    /// Its steps: a DAG.
    pub steps: Vec<StepSpec>,
    /// Who started it.
    pub submitter: String,
}

/// A step's task was submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepScheduled {
    /// The step.
    pub step: String,
    /// Its task.
    pub task_id: TaskId,
}

/// A step's task completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepCompleted {
    /// The step.
    pub step: String,
    /// Its task.
    pub task_id: TaskId,
    /// The task's output.
    pub output: serde_json::Value,
}

/// A step's task failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StepFailed {
    /// The step.
    pub step: String,
    /// Its task.
    pub task_id: TaskId,
    /// Why.
    pub reason: String,
}

/// Every step completed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowCompleted {
    /// Each step's output, by step name.
    pub outputs: BTreeMap<String, serde_json::Value>,
}

/// The workflow failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WorkflowFailed {
    /// Why.
    pub reason: String,
}

domain_events! {
    /// Every event of a workflow's stream.
    pub enum WorkflowEvent: "workflow", kinds WorkflowEventKind {
        /// Started.
        Started(WorkflowStarted) = "workflow_started" @ 1,
        /// A step's task was submitted.
        StepScheduled(StepScheduled) = "step_scheduled" @ 1,
        /// A step completed.
        StepCompleted(StepCompleted) = "step_completed" @ 1,
        /// A step failed.
        StepFailed(StepFailed) = "step_failed" @ 1,
        /// All steps completed.
        Completed(WorkflowCompleted) = "workflow_completed" @ 1,
        /// The workflow failed.
        Failed(WorkflowFailed) = "workflow_failed" @ 1,
    }
}

/// Checks that steps form a DAG: unique names, known dependencies, no cycles.
pub fn validate_steps(steps: &[StepSpec]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("a workflow needs at least one step".into());
    }
    let mut names = BTreeSet::new();
    for step in steps {
        if !names.insert(step.name.as_str()) {
            return Err(format!("step name {:?} is used twice", step.name));
        }
    }
    for step in steps {
        if let Some(missing) = step.depends_on.iter().find(|d| !names.contains(d.as_str())) {
            return Err(format!("step {:?} depends on unknown step {missing:?}", step.name));
        }
    }
    // Kahn's algorithm: a cycle leaves steps that never become ready.
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < steps.len() {
        let ready: Vec<&str> = steps
            .iter()
            .filter(|s| !done.contains(s.name.as_str()))
            .filter(|s| s.depends_on.iter().all(|d| done.contains(d.as_str())))
            .map(|s| s.name.as_str())
            .collect();
        if ready.is_empty() {
            return Err("the steps' dependencies form a cycle".into());
        }
        done.extend(ready);
    }
    Ok(())
}

/// Where a workflow is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    /// No events yet.
    #[default]
    New,
    /// Steps are running.
    Running,
    /// Every step completed.
    Completed,
    /// It failed.
    Failed,
}

/// A workflow's state: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkflowState {
    /// Events applied.
    pub version: Version,
    /// Where it is.
    pub status: WorkflowStatus,
    /// Its steps.
    pub steps: Vec<StepSpec>,
    /// Steps scheduled, with their tasks.
    pub scheduled: BTreeMap<String, TaskId>,
    /// Outputs of completed steps.
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Why it failed.
    pub failure: Option<String>,
}

impl WorkflowState {
    /// Steps whose dependencies have all completed and that are not scheduled yet.
    pub fn ready_steps(&self) -> Vec<&StepSpec> {
        self.steps
            .iter()
            .filter(|s| !self.scheduled.contains_key(&s.name))
            .filter(|s| s.depends_on.iter().all(|d| self.outputs.contains_key(d)))
            .collect()
    }

    fn refuse(&self, event: &WorkflowEvent, reason: impl Into<String>) -> TransitionError {
        use crate::domain::DomainEvent;
        TransitionError {
            entity: "workflow",
            state: format!("{:?}", self.status).to_lowercase(),
            event_type: event.event_type().to_string(),
            reason: reason.into(),
        }
    }

    fn scheduled_task(&self, event: &WorkflowEvent, step: &str, task: TaskId) -> Result<(), TransitionError> {
        match self.scheduled.get(step) {
            Some(t) if *t == task => Ok(()),
            _ => Err(self.refuse(event, format!("step {step:?} is not scheduled as task {task}"))),
        }
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
            (S::New, WorkflowEvent::Started(e)) => {
                validate_steps(&e.steps).map_err(|reason| self.refuse(event, reason))?;
                self.steps = e.steps.clone();
                self.status = S::Running;
            }
            (S::Running, WorkflowEvent::StepScheduled(e)) => {
                let ready = self.ready_steps().iter().any(|s| s.name == e.step);
                if !ready {
                    return Err(self.refuse(event, format!("step {:?} is not ready", e.step)));
                }
                self.scheduled.insert(e.step.clone(), e.task_id);
            }
            (S::Running, WorkflowEvent::StepCompleted(e)) => {
                self.scheduled_task(event, &e.step, e.task_id)?;
                if self.outputs.contains_key(&e.step) {
                    return Err(self.refuse(event, format!("step {:?} completed already", e.step)));
                }
                self.outputs.insert(e.step.clone(), e.output.clone());
            }
            (S::Running, WorkflowEvent::StepFailed(e)) => {
                self.scheduled_task(event, &e.step, e.task_id)?;
            }
            (S::Running, WorkflowEvent::Completed(_)) => {
                if self.outputs.len() != self.steps.len() {
                    return Err(self.refuse(event, "not every step has completed"));
                }
                self.status = S::Completed;
            }
            (S::Running, WorkflowEvent::Failed(e)) => {
                self.failure = Some(e.reason.clone());
                self.status = S::Failed;
            }
            (S::Completed | S::Failed, _) => return Err(self.refuse(event, "the workflow has ended")),
            _ => return Err(self.refuse(event, "not allowed in this state")),
        }
        self.version += 1;
        Ok(())
    }
}
