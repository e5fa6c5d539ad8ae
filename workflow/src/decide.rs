//! The decider of a run: a pure function of the run's state (which holds its definition) and
//! what woke it — a step's task that ended, or a look — returning the events that are
//! missing. It reads no clock and calls nothing: whatever woke it, on whatever prefix of an
//! earlier decision the log holds, it emits what is still to be recorded, so a redelivered
//! input, a second process or a restart after a crash records nothing twice.
//!
//! Step task ids are derived from (run, step, item, attempt) ([`step_task_id`]): submitting a
//! scheduled task twice finds the task there.

use events::workflow::{
    ApprovalRequested, ChildEnded, ChildScheduled, CompensationEnded, CompensationScheduled,
    CompensationStarted, ItemFailure, OnTimeout, SkippedNeeds, Step, StepCompleted, StepExpanded, StepFailed,
    StepScheduled, StepSkipped, StepStatus, StepTaskEnded, TimerFired, TimerSet, WorkflowCancelled,
    WorkflowCompleted, WorkflowEvent, WorkflowFailed, WorkflowState, WorkflowStatus,
};
use events::{Aggregate, TaskId, WorkflowId};
use serde_json::{Map, Value, json};

use crate::define::{duration_ms, strip};
use crate::expr::{self, kind};
use crate::template;

/// What woke the decider.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// A look at the state: after the run started, a cancel was asked for, or to resume.
    Look,
    /// A timer fired (the engine's timers call at the time set).
    TimerFired {
        /// The timer.
        timer: String,
    },
    /// A child run ended: its output, or why not.
    ChildEnded {
        /// The child run.
        run_id: WorkflowId,
        /// Its output, or why it failed or could not start.
        outcome: Result<Value, String>,
    },
    /// A step's task ended: its output, or why not.
    TaskEnded {
        /// The task.
        task_id: TaskId,
        /// Its output, or the reason it failed, was refused or cancelled.
        outcome: Result<Value, String>,
    },
}

/// The task of `step`'s `item` at `attempt` in run `run`: the same inputs always give the
/// same id.
pub fn step_task_id(run: WorkflowId, step: &str, item: Option<u32>, attempt: u32) -> TaskId {
    let mut hasher = blake3::Hasher::new_derive_key("pantheon workflow step task v1");
    hasher.update(run.0.as_bytes());
    hasher.update(&(step.len() as u64).to_le_bytes());
    hasher.update(step.as_bytes());
    hasher.update(&item.map_or(u64::MAX, u64::from).to_le_bytes());
    hasher.update(&attempt.to_le_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    TaskId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// A stable name of what an event records, for its derived id.
pub fn purpose(event: &WorkflowEvent) -> String {
    let item = |i: &Option<u32>| i.map_or_else(|| "-".to_string(), |i| i.to_string());
    match event {
        WorkflowEvent::Started(_) => "started".into(),
        WorkflowEvent::StepScheduled(e) => format!("scheduled:{}:{}:{}", e.step, item(&e.item), e.attempt),
        WorkflowEvent::StepExpanded(e) => format!("expanded:{}", e.step),
        WorkflowEvent::StepSkipped(e) => format!("skipped:{}", e.step),
        WorkflowEvent::StepTaskEnded(e) => format!("ended:{}", e.task_id),
        WorkflowEvent::StepCompleted(e) => format!("completed:{}", e.step),
        WorkflowEvent::StepFailed(e) => format!("failed:{}", e.step),
        WorkflowEvent::Completed(_) => "completed".into(),
        WorkflowEvent::Failed(_) => "failed".into(),
        WorkflowEvent::CancelRequested(_) => "cancel-requested".into(),
        WorkflowEvent::Cancelled(_) => "cancelled".into(),
        WorkflowEvent::TimerSet(e) => format!("timer-set:{}", e.timer),
        WorkflowEvent::TimerFired(e) => format!("timer-fired:{}", e.timer),
        WorkflowEvent::ApprovalRequested(e) => format!("approval:{}", e.step),
        WorkflowEvent::SignalReceived(e) => format!("signal:{}", e.name),
        WorkflowEvent::CompensationStarted(_) => "compensation-started".into(),
        WorkflowEvent::CompensationScheduled(e) => format!("compensation-scheduled:{}", e.step),
        WorkflowEvent::CompensationEnded(e) => format!("compensation-ended:{}", e.step),
        WorkflowEvent::ChildScheduled(e) => format!("child-scheduled:{}", e.step),
        WorkflowEvent::ChildEnded(e) => format!("child-ended:{}", e.step),
        WorkflowEvent::WebhookAttempted(e) => format!("webhook-attempt:{}:{}", e.webhook_id, e.attempt),
        WorkflowEvent::WebhookDeadLettered(e) => format!("webhook-dead:{}", e.webhook_id),
    }
}

/// The scope of expressions: the run's input and every step's status and output.
fn scope(state: &WorkflowState, item: Option<(u32, &Value)>) -> Value {
    let steps: Map<String, Value> = state
        .steps
        .iter()
        .map(|(name, step)| {
            let status = serde_json::to_value(step.status).unwrap_or(Value::Null);
            (name.clone(), json!({ "status": status, "output": step.output.clone().unwrap_or(Value::Null) }))
        })
        .collect();
    let input = state.started.as_ref().map(|s| s.input.clone()).unwrap_or(Value::Null);
    let mut scope = json!({ "input": input, "steps": steps });
    if let Some((index, item)) = item {
        scope["item"] = item.clone();
        scope["index"] = json!(index);
    }
    scope
}

/// The events missing from `state` after `trigger`, which happened at `at_ms` (the time of
/// the event that woke the decider, not a clock's: timers set now fire at `at_ms` + their
/// delay).
pub fn decide(state: &WorkflowState, trigger: &Trigger, at_ms: i64) -> Vec<WorkflowEvent> {
    let mut decision = Decision { state: state.clone(), out: Vec::new(), at_ms };
    decision.run(trigger);
    decision.out
}

struct Decision {
    state: WorkflowState,
    out: Vec<WorkflowEvent>,
    at_ms: i64,
}

/// A duration written in a definition (checked at registration), as ms.
fn ms(text: &str) -> i64 {
    humantime::parse_duration(text).ok().and_then(|d| i64::try_from(d.as_millis()).ok()).unwrap_or(0)
}

impl Decision {
    /// Records `event` if the state takes it.
    fn push(&mut self, event: WorkflowEvent) -> bool {
        if self.state.apply(&event).is_ok() {
            self.out.push(event);
            true
        } else {
            false
        }
    }

    fn run(&mut self, trigger: &Trigger) {
        if let Trigger::TaskEnded { task_id, outcome } = trigger
            && let Some((step, item)) = self.state.tasks.get(task_id).cloned()
            && let Some(run) = self.state.steps.get(&step).and_then(|s| s.runs.get(&item))
            && run.task_id == *task_id
            && run.ended.is_none()
        {
            let attempt = run.attempt;
            let (ok, output, error) = match outcome {
                Ok(output) => (true, output.clone(), None),
                Err(reason) => (false, Value::Null, Some(reason.clone())),
            };
            self.push(WorkflowEvent::StepTaskEnded(StepTaskEnded {
                step,
                item,
                attempt,
                task_id: *task_id,
                ok,
                output,
                error,
            }));
        }
        if let Trigger::TaskEnded { task_id, outcome } = trigger
            && let Some((step, _)) =
                self.state.compensations.iter().find(|(_, (t, end))| t == task_id && end.is_none())
        {
            let step = step.clone();
            self.push(WorkflowEvent::CompensationEnded(CompensationEnded {
                step,
                task_id: *task_id,
                ok: outcome.is_ok(),
                error: outcome.clone().err(),
            }));
        }
        if let Trigger::ChildEnded { run_id, outcome } = trigger
            && let Some((step, _)) = self.state.running_children().into_iter().find(|(_, r)| r == run_id)
        {
            let (ok, output, error) = match outcome {
                Ok(output) => (true, output.clone(), None),
                Err(reason) => (false, Value::Null, Some(reason.clone())),
            };
            self.push(WorkflowEvent::ChildEnded(ChildEnded { step, run_id: *run_id, ok, output, error }));
        }
        if self.state.status == WorkflowStatus::Compensating {
            return self.compensate();
        }
        if let Trigger::TimerFired { timer } = trigger
            && self.state.timers.contains_key(timer)
        {
            self.push(WorkflowEvent::TimerFired(TimerFired { timer: timer.clone() }));
        }
        if self.state.status != WorkflowStatus::Running {
            return;
        }
        if let Some((by, reason)) = self.state.cancel_requested.clone() {
            self.push(WorkflowEvent::Cancelled(WorkflowCancelled { by, reason }));
            return;
        }
        let Some(started) = self.state.started.clone() else { return };
        let definition = started.definition.clone();
        if let Some(deadline) = &definition.deadline {
            if self.state.fired.contains("deadline") {
                return self.fail_run(format!("the run's deadline of {deadline} passed"));
            }
            if !self.state.timers.contains_key("deadline") {
                let fire_at_ms = started.started_at_ms.saturating_add(ms(deadline));
                self.push(WorkflowEvent::TimerSet(TimerSet { timer: "deadline".into(), fire_at_ms }));
            }
        }
        // Each pass may unblock later steps; a pass that records nothing ends it.
        loop {
            let before = self.out.len();
            for step in &definition.steps {
                match self.state.steps.get(&step.name).map(|s| s.status) {
                    Some(StepStatus::Pending) => self.start(&definition, step),
                    Some(StepStatus::Running) => self.advance(step),
                    _ => {}
                }
            }
            if self.out.len() == before {
                break;
            }
        }
        self.end(&definition);
    }

    /// A pending step whose needs have ended: skipped, failed, expanded or scheduled.
    fn start(&mut self, definition: &events::workflow::Definition, step: &Step) {
        let needs: Vec<(String, StepStatus)> = step
            .needs
            .iter()
            .map(|n| (n.clone(), self.state.steps.get(n).map_or(StepStatus::Pending, |s| s.status)))
            .collect();
        if needs.iter().any(|(_, s)| !s.is_final() || *s == StepStatus::Failed) {
            return;
        }
        if step.on_skipped_needs == SkippedNeeds::Skip
            && let Some((skipped, _)) = needs.iter().find(|(_, s)| *s == StepStatus::Skipped)
        {
            self.skip(step, format!("it needs {skipped}, which was skipped"));
            return;
        }
        let scope = scope(&self.state, None);
        if let Some(when) = &step.when {
            match expr::parse(strip(when)).and_then(|e| e.eval(&scope)) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return self.skip(step, format!("when is false: {when}")),
                Ok(other) => {
                    return self.fail(step, format!("when gave {}, not true or false", kind(&other)));
                }
                Err(e) => return self.fail(step, format!("when: {e}")),
            }
        }
        if let Some(approval) = &step.approval {
            let deadline_at_ms = approval.timeout.as_deref().map(|t| self.at_ms.saturating_add(ms(t)));
            self.push(WorkflowEvent::ApprovalRequested(ApprovalRequested {
                step: step.name.clone(),
                signal: approval.signal.clone(),
                deadline_at_ms,
            }));
            if let Some(fire_at_ms) = deadline_at_ms {
                let timer = format!("approval:{}", step.name);
                self.push(WorkflowEvent::TimerSet(TimerSet { timer, fire_at_ms }));
            }
            return;
        }
        if let Some(child) = &step.workflow {
            let Some(run_id) = self.state.started.as_ref().map(|s| s.run_id) else { return };
            let input = match template::render(&step.input, &scope) {
                Ok(input) => input,
                Err(e) => return self.fail(step, format!("rendering its input: {e}")),
            };
            let child_run = WorkflowId(step_task_id(run_id, &format!("child:{}", step.name), None, 1).0);
            self.push(WorkflowEvent::ChildScheduled(ChildScheduled {
                step: step.name.clone(),
                run_id: child_run,
                name: child.name.clone(),
                version: child.version,
                input,
            }));
            return;
        }
        let Some(list) = &step.for_each else {
            return self.schedule(step, None, 1);
        };
        match expr::parse(strip(list)).and_then(|e| e.eval(&scope)) {
            Ok(Value::Array(items)) => {
                let limit = definition.item_limit(step);
                if items.len() > limit as usize {
                    return self.fail(
                        step,
                        format!("for_each gave {} items; the limit is {limit} (max_items)", items.len()),
                    );
                }
                self.push(WorkflowEvent::StepExpanded(StepExpanded { step: step.name.clone(), items }));
            }
            Ok(other) => self.fail(step, format!("for_each gave {}, not a list", kind(&other))),
            Err(e) => self.fail(step, format!("for_each: {e}")),
        }
    }

    fn skip(&mut self, step: &Step, reason: String) {
        self.push(WorkflowEvent::StepSkipped(StepSkipped { step: step.name.clone(), reason }));
    }

    fn fail(&mut self, step: &Step, reason: String) {
        self.push(WorkflowEvent::StepFailed(StepFailed { step: step.name.clone(), reason }));
    }

    /// Schedules the task of `step`'s `item` at `attempt`, its templates rendered now.
    fn schedule(&mut self, step: &Step, item: Option<u32>, attempt: u32) {
        let Some(run_id) = self.state.started.as_ref().map(|s| s.run_id) else { return };
        let value = item.and_then(|i| {
            self.state
                .steps
                .get(&step.name)
                .and_then(|s| s.items.as_ref())
                .and_then(|items| items.get(i as usize))
        });
        let scope = scope(&self.state, item.zip(value));
        let rendered = template::render_text(&step.description, &scope)
            .and_then(|description| Ok((description, template::render(&step.input, &scope)?)));
        let (description, input) = match rendered {
            Ok((Value::String(d), input)) => (d, input),
            Ok((other, input)) => (other.to_string(), input),
            Err(e) => return self.fail(step, format!("rendering its task: {e}")),
        };
        let description = if description.is_empty() { format!("step {}", step.name) } else { description };
        let timeout_ms = step.timeout.as_deref().and_then(|t| duration_ms("timeout", t).ok());
        self.push(WorkflowEvent::StepScheduled(StepScheduled {
            step: step.name.clone(),
            item,
            attempt,
            task_id: step_task_id(run_id, &step.name, item, attempt),
            capability: step.capability.clone(),
            description,
            input,
            timeout_ms,
        }));
    }

    /// A waiting approval: completed by its signal, or timed out.
    fn await_signal(&mut self, step: &Step) {
        let Some((signal, since)) = self.state.waiting.get(&step.name).cloned() else { return };
        let received = self.state.signals.iter().enumerate().find(|(index, s)| {
            s.name == signal
                && (s.step.as_deref() == Some(step.name.as_str()) || (s.step.is_none() && *index >= since))
        });
        if let Some((_, s)) = received {
            let output = s.payload.clone();
            self.push(WorkflowEvent::StepCompleted(StepCompleted { step: step.name.clone(), output }));
            return;
        }
        if self.state.fired.contains(&format!("approval:{}", step.name)) {
            let approval = step.approval.clone().unwrap_or_else(|| events::workflow::Approval {
                signal: signal.clone(),
                timeout: None,
                on_timeout: OnTimeout::Fail,
            });
            let reason =
                format!("no {signal} signal within {}", approval.timeout.clone().unwrap_or_default());
            match approval.on_timeout {
                OnTimeout::Fail => self.fail(step, reason),
                OnTimeout::Skip => self.push_skip(step, reason),
            }
        }
    }

    fn push_skip(&mut self, step: &Step, reason: String) {
        self.push(WorkflowEvent::StepSkipped(StepSkipped { step: step.name.clone(), reason }));
    }

    /// The wait before `attempt` (2, 3, …) of `step`: its backoff doubled at each retry.
    fn backoff_ms(step: &Step, attempt: u32) -> Option<i64> {
        let retry = step.retry.as_ref()?;
        let first = ms(retry.backoff.as_deref()?);
        let max = retry.backoff_max.as_deref().map_or(5 * 60 * 1000, ms);
        let doublings = attempt.saturating_sub(2).min(30);
        Some(first.saturating_mul(1_i64 << doublings).min(max))
    }

    /// A running step: retries, more items, or its end.
    fn advance(&mut self, step: &Step) {
        if step.approval.is_some() {
            return self.await_signal(step);
        }
        if step.workflow.is_some() {
            let child = self.state.steps.get(&step.name).and_then(|s| s.child.clone());
            match child {
                Some((_, Some(Ok(output)))) => {
                    self.push(WorkflowEvent::StepCompleted(StepCompleted {
                        step: step.name.clone(),
                        output,
                    }));
                }
                Some((run, Some(Err(reason)))) => self.fail(step, format!("child run {run}: {reason}")),
                _ => {}
            }
            return;
        }
        let attempts = step.retry.as_ref().map_or(1, |r| r.attempts);
        let Some(run) = self.state.steps.get(&step.name).cloned() else { return };
        let retries: Vec<(Option<u32>, u32)> = run
            .runs
            .iter()
            .filter(|(_, r)| matches!(r.ended, Some(Err(_))) && r.attempt < attempts)
            .map(|(item, r)| (*item, r.attempt + 1))
            .collect();
        // A failed item with no attempts left.
        let given_up =
            |r: &events::workflow::ItemRun| matches!(r.ended, Some(Err(_))) && r.attempt >= attempts;
        let stopped = step.on_item_failure == ItemFailure::FailFast && run.runs.values().any(given_up);
        if !stopped {
            for (item, attempt) in retries {
                // After its backoff, on a durable timer, when the step says so.
                if let Some(wait) = Self::backoff_ms(step, attempt) {
                    let item_key = item.map_or_else(|| "-".to_string(), |i| i.to_string());
                    let timer = format!("retry:{}:{item_key}:{attempt}", step.name);
                    if !self.state.fired.contains(&timer) {
                        if !self.state.timers.contains_key(&timer) {
                            let fire_at_ms = self.at_ms.saturating_add(wait);
                            self.push(WorkflowEvent::TimerSet(TimerSet { timer, fire_at_ms }));
                        }
                        continue;
                    }
                }
                self.schedule(step, item, attempt);
            }
        }
        let Some(run) = self.state.steps.get(&step.name).cloned() else { return };
        if run.status != StepStatus::Running {
            return;
        }
        let running = run.runs.values().filter(|r| r.ended.is_none()).count();
        let Some(items) = &run.items else {
            match run.runs.get(&None).and_then(|r| r.ended.clone().map(|e| (e, r.attempt))) {
                Some((Ok(output), _)) => {
                    self.push(WorkflowEvent::StepCompleted(StepCompleted {
                        step: step.name.clone(),
                        output,
                    }));
                }
                Some((Err(reason), attempt)) if attempt >= attempts => {
                    let reason =
                        if attempts > 1 { format!("after {attempt} attempts: {reason}") } else { reason };
                    self.fail(step, reason);
                }
                _ => {}
            }
            return;
        };
        if !stopped {
            let parallel = step.max_parallel.map_or(usize::MAX, |p| p as usize);
            let mut running = running;
            for index in 0..items.len() {
                if running >= parallel {
                    break;
                }
                let Ok(index) = u32::try_from(index) else { break };
                if !run.runs.contains_key(&Some(index)) {
                    self.schedule(step, Some(index), 1);
                    running += 1;
                }
            }
        }
        let Some(run) = self.state.steps.get(&step.name).cloned() else { return };
        if run.runs.values().any(|r| r.ended.is_none()) {
            return;
        }
        if stopped {
            let (item, reason) = run
                .runs
                .iter()
                .find(|(_, r)| given_up(r))
                .map(|(i, r)| (i.unwrap_or(0), r.ended.clone().and_then(Result::err).unwrap_or_default()))
                .unwrap_or_default();
            return self.fail(step, format!("item {item} failed: {reason}"));
        }
        let finished = run.runs.len() == items.len()
            && run.runs.values().all(|r| matches!(r.ended, Some(Ok(_))) || given_up(r));
        if finished {
            let output: Vec<Value> = run
                .runs
                .values()
                .map(|r| match &r.ended {
                    Some(Ok(output)) => json!({ "ok": true, "output": output }),
                    Some(Err(error)) => json!({ "ok": false, "error": error }),
                    None => Value::Null,
                })
                .collect();
            self.push(WorkflowEvent::StepCompleted(StepCompleted {
                step: step.name.clone(),
                output: Value::Array(output),
            }));
        }
    }

    /// The run fails for `reason`: after compensating the completed steps that declare it,
    /// when there are any.
    fn fail_run(&mut self, reason: String) {
        let definition = self.state.started.as_ref().map(|s| s.definition.clone());
        let compensable = definition.is_some_and(|d| {
            self.state.completed_order.iter().any(|name| d.step(name).is_some_and(|s| s.compensate.is_some()))
        });
        if compensable {
            self.push(WorkflowEvent::CompensationStarted(CompensationStarted { reason }));
            self.compensate();
        } else {
            self.push(WorkflowEvent::Failed(WorkflowFailed { reason }));
        }
    }

    /// Compensates one step at a time, the last completed first; then the run fails.
    fn compensate(&mut self) {
        loop {
            if self.state.compensations.values().any(|(_, end)| end.is_none()) {
                return; // one runs: wait for it
            }
            let Some(started) = self.state.started.clone() else { return };
            let next = self.state.completed_order.iter().rev().find_map(|name| {
                let step = started.definition.step(name)?;
                let compensation = step.compensate.clone()?;
                (!self.state.compensations.contains_key(name)).then(|| (name.clone(), compensation))
            });
            let Some((name, compensation)) = next else { break };
            let scope = scope(&self.state, None);
            let task_id = step_task_id(started.run_id, &format!("compensate:{name}"), None, 1);
            let rendered = template::render_text(&compensation.description, &scope)
                .and_then(|d| Ok((d, template::render(&compensation.input, &scope)?)));
            let scheduled = |description: String, input: Value| {
                WorkflowEvent::CompensationScheduled(CompensationScheduled {
                    step: name.clone(),
                    task_id,
                    capability: compensation.capability.clone(),
                    description: if description.is_empty() {
                        format!("compensate step {name}")
                    } else {
                        description
                    },
                    input,
                })
            };
            match rendered {
                Ok((description, input)) => {
                    let description = match description {
                        Value::String(d) => d,
                        other => other.to_string(),
                    };
                    self.push(scheduled(description, input));
                    return;
                }
                Err(e) => {
                    // Recorded as a compensation that could not run, and the next one goes on.
                    self.push(scheduled(String::new(), Value::Null));
                    self.push(WorkflowEvent::CompensationEnded(CompensationEnded {
                        step: name.clone(),
                        task_id,
                        ok: false,
                        error: Some(format!("rendering its task: {e}")),
                    }));
                }
            }
        }
        let reason = self.state.compensating_for.clone().unwrap_or_default();
        let (mut undone, mut failed) = (Vec::new(), Vec::new());
        for name in self.state.completed_order.iter().rev() {
            match self.state.compensations.get(name) {
                Some((_, Some(Ok(())))) => undone.push(name.clone()),
                Some((_, Some(Err(e)))) => failed.push(format!("{name} ({e})")),
                _ => {}
            }
        }
        let mut summary = reason;
        if !undone.is_empty() {
            summary.push_str(&format!("; compensated: {}", undone.join(", ")));
        }
        if !failed.is_empty() {
            summary.push_str(&format!("; compensation failed: {}", failed.join(", ")));
        }
        self.push(WorkflowEvent::Failed(WorkflowFailed { reason: summary }));
    }

    /// The run's end: failed when a step failed, completed when every step has ended.
    fn end(&mut self, definition: &events::workflow::Definition) {
        if self.state.status != WorkflowStatus::Running {
            return;
        }
        if let Some((name, step)) = self.state.steps.iter().find(|(_, s)| s.status == StepStatus::Failed) {
            let reason = format!("step {name} failed: {}", step.reason.clone().unwrap_or_default());
            return self.fail_run(reason);
        }
        if !self.state.steps.values().all(|s| s.status.is_final()) {
            return;
        }
        let scope = scope(&self.state, None);
        let output = match &definition.output {
            Some(template) => template::render(template, &scope),
            None => Ok(Value::Object(
                self.state
                    .steps
                    .iter()
                    .filter_map(|(name, s)| s.output.clone().map(|o| (name.clone(), o)))
                    .collect(),
            )),
        };
        match output {
            Ok(output) => self.push(WorkflowEvent::Completed(WorkflowCompleted { output })),
            Err(e) => self.push(WorkflowEvent::Failed(WorkflowFailed { reason: format!("output: {e}") })),
        };
    }
}

#[cfg(test)]
mod tests {
    use events::workflow::{CancelRequested, WorkflowStarted};

    use super::*;

    fn started(yaml: &str, input: Value) -> WorkflowState {
        let definition = crate::define::parse(yaml).expect("a good definition");
        let mut state = WorkflowState::default();
        state
            .apply(&WorkflowEvent::Started(WorkflowStarted {
                run_id: WorkflowId(uuid::Uuid::from_u128(7)),
                name: definition.name.clone(),
                version: 1,
                definition_hash: crate::define::hash(&definition),
                definition,
                input,
                submitter: "a-new-user".into(),
                idempotency_key: None,
                started_at_ms: 0,
                parent: None,
                depth: 0,
                webhook_url: None,
            }))
            .unwrap();
        state
    }

    /// Decides and applies.
    fn step(state: &mut WorkflowState, trigger: &Trigger) -> Vec<WorkflowEvent> {
        let out = decide(state, trigger, 1_000);
        for event in &out {
            state.apply(event).expect("the decision applies");
        }
        out
    }

    fn scheduled(events: &[WorkflowEvent]) -> Vec<StepScheduled> {
        events
            .iter()
            .filter_map(|e| match e {
                WorkflowEvent::StepScheduled(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    const PIPELINE: &str = r#"
name: pipeline
steps:
  - {name: plan, capability: plan, input: "${input.topic}"}
  - name: work
    capability: research
    needs: [plan]
    for_each: "${steps.plan.output.items}"
    max_parallel: 2
    input: {q: "${item}", n: "${index}"}
  - {name: review, capability: review, needs: [work], input: "${steps.work.output}"}
output: {verdict: "${steps.review.output}", items: "${len(steps.work.output)}"}
"#;

    #[test]
    fn a_chain_fans_out_at_most_max_parallel_and_fans_in_in_order() {
        let mut state = started(PIPELINE, json!({"topic": "tides"}));
        let first = scheduled(&step(&mut state, &Trigger::Look));
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].step.as_str(), &first[0].input), ("plan", &json!("tides")));
        assert!(step(&mut state, &Trigger::Look).is_empty(), "a second look adds nothing");
        let plan_done =
            Trigger::TaskEnded { task_id: first[0].task_id, outcome: Ok(json!({"items": ["a", "b", "c"]})) };
        let items = scheduled(&step(&mut state, &plan_done));
        assert_eq!(items.iter().map(|s| s.item).collect::<Vec<_>>(), [Some(0), Some(1)], "max_parallel 2");
        assert_eq!(items[1].input, json!({"q": "b", "n": 1}));
        assert!(step(&mut state, &plan_done).is_empty(), "a redelivered end changes nothing");
        // The second item ends first: the third starts; the fan-in keeps the list's order.
        let third = scheduled(&step(
            &mut state,
            &Trigger::TaskEnded { task_id: items[1].task_id, outcome: Ok(json!("B")) },
        ));
        assert_eq!(third.iter().map(|s| s.item).collect::<Vec<_>>(), [Some(2)]);
        step(&mut state, &Trigger::TaskEnded { task_id: third[0].task_id, outcome: Ok(json!("C")) });
        let review = scheduled(&step(
            &mut state,
            &Trigger::TaskEnded { task_id: items[0].task_id, outcome: Ok(json!("A")) },
        ));
        assert_eq!(review.len(), 1);
        assert_eq!(
            review[0].input,
            json!([{"ok": true, "output": "A"}, {"ok": true, "output": "B"}, {"ok": true, "output": "C"}])
        );
        let end =
            step(&mut state, &Trigger::TaskEnded { task_id: review[0].task_id, outcome: Ok(json!("fine")) });
        assert!(
            matches!(end.last(), Some(WorkflowEvent::Completed(c)) if c.output == json!({"verdict": "fine", "items": 3})),
            "{end:?}"
        );
        assert_eq!(state.status, WorkflowStatus::Completed);
    }

    /// Every decision, cut after any prefix (a half-written batch), is completed by the next
    /// decision whatever woke it, and nothing is recorded twice.
    #[test]
    fn any_prefix_of_a_decision_is_completed_by_the_next() {
        let mut state = started(PIPELINE, json!({"topic": "tides"}));
        let plan = scheduled(&step(&mut state, &Trigger::Look));
        let trigger =
            Trigger::TaskEnded { task_id: plan[0].task_id, outcome: Ok(json!({"items": [1, 2, 3, 4]})) };
        let whole = decide(&state, &trigger, 1_000);
        assert!(whole.len() >= 3, "{whole:?}");
        for cut in 0..whole.len() {
            let mut partial = state.clone();
            for event in &whole[..cut] {
                partial.apply(event).unwrap();
            }
            for again in [trigger.clone(), Trigger::Look] {
                let rest = decide(&partial, &again, 1_000);
                // A look after a cut before the task's end cannot know the end: it adds nothing.
                if cut == 0 && again == Trigger::Look {
                    assert!(rest.is_empty(), "{rest:?}");
                    continue;
                }
                assert_eq!(rest, whole[cut..], "cut after {cut}, woken by {again:?}");
            }
        }
    }

    #[test]
    fn a_false_condition_skips_the_step_and_its_dependents_unless_they_say_run() {
        let yaml = r#"
name: conditional
steps:
  - {name: a, capability: x}
  - {name: b, capability: x, needs: [a], when: "steps.a.output == 'go'"}
  - {name: c, capability: x, needs: [b]}
  - {name: d, capability: x, needs: [b], on_skipped_needs: run, input: "${steps.b.output}"}
"#;
        let mut state = started(yaml, Value::Null);
        let a = scheduled(&step(&mut state, &Trigger::Look));
        let out = step(&mut state, &Trigger::TaskEnded { task_id: a[0].task_id, outcome: Ok(json!("stop")) });
        let skipped: Vec<&str> = out
            .iter()
            .filter_map(|e| if let WorkflowEvent::StepSkipped(s) = e { Some(s.step.as_str()) } else { None })
            .collect();
        assert_eq!(skipped, ["b", "c"]);
        let d = scheduled(&out);
        assert_eq!((d[0].step.as_str(), &d[0].input), ("d", &Value::Null));
    }

    #[test]
    fn a_failed_task_is_retried_as_a_new_task_then_fails_the_run() {
        let yaml = "name: retried\nsteps:\n  - {name: a, capability: x, retry: {attempts: 2}}\n";
        let mut state = started(yaml, Value::Null);
        let first = scheduled(&step(&mut state, &Trigger::Look));
        let second = scheduled(&step(
            &mut state,
            &Trigger::TaskEnded { task_id: first[0].task_id, outcome: Err("boom".into()) },
        ));
        assert_eq!(second[0].attempt, 2);
        assert_ne!(second[0].task_id, first[0].task_id);
        let end = step(
            &mut state,
            &Trigger::TaskEnded { task_id: second[0].task_id, outcome: Err("boom again".into()) },
        );
        assert!(
            matches!(end.last(), Some(WorkflowEvent::Failed(f)) if f.reason.contains("after 2 attempts: boom again")),
            "{end:?}"
        );
    }

    #[test]
    fn fan_out_failures_fail_fast_or_continue_into_the_list() {
        for (policy, expect_failed) in [("fail_fast", true), ("continue", false)] {
            let yaml = format!(
                "name: fan\nsteps:\n  - {{name: f, capability: x, for_each: \"input\", on_item_failure: {policy}, max_parallel: 1}}\n"
            );
            let mut state = started(&yaml, json!([1, 2, 3]));
            let first = scheduled(&step(&mut state, &Trigger::Look));
            let next = step(
                &mut state,
                &Trigger::TaskEnded { task_id: first[0].task_id, outcome: Err("bad".into()) },
            );
            if expect_failed {
                assert!(scheduled(&next).is_empty(), "fail_fast starts nothing more");
                assert!(
                    matches!(next.last(), Some(WorkflowEvent::Failed(f)) if f.reason.contains("item 0 failed: bad")),
                    "{next:?}"
                );
                continue;
            }
            let mut pending = scheduled(&next);
            while let Some(s) = pending.pop() {
                pending.extend(scheduled(&step(
                    &mut state,
                    &Trigger::TaskEnded { task_id: s.task_id, outcome: Ok(json!(s.item)) },
                )));
            }
            assert_eq!(state.status, WorkflowStatus::Completed);
            assert_eq!(
                state.steps["f"].output,
                Some(
                    json!([{"ok": false, "error": "bad"}, {"ok": true, "output": 1}, {"ok": true, "output": 2}])
                )
            );
        }
    }

    #[test]
    fn a_fan_out_over_no_list_or_too_many_items_fails_with_the_reason() {
        let yaml =
            "name: fan\nmax_items: 3\nsteps:\n  - {name: f, capability: x, for_each: \"input.list\"}\n";
        for (input, says) in [
            (json!({"list": "abc"}), "gave a text, not a list"),
            (json!({"list": [1, 2, 3, 4]}), "4 items; the limit is 3"),
        ] {
            let mut state = started(yaml, input);
            let out = step(&mut state, &Trigger::Look);
            assert!(
                matches!(out.last(), Some(WorkflowEvent::Failed(f)) if f.reason.contains(says)),
                "{out:?}"
            );
        }
        let mut empty = started(yaml, json!({"list": []}));
        step(&mut empty, &Trigger::Look);
        assert_eq!(empty.steps["f"].output, Some(json!([])));
        assert_eq!(empty.status, WorkflowStatus::Completed);
    }

    #[test]
    fn a_cancel_ends_the_run_and_nothing_starts_after() {
        let mut state = started(PIPELINE, json!({"topic": "tides"}));
        let plan = scheduled(&step(&mut state, &Trigger::Look));
        state
            .apply(&WorkflowEvent::CancelRequested(CancelRequested {
                by: "a-new-user".into(),
                reason: "enough".into(),
            }))
            .unwrap();
        let out = step(
            &mut state,
            &Trigger::TaskEnded { task_id: plan[0].task_id, outcome: Ok(json!({"items": [1]})) },
        );
        assert!(scheduled(&out).is_empty(), "{out:?}");
        assert_eq!(state.status, WorkflowStatus::Cancelled);
        assert!(matches!(state.steps["plan"].runs[&None].ended, Some(Ok(_))), "the end is still recorded");
    }

    #[test]
    fn step_task_ids_differ_by_every_part_and_repeat_for_the_same() {
        let run = WorkflowId(uuid::Uuid::from_u128(1));
        let id = step_task_id(run, "a", Some(1), 1);
        assert_eq!(id, step_task_id(run, "a", Some(1), 1));
        for other in [
            step_task_id(WorkflowId(uuid::Uuid::from_u128(2)), "a", Some(1), 1),
            step_task_id(run, "b", Some(1), 1),
            step_task_id(run, "a", None, 1),
            step_task_id(run, "a", Some(2), 1),
            step_task_id(run, "a", Some(1), 2),
        ] {
            assert_ne!(id, other);
        }
    }
    fn signal(state: &mut WorkflowState, name: &str, step: Option<&str>, payload: Value) {
        state
            .apply(&WorkflowEvent::SignalReceived(events::workflow::SignalReceived {
                name: name.into(),
                step: step.map(str::to_string),
                payload,
                by: "a-new-user".into(),
            }))
            .unwrap();
    }

    fn timers(events: &[WorkflowEvent]) -> Vec<(String, i64)> {
        events
            .iter()
            .filter_map(|e| match e {
                WorkflowEvent::TimerSet(t) => Some((t.timer.clone(), t.fire_at_ms)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_approval_waits_for_its_signal_and_completes_with_the_payload() {
        let yaml = r#"
name: approved
steps:
  - {name: draft, capability: x}
  - {name: sign-off, needs: [draft], approval: {signal: approve, timeout: 1h}}
  - {name: publish, capability: x, needs: [sign-off], input: "${steps.sign-off.output.note}"}
"#;
        let mut state = started(yaml, Value::Null);
        // A signal naming no step, sent before anyone waits, is not taken for a later wait.
        signal(&mut state, "approve", None, json!({"note": "too early"}));
        let draft = scheduled(&step(&mut state, &Trigger::Look));
        let waiting =
            step(&mut state, &Trigger::TaskEnded { task_id: draft[0].task_id, outcome: Ok(json!("d")) });
        assert!(
            matches!(&waiting[2], WorkflowEvent::ApprovalRequested(a) if a.deadline_at_ms == Some(1_000 + 3_600_000)),
            "{waiting:?}"
        );
        assert_eq!(timers(&waiting), [("approval:sign-off".to_string(), 1_000 + 3_600_000)]);
        assert!(step(&mut state, &Trigger::Look).is_empty(), "still waiting");
        signal(&mut state, "reject", Some("sign-off"), json!(null));
        assert!(step(&mut state, &Trigger::Look).is_empty(), "another signal's name");
        signal(&mut state, "approve", Some("sign-off"), json!({"note": "ship it"}));
        let next = step(&mut state, &Trigger::Look);
        assert!(
            matches!(&next[0], WorkflowEvent::StepCompleted(c) if c.output == json!({"note": "ship it"})),
            "{next:?}"
        );
        assert_eq!(scheduled(&next)[0].input, json!("ship it"));
        // The timeout firing late changes nothing but the timer.
        let late = step(&mut state, &Trigger::TimerFired { timer: "approval:sign-off".into() });
        assert_eq!(late.len(), 1, "{late:?}");
    }

    #[test]
    fn an_approval_that_times_out_fails_or_skips_as_it_says() {
        for (on_timeout, failed) in [("fail", true), ("skip", false)] {
            let yaml = format!(
                "name: t\nsteps:\n  - {{name: ok, approval: {{timeout: 5s, on_timeout: {on_timeout}}}}}\n  - {{name: after, capability: x, needs: [ok], on_skipped_needs: run}}\n"
            );
            let mut state = started(&yaml, Value::Null);
            step(&mut state, &Trigger::Look);
            let out = step(&mut state, &Trigger::TimerFired { timer: "approval:ok".into() });
            if failed {
                assert!(
                    matches!(out.last(), Some(WorkflowEvent::Failed(f)) if f.reason.contains("no approve signal within 5s")),
                    "{out:?}"
                );
            } else {
                assert!(matches!(&out[1], WorkflowEvent::StepSkipped(_)), "{out:?}");
                assert_eq!(scheduled(&out).len(), 1, "its dependent runs");
            }
        }
    }

    #[test]
    fn a_deadline_is_a_timer_set_at_the_start_and_fails_the_run_when_it_fires() {
        let yaml = "name: d\ndeadline: 10m\nsteps:\n  - {name: a, capability: x}\n";
        let mut state = started(yaml, Value::Null);
        let first = step(&mut state, &Trigger::Look);
        assert_eq!(timers(&first), [("deadline".to_string(), 600_000)], "from the run's start (0)");
        assert!(step(&mut state, &Trigger::Look).is_empty(), "set once");
        let out = step(&mut state, &Trigger::TimerFired { timer: "deadline".into() });
        assert!(
            matches!(out.last(), Some(WorkflowEvent::Failed(f)) if f.reason.contains("deadline of 10m")),
            "{out:?}"
        );
    }

    #[test]
    fn a_retry_waits_its_backoff_on_a_timer_doubling_up_to_the_most() {
        let yaml = "name: b\nsteps:\n  - {name: a, capability: x, retry: {attempts: 4, backoff: 1s, backoff_max: 3s}}\n";
        let mut state = started(yaml, Value::Null);
        let mut task = scheduled(&step(&mut state, &Trigger::Look))[0].task_id;
        for (attempt, wait) in [(2, 1_000), (3, 2_000), (4, 3_000)] {
            let failed = step(&mut state, &Trigger::TaskEnded { task_id: task, outcome: Err("no".into()) });
            assert!(scheduled(&failed).is_empty(), "not before the backoff");
            assert_eq!(timers(&failed), [(format!("retry:a:-:{attempt}"), 1_000 + wait)]);
            let retried = step(&mut state, &Trigger::TimerFired { timer: format!("retry:a:-:{attempt}") });
            let again = scheduled(&retried);
            assert_eq!(again[0].attempt, attempt);
            task = again[0].task_id;
        }
    }
    #[test]
    fn a_failure_after_compensable_steps_undoes_them_in_reverse_completion_order() {
        let yaml = r#"
name: saga
steps:
  - {name: book, capability: x, compensate: {capability: undo, input: "${steps.book.output}"}}
  - {name: pay, capability: x, needs: [book], compensate: {capability: refund, input: "${steps.pay.output}"}}
  - {name: plain, capability: x, needs: [book]}
  - {name: ship, capability: x, needs: [pay, plain]}
"#;
        let mut state = started(yaml, Value::Null);
        let book = scheduled(&step(&mut state, &Trigger::Look));
        let next = scheduled(&step(
            &mut state,
            &Trigger::TaskEnded { task_id: book[0].task_id, outcome: Ok(json!("B")) },
        ));
        let (pay, plain) = (&next[0], &next[1]);
        step(&mut state, &Trigger::TaskEnded { task_id: pay.task_id, outcome: Ok(json!("P")) });
        let ship = scheduled(&step(
            &mut state,
            &Trigger::TaskEnded { task_id: plain.task_id, outcome: Ok(json!("-")) },
        ));
        let failing = step(
            &mut state,
            &Trigger::TaskEnded { task_id: ship[0].task_id, outcome: Err("no truck".into()) },
        );
        assert_eq!(state.status, WorkflowStatus::Compensating, "{failing:?}");
        let first = failing
            .iter()
            .find_map(
                |e| if let WorkflowEvent::CompensationScheduled(c) = e { Some(c.clone()) } else { None },
            )
            .expect("the last completed compensable step first");
        assert_eq!(
            (first.step.as_str(), first.capability.as_str(), &first.input),
            ("pay", "refund", &json!("P"))
        );
        let then =
            step(&mut state, &Trigger::TaskEnded { task_id: first.task_id, outcome: Ok(json!("refunded")) });
        let second = then
            .iter()
            .find_map(
                |e| if let WorkflowEvent::CompensationScheduled(c) = e { Some(c.clone()) } else { None },
            )
            .expect("then the one before");
        assert_eq!(second.step, "book");
        let end = step(
            &mut state,
            &Trigger::TaskEnded { task_id: second.task_id, outcome: Err("too late".into()) },
        );
        let Some(WorkflowEvent::Failed(failed)) = end.last() else { panic!("{end:?}") };
        assert_eq!(
            failed.reason,
            "step ship failed: no truck; compensated: pay; compensation failed: book (too late)"
        );
    }
}
