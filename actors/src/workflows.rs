//! The workflow engine: one more event-sourced actor on the same log. A run's state is the
//! fold of its stream (`workflow-<run_id>`), and what happens next is decided by the pure
//! `workflow::decide`; this module feeds it and does what it decides.
//!
//! - `WorkflowSteps`, a member of the phases' group, takes every task's final event
//!   (`task_completed`, `task_failed`, `task_rejected`, `task_cancelled`); for a workflow's
//!   step task it decides on the run with the task's outcome (`step_task_ended`, and whatever
//!   follows: the next steps scheduled, the step's or the run's end).
//! - `WorkflowRuns` takes the runs' own events: on `workflow_started` and
//!   `workflow_cancel_requested` it decides; on `step_scheduled` it submits the step's task
//!   (an ordinary task: screened, matched, sealed, verified, audited), whose id is derived
//!   from (run, step, item, attempt), so a second submission finds it there; on
//!   `workflow_failed` and `workflow_cancelled` it cancels the step tasks still running.
//!
//! Every decision is appended expecting the run's version it was made on, with ids derived
//! from the input and each event's purpose: a redelivered input, or a second process, writes
//! nothing twice, and a batch cut short is completed by the next decision whatever woke it.
//!
//! The commands — register a definition, start a run, cancel one — are `workflow::commands`,
//! called by the gateway and the command line alike.

use std::sync::Arc;

use async_trait::async_trait;
use events::task::{Channel, TaskStatus};
use events::workflow::WorkflowEvent;
use events::{
    Aggregate, DomainEvent, EventId, ExpectedVersion, LogError, Metadata, RecordedEvent, SignedSubmission,
    StreamId, TaskSpec, TaskState, Version, WorkflowId, WorkflowState,
};
use workflow::Trigger;

use crate::error::{Error, Result};
use crate::phase::{CONFLICT_RETRY_COUNT_MAX, Ctx, Handled, Phase, load_task_cached, task_id_of};

/// The subscription group of the runs' own events.
pub const WORKFLOWS_GROUP: &str = "workflows";

/// The emitter of the engine's events.
const EMITTER: &str = "workflow";

/// A run folded, as the engine keeps it between events.
#[derive(Clone, Debug, Default)]
pub(crate) struct Folded {
    state: WorkflowState,
    version: Version,
    /// The run's first event: the correlation id of its events.
    first_id: Option<EventId>,
}

/// The most runs whose folds a process keeps.
const RUN_CACHE_COUNT_MAX: usize = 1_024;

/// Locks striped by run: one process decides on a run one input at a time (a fan-out's
/// items ending together would otherwise race for the run's stream and re-read it each time).
const RUN_LOCK_COUNT: usize = 64;

/// The engine's folds of runs, and its per-run locks. Only an optimisation: a cached fold is
/// the fold of the stream's first `version` events, appends still expect the version decided
/// on, and another process's events are read before deciding.
pub(crate) struct Runs {
    locks: Vec<tokio::sync::Mutex<()>>,
    folds: std::sync::Mutex<(
        std::collections::HashMap<WorkflowId, Folded>,
        std::collections::VecDeque<WorkflowId>,
    )>,
}

impl Default for Runs {
    fn default() -> Self {
        Self {
            locks: (0..RUN_LOCK_COUNT).map(|_| tokio::sync::Mutex::new(())).collect(),
            folds: Default::default(),
        }
    }
}

impl Runs {
    fn lock(&self, run_id: WorkflowId) -> &tokio::sync::Mutex<()> {
        let index = (run_id.0.as_u128() % RUN_LOCK_COUNT as u128) as usize;
        &self.locks[index]
    }

    fn get(&self, run_id: WorkflowId) -> Option<Folded> {
        self.folds.lock().ok().and_then(|f| f.0.get(&run_id).cloned())
    }

    fn put(&self, run_id: WorkflowId, folded: Folded) {
        let Ok(mut guard) = self.folds.lock() else { return };
        let (folds, order) = &mut *guard;
        if folds.insert(run_id, folded).is_none() {
            order.push_back(run_id);
            while folds.len() > RUN_CACHE_COUNT_MAX {
                let Some(oldest) = order.pop_front() else { break };
                folds.remove(&oldest);
            }
        }
    }
}

/// The run's fold: the cached one with the events recorded since.
async fn load_folded(ctx: &Ctx, run_id: WorkflowId) -> Result<Folded> {
    let mut folded = ctx.runs.get(run_id).unwrap_or_default();
    let stream = StreamId::workflow(run_id);
    loop {
        let page = ctx.log.read_stream(&stream, folded.version + 1, 1_000).await?;
        let more = page.len() == 1_000;
        for recorded in page {
            folded.version = recorded.version;
            folded.first_id.get_or_insert(recorded.id);
            match WorkflowEvent::from_recorded(&recorded) {
                Ok(event) => {
                    if let Err(refused) = folded.state.apply(&event) {
                        tracing::warn!(%run_id, %refused, "a run's event the fold refuses; skipped");
                    }
                }
                Err(error) => tracing::warn!(%run_id, %error, "a run's event that does not decode; skipped"),
            }
        }
        if !more {
            break;
        }
    }
    if folded.version > 0 {
        ctx.runs.put(run_id, folded.clone());
    }
    Ok(folded)
}

/// Decides on the run with `trigger` (which happened at `at_ms`) and appends what is missing,
/// expecting the version read, with ids derived from `cause_id`; after a conflict or a
/// duplicate (a batch written before, perhaps only in part) it reads again and decides again.
/// The tasks it scheduled are submitted at once (their `step_scheduled` delivered later finds
/// them there).
pub(crate) async fn advance(
    ctx: &Ctx,
    run_id: WorkflowId,
    cause_id: EventId,
    at_ms: i64,
    trigger: &Trigger,
) -> Result<()> {
    let stream = StreamId::workflow(run_id);
    let _one_at_a_time = ctx.runs.lock(run_id).lock().await;
    for _ in 0..CONFLICT_RETRY_COUNT_MAX {
        let mut folded = load_folded(ctx, run_id).await?;
        if folded.version == 0 {
            return Ok(()); // not started (a foreign task naming a run that does not exist)
        }
        let decided = workflow::decide(&folded.state, trigger, at_ms);
        if decided.is_empty() {
            return Ok(());
        }
        let metadata = Metadata {
            occurred_at_ms: ctx.clock.now_ms(),
            causation_id: Some(cause_id),
            correlation_id: folded.first_id,
            emitter: EMITTER.to_string(),
            traceparent: None,
        };
        let batch = decided
            .iter()
            .map(|event| {
                event.to_new_event(EventId::derived(cause_id, &workflow::purpose(event)), metadata.clone())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        match ctx.log.append(&stream, ExpectedVersion::Exact(folded.version), batch).await {
            Ok(outcome) if !outcome.duplicate => {
                for event in &decided {
                    if folded.state.apply(event).is_err() {
                        break;
                    }
                }
                folded.version = outcome.last_version;
                ctx.runs.put(run_id, folded.clone());
                for event in &decided {
                    if let WorkflowEvent::StepScheduled(s) = event {
                        submit_step(ctx, run_id, &folded.state, StepTask::of(s)).await?;
                    }
                }
                return Ok(());
            }
            Ok(_) | Err(LogError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::ConflictRetriesExhausted { stream_id: stream.to_string(), attempts: CONFLICT_RETRY_COUNT_MAX })
}

/// How often the due timers are looked for.
const TIMER_POLL_MS: u64 = 100;

/// Timers due at most per look.
const TIMERS_DUE_COUNT_MAX: i64 = 256;

/// The workflows' durable timers: rows of the read models' database when there is one (every
/// process sees them, a restart loses none), else kept in this process (a process without
/// read models: tests; a restart finds them again when their `timer_set` is redelivered).
pub(crate) struct Timers {
    table: Option<projections::TimerTable>,
    memory: std::sync::Mutex<std::collections::BTreeSet<(i64, WorkflowId, String)>>,
}

impl Timers {
    pub(crate) fn new(table: Option<projections::TimerTable>) -> Self {
        Self { table, memory: std::sync::Mutex::default() }
    }

    async fn set(&self, run_id: WorkflowId, timer: &str, fire_at_ms: i64) -> Result<()> {
        match &self.table {
            Some(table) => table.set(&run_id.to_string(), timer, fire_at_ms).await?,
            None => {
                if let Ok(mut memory) = self.memory.lock() {
                    memory.insert((fire_at_ms, run_id, timer.to_string()));
                }
            }
        }
        Ok(())
    }

    async fn due(&self, now_ms: i64) -> Result<Vec<(i64, WorkflowId, String)>> {
        match &self.table {
            Some(table) => Ok(table
                .due(now_ms, TIMERS_DUE_COUNT_MAX)
                .await?
                .into_iter()
                .filter_map(|t| t.run_id.parse().ok().map(|run| (t.fire_at_ms, run, t.timer)))
                .collect()),
            None => Ok(self
                .memory
                .lock()
                .map(|memory| memory.iter().take_while(|(at, _, _)| *at <= now_ms).cloned().collect())
                .unwrap_or_default()),
        }
    }

    async fn remove(&self, at_ms: i64, run_id: WorkflowId, timer: &str) -> Result<()> {
        match &self.table {
            Some(table) => table.remove(&run_id.to_string(), timer).await?,
            None => {
                if let Ok(mut memory) = self.memory.lock() {
                    memory.remove(&(at_ms, run_id, timer.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// Fires the due timers until shutdown: `timer_fired` on each run (and whatever follows),
/// decided once whichever process fires it.
pub(crate) async fn fire_timers(ctx: Arc<Ctx>) {
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_millis(TIMER_POLL_MS)) => {}
        }
        let due = match ctx.timers.due(ctx.clock.now_ms()).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "workflow timers could not be read");
                continue;
            }
        };
        for (at_ms, run_id, timer) in due {
            // The cause of what the timer decides: its own `timer_set`, so that two processes
            // firing it derive the same ids.
            let cause = match workflow::load_run(ctx.log.as_ref(), run_id).await {
                Ok(run) => run.events.iter().find_map(|r| match WorkflowEvent::from_recorded(r) {
                    Ok(WorkflowEvent::TimerSet(set)) if set.timer == timer => Some(r.id),
                    _ => None,
                }),
                Err(error) => {
                    tracing::warn!(%run_id, %error, "a run with a due timer could not be read");
                    continue;
                }
            };
            let fired = match cause {
                Some(cause) => {
                    advance(&ctx, run_id, cause, at_ms, &Trigger::TimerFired { timer: timer.clone() }).await
                }
                None => Ok(()),
            };
            match fired {
                Ok(()) => {
                    if let Err(error) = ctx.timers.remove(at_ms, run_id, &timer).await {
                        tracing::warn!(%run_id, %timer, %error, "a fired timer was not removed");
                    }
                }
                Err(error) => {
                    tracing::warn!(%run_id, %timer, %error, "a workflow timer did not fire; again shortly")
                }
            }
        }
    }
}

/// A finished task's outcome as a step sees it: its output, or why it has none.
fn outcome(state: &TaskState) -> Option<Result<serde_json::Value, String>> {
    match state.status {
        TaskStatus::Completed => Some(Ok(state.output.clone().unwrap_or_default())),
        status if status.is_final() => Some(Err(state
            .end_reason
            .clone()
            .or_else(|| state.last_failure.clone())
            .unwrap_or_else(|| format!("the task ended {status}")))),
        _ => None,
    }
}

/// The phase member that reports step tasks' ends to their runs.
pub(crate) struct WorkflowSteps;

#[async_trait]
impl Phase for WorkflowSteps {
    fn name(&self) -> &'static str {
        "workflow-steps"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[
            events::TaskEventKind::Completed,
            events::TaskEventKind::Failed,
            events::TaskEventKind::Rejected,
            events::TaskEventKind::Cancelled,
        ]
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        let Some(task_id) = task_id_of(&input.stream_id) else { return Ok(Handled::Done) };
        let loaded = load_task_cached(ctx, task_id).await?;
        let Some(step) = loaded.state.submitted.as_ref().and_then(|s| s.spec.workflow.clone()) else {
            return Ok(Handled::Done);
        };
        let Some(outcome) = outcome(&loaded.state) else { return Ok(Handled::Done) };
        let trigger = Trigger::TaskEnded { task_id, outcome };
        advance(ctx, step.workflow_id, input.id, input.metadata.occurred_at_ms, &trigger).await?;
        Ok(Handled::Done)
    }
}

/// The engine's member for the runs' own events, in a group of its own ([`WORKFLOWS_GROUP`]:
/// on JetStream a consumer filtered on the `workflow` category, its events handed out in the
/// process).
pub(crate) struct WorkflowRuns;

/// The run events [`WorkflowRuns`] acts on.
const RUN_INPUTS: &[&str] = &[
    "workflow_started",
    "workflow_cancel_requested",
    "signal_received",
    "step_scheduled",
    "timer_set",
    "compensation_started",
    "compensation_scheduled",
    "child_scheduled",
    "workflow_completed",
    "workflow_failed",
    "workflow_cancelled",
];

#[async_trait]
impl Phase for WorkflowRuns {
    fn name(&self) -> &'static str {
        "workflow-runs"
    }

    fn inputs(&self) -> &'static [events::TaskEventKind] {
        &[]
    }

    fn group(&self) -> &'static str {
        WORKFLOWS_GROUP
    }

    fn subscription(&self) -> std::result::Result<events::SubscribeOptions, events::Error> {
        let types = RUN_INPUTS
            .iter()
            .map(|t| events::EventType::new(*t))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(events::SubscribeOptions {
            filter: events::Filter::category(WorkflowEvent::CATEGORY).with_types(types),
            start: events::StartFrom::Beginning,
        })
    }

    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled> {
        if input.stream_id.category() != WorkflowEvent::CATEGORY {
            return Ok(Handled::Done);
        }
        let Ok(run_id) = input.stream_id.entity_id().parse::<WorkflowId>() else { return Ok(Handled::Done) };
        let event = match WorkflowEvent::from_recorded(input) {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%run_id, %error, "a run's event that does not decode; skipped");
                return Ok(Handled::Done);
            }
        };
        match &event {
            WorkflowEvent::Started(_)
            | WorkflowEvent::CancelRequested(_)
            | WorkflowEvent::SignalReceived(_) => {
                advance(ctx, run_id, input.id, input.metadata.occurred_at_ms, &Trigger::Look).await?;
            }
            WorkflowEvent::TimerSet(set) => ctx.timers.set(run_id, &set.timer, set.fire_at_ms).await?,
            // Submitted when it was decided, unless the process stopped in between.
            WorkflowEvent::StepScheduled(s)
                if ctx.log.stream_version(&StreamId::task(s.task_id)).await? == 0 =>
            {
                let folded = load_folded(ctx, run_id).await?;
                submit_step(ctx, run_id, &folded.state, StepTask::of(s)).await?;
            }
            WorkflowEvent::CompensationScheduled(s) => {
                let task = StepTask {
                    step: &s.step,
                    item: None,
                    task_id: s.task_id,
                    capability: &s.capability,
                    description: &s.description,
                    input: &s.input,
                    timeout_ms: None,
                    compensation: true,
                };
                let folded = load_folded(ctx, run_id).await?;
                submit_step(ctx, run_id, &folded.state, task).await?;
            }
            WorkflowEvent::ChildScheduled(child) => start_child(ctx, run_id, input, child).await?,
            WorkflowEvent::Completed(_) => report_to_parent(ctx, run_id, input).await?,
            WorkflowEvent::Failed(_)
            | WorkflowEvent::Cancelled(_)
            | WorkflowEvent::CompensationStarted(_) => {
                let run = workflow::load_run(ctx.log.as_ref(), run_id).await?;
                let reason = format!("workflow run {run_id} ended");
                for (_, _, task_id) in run.state.running_tasks() {
                    crate::client::cancel(ctx.log.as_ref(), task_id, EMITTER, &reason).await?;
                }
                for (_, child) in run.state.running_children() {
                    match workflow::cancel(ctx.log.as_ref(), child, EMITTER, &reason).await {
                        Ok(())
                        | Err(workflow::WorkflowError::Ended(_) | workflow::WorkflowError::NotFound(_)) => {}
                        Err(error) => return Err(Error::Workflow(error.to_string())),
                    }
                }
                if !matches!(event, WorkflowEvent::CompensationStarted(_)) {
                    report_to_parent(ctx, run_id, input).await?;
                }
            }
            _ => {}
        }
        Ok(Handled::Done)
    }
}

/// Starts the child run a step asked for (its id derived from the run and the step, so a
/// second start finds it); one that cannot start ends the step with the reason.
async fn start_child(
    ctx: &Ctx,
    run_id: WorkflowId,
    input: &RecordedEvent,
    child: &events::workflow::ChildScheduled,
) -> Result<()> {
    let run = workflow::load_run(ctx.log.as_ref(), run_id).await?;
    let Some(started) = &run.state.started else { return Ok(()) };
    if run.state.status.is_final() {
        return Ok(());
    }
    let request = workflow::StartRun {
        what: workflow::Start::Named(child.name.clone(), child.version),
        input: child.input.clone(),
        submitter: started.submitter.clone(),
        idempotency_key: None,
        offered: None,
        run_id: Some(child.run_id),
        parent: Some((
            events::workflow::ParentRun { run_id, step: child.step.clone() },
            started.depth.saturating_add(1),
        )),
        webhook_url: None,
    };
    match workflow::start(ctx.log.as_ref(), request).await {
        Ok(_) => Ok(()),
        Err(workflow::WorkflowError::Invalid { field, message }) => {
            let trigger =
                Trigger::ChildEnded { run_id: child.run_id, outcome: Err(format!("{field}: {message}")) };
            advance(ctx, run_id, input.id, input.metadata.occurred_at_ms, &trigger).await
        }
        Err(workflow::WorkflowError::NotFound(what)) => {
            let trigger = Trigger::ChildEnded {
                run_id: child.run_id,
                outcome: Err(format!("{what} is not registered")),
            };
            advance(ctx, run_id, input.id, input.metadata.occurred_at_ms, &trigger).await
        }
        Err(error) => Err(Error::Workflow(error.to_string())),
    }
}

/// Tells a child run's parent that it ended.
async fn report_to_parent(ctx: &Ctx, run_id: WorkflowId, input: &RecordedEvent) -> Result<()> {
    let run = workflow::load_run(ctx.log.as_ref(), run_id).await?;
    let Some(parent) = run.state.started.as_ref().and_then(|s| s.parent.clone()) else { return Ok(()) };
    let outcome = match run.state.status {
        events::WorkflowStatus::Completed => Ok(run.state.output.clone().unwrap_or_default()),
        _ => Err(run.state.failure.clone().unwrap_or_else(|| "the child run ended".into())),
    };
    let trigger = Trigger::ChildEnded { run_id, outcome };
    advance(ctx, parent.run_id, input.id, input.metadata.occurred_at_ms, &trigger).await
}

/// A step task to submit: what `step_scheduled` or `compensation_scheduled` says.
struct StepTask<'a> {
    step: &'a str,
    item: Option<u32>,
    task_id: events::TaskId,
    capability: &'a str,
    description: &'a str,
    input: &'a serde_json::Value,
    timeout_ms: Option<u64>,
    compensation: bool,
}

impl<'a> StepTask<'a> {
    fn of(s: &'a events::workflow::StepScheduled) -> Self {
        Self {
            step: &s.step,
            item: s.item,
            task_id: s.task_id,
            capability: &s.capability,
            description: &s.description,
            input: &s.input,
            timeout_ms: s.timeout_ms,
            compensation: false,
        }
    }
}

/// Submits a scheduled task of a step (or of its compensation), unless the run (folded as
/// `state`) moved past it; a task already there (a redelivery, another process) is left as
/// it is.
async fn submit_step(ctx: &Ctx, run_id: WorkflowId, state: &WorkflowState, task: StepTask<'_>) -> Result<()> {
    let run = state;
    let open = if task.compensation {
        run.compensations.get(task.step).is_some_and(|(t, end)| *t == task.task_id && end.is_none())
    } else {
        run.steps
            .get(task.step)
            .and_then(|s| s.runs.get(&task.item))
            .is_some_and(|r| r.task_id == task.task_id && r.ended.is_none())
    };
    if !open || run.status.is_final() {
        return Ok(());
    }
    let Some(started) = &run.started else { return Ok(()) };
    let mut spec = TaskSpec::new(task.capability.to_string(), task.description.to_string());
    spec.input = task.input.clone();
    if let Some(timeout) = task.timeout_ms {
        spec.timeout_ms = timeout;
    }
    spec.submitter = started.submitter.clone();
    spec.workflow = Some(events::task::WorkflowStepRef { workflow_id: run_id, step: task.step.to_string() });
    spec.labels.insert("workflow".into(), started.name.clone());
    spec.labels.insert("workflow_run".into(), run_id.to_string());
    spec.labels.insert("step".into(), task.step.to_string());
    if let Some(item) = task.item {
        spec.labels.insert("item".into(), item.to_string());
    }
    if task.compensation {
        spec.labels.insert("compensates".into(), task.step.to_string());
    }
    crate::client::scrub_spec(&mut spec);
    let submission = SignedSubmission::sign(task.task_id, spec, &ctx.federation)?;
    let (task_id, event) = crate::client::submission_event(submission, Channel::Workflow, EMITTER)?;
    match crate::client::append_submission(ctx.log.as_ref(), task_id, event, Channel::Workflow, EMITTER).await
    {
        Ok(_) | Err(Error::Log(LogError::Conflict { .. })) => Ok(()),
        Err(error) => Err(error),
    }
}
