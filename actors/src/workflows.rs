//! The workflow engine: one more event-sourced actor on the same log. A run's state is the
//! fold of its stream (`workflow-<run_id>`), and what happens next is decided by the pure
//! `workflow::decide`; this module feeds it and does what it decides.
//!
//! - [`WorkflowSteps`], a member of the phases' group, takes every task's final event
//!   (`task_completed`, `task_failed`, `task_rejected`, `task_cancelled`); for a workflow's
//!   step task it decides on the run with the task's outcome (`step_task_ended`, and whatever
//!   follows: the next steps scheduled, the step's or the run's end).
//! - [`WorkflowRuns`] takes the runs' own events: on `workflow_started` and
//!   `workflow_cancel_requested` it decides; on `step_scheduled` it submits the step's task
//!   (an ordinary task: screened, matched, sealed, verified, audited), whose id is derived
//!   from (run, step, item, attempt), so a second submission finds it there; on
//!   `workflow_failed` and `workflow_cancelled` it cancels the step tasks still running.
//!
//! Every decision is appended expecting the run's version it was made on, with ids derived
//! from the input and each event's purpose: a redelivered input, or a second process, writes
//! nothing twice, and a batch cut short is completed by the next decision whatever woke it.
//!
//! The commands — [`register`] a definition, [`start`] a run, [`cancel`] one — are called by
//! the gateway and the command line alike.

use std::collections::BTreeSet;

use async_trait::async_trait;
use events::task::{Channel, TaskStatus};
use events::workflow::{
    CancelRequested, Definition, DefinitionEvent, DefinitionRegistered, WorkflowEvent, WorkflowStarted,
};
use events::{
    Aggregate, DomainEvent, EventId, EventLog, ExpectedVersion, LogError, Metadata, RecordedEvent,
    SignedSubmission, StreamId, TaskSpec, TaskState, Version, WorkflowId, WorkflowState,
};
use workflow::Trigger;

use crate::error::{Error, Result};
use crate::phase::{CONFLICT_RETRY_COUNT_MAX, Ctx, Handled, Phase, load_task_cached, task_id_of};

/// Events read per page of a run's stream.
const RUN_READ_PAGE_COUNT: usize = 1_000;

/// The emitter of the engine's events.
const EMITTER: &str = "workflow";

/// A run, folded.
#[derive(Clone, Debug, Default)]
pub struct LoadedRun {
    /// The run's state.
    pub state: WorkflowState,
    /// The stream's version.
    pub version: Version,
    /// Its events, as recorded (for the step table's times).
    pub events: Vec<RecordedEvent>,
}

/// Reads a run's stream and folds it; events the fold refuses are skipped with a warning.
pub async fn load_run(log: &dyn EventLog, run_id: WorkflowId) -> Result<LoadedRun> {
    let stream = StreamId::workflow(run_id);
    let mut loaded = LoadedRun::default();
    loop {
        let page = log.read_stream(&stream, loaded.version + 1, RUN_READ_PAGE_COUNT).await?;
        let more = page.len() == RUN_READ_PAGE_COUNT;
        for recorded in page {
            loaded.version = recorded.version;
            match WorkflowEvent::from_recorded(&recorded) {
                Ok(event) => {
                    if let Err(refused) = loaded.state.apply(&event) {
                        tracing::warn!(%run_id, %refused, "a run's event the fold refuses; skipped");
                    }
                }
                Err(error) => tracing::warn!(%run_id, %error, "a run's event that does not decode; skipped"),
            }
            loaded.events.push(recorded);
        }
        if !more {
            return Ok(loaded);
        }
    }
}

/// Decides on the run with `trigger` and appends what is missing, expecting the version read;
/// after a conflict or a duplicate (a batch written before, perhaps only in part) it reads
/// again and decides again.
pub(crate) async fn advance(
    ctx: &Ctx,
    run_id: WorkflowId,
    cause: &RecordedEvent,
    trigger: &Trigger,
) -> Result<()> {
    let stream = StreamId::workflow(run_id);
    for _ in 0..CONFLICT_RETRY_COUNT_MAX {
        let loaded = load_run(ctx.log.as_ref(), run_id).await?;
        if loaded.version == 0 {
            return Ok(()); // not started (a foreign task naming a run that does not exist)
        }
        let decided = workflow::decide(&loaded.state, trigger);
        if decided.is_empty() {
            return Ok(());
        }
        let metadata = Metadata {
            occurred_at_ms: ctx.clock.now_ms(),
            causation_id: Some(cause.id),
            correlation_id: loaded.events.first().map(|e| e.id),
            emitter: EMITTER.to_string(),
            traceparent: None,
        };
        let batch = decided
            .iter()
            .map(|event| {
                event.to_new_event(EventId::derived(cause.id, &workflow::purpose(event)), metadata.clone())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        match ctx.log.append(&stream, ExpectedVersion::Exact(loaded.version), batch).await {
            Ok(outcome) if !outcome.duplicate => return Ok(()),
            Ok(_) | Err(LogError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::ConflictRetriesExhausted { stream_id: stream.to_string(), attempts: CONFLICT_RETRY_COUNT_MAX })
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
        advance(ctx, step.workflow_id, input, &Trigger::TaskEnded { task_id, outcome }).await?;
        Ok(Handled::Done)
    }
}

/// The engine's own subscription: the runs' events.
pub(crate) struct WorkflowRuns;

/// The run events [`WorkflowRuns`] acts on.
const RUN_INPUTS: &[&str] = &[
    "workflow_started",
    "workflow_cancel_requested",
    "step_scheduled",
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

    fn grouped(&self) -> bool {
        false
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
        match event {
            WorkflowEvent::Started(_) | WorkflowEvent::CancelRequested(_) => {
                advance(ctx, run_id, input, &Trigger::Look).await?;
            }
            WorkflowEvent::StepScheduled(scheduled) => submit_step(ctx, run_id, &scheduled).await?,
            WorkflowEvent::Failed(_) | WorkflowEvent::Cancelled(_) => {
                let run = load_run(ctx.log.as_ref(), run_id).await?;
                for (_, _, task_id) in run.state.running_tasks() {
                    let reason = format!("workflow run {run_id} ended");
                    crate::client::cancel(ctx.log.as_ref(), task_id, EMITTER, &reason).await?;
                }
            }
            _ => {}
        }
        Ok(Handled::Done)
    }
}

/// Submits a scheduled step's task, unless the run moved past it; a task already there (a
/// redelivery, another process) is left as it is.
async fn submit_step(
    ctx: &Ctx,
    run_id: WorkflowId,
    scheduled: &events::workflow::StepScheduled,
) -> Result<()> {
    let run = load_run(ctx.log.as_ref(), run_id).await?;
    let still_running = run
        .state
        .steps
        .get(&scheduled.step)
        .and_then(|s| s.runs.get(&scheduled.item))
        .is_some_and(|r| r.task_id == scheduled.task_id && r.ended.is_none());
    if !still_running || run.state.status.is_final() {
        return Ok(());
    }
    let Some(started) = &run.state.started else { return Ok(()) };
    let mut spec = TaskSpec::new(scheduled.capability.clone(), scheduled.description.clone());
    spec.input = scheduled.input.clone();
    if let Some(timeout) = scheduled.timeout_ms {
        spec.timeout_ms = timeout;
    }
    spec.submitter = started.submitter.clone();
    spec.workflow = Some(events::task::WorkflowStepRef { workflow_id: run_id, step: scheduled.step.clone() });
    spec.labels.insert("workflow".into(), started.name.clone());
    spec.labels.insert("workflow_run".into(), run_id.to_string());
    spec.labels.insert("step".into(), scheduled.step.clone());
    if let Some(item) = scheduled.item {
        spec.labels.insert("item".into(), item.to_string());
    }
    crate::client::scrub_spec(&mut spec);
    let submission = SignedSubmission::sign(scheduled.task_id, spec, &ctx.federation)?;
    let (task_id, event) = crate::client::submission_event(submission, Channel::Workflow, EMITTER)?;
    match crate::client::append_submission(ctx.log.as_ref(), task_id, event, Channel::Workflow, EMITTER).await
    {
        Ok(_) | Err(Error::Log(LogError::Conflict { .. })) => Ok(()),
        Err(error) => Err(error),
    }
}

/// What registering a definition did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    /// The name.
    pub name: String,
    /// Its version: the existing one when the same definition was registered before.
    pub version: u32,
    /// The definition's hash.
    pub hash: String,
    /// Whether this call recorded it.
    pub created: bool,
}

/// Why a workflow command was refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The definition or the input is not acceptable: the field and why.
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`steps[1].needs[0]`, `input`, …).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// No such workflow or run.
    #[error("not found: {0}")]
    NotFound(String),
    /// The run has ended: nothing to cancel.
    #[error("{0}")]
    Ended(String),
    /// The log or the pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] Error),
}

impl From<LogError> for WorkflowError {
    fn from(error: LogError) -> Self {
        Self::Pipeline(error.into())
    }
}

impl From<events::Error> for WorkflowError {
    fn from(error: events::Error) -> Self {
        Self::Pipeline(error.into())
    }
}

fn definition_stream(name: &str) -> std::result::Result<StreamId, WorkflowError> {
    StreamId::new(format!("{}-{name}", DefinitionEvent::CATEGORY))
        .map_err(|e| WorkflowError::Invalid { field: "name".into(), message: e.to_string() })
}

/// Every version of the definition `name`, oldest first.
pub async fn versions(
    log: &dyn EventLog,
    name: &str,
) -> std::result::Result<Vec<DefinitionRegistered>, WorkflowError> {
    Ok(read_versions(log, name).await?.0)
}

/// Every version of the definition `name`, and the stream's version.
async fn read_versions(
    log: &dyn EventLog,
    name: &str,
) -> std::result::Result<(Vec<DefinitionRegistered>, Version), WorkflowError> {
    let stream = definition_stream(name)?;
    let mut out = Vec::new();
    let mut version = 0;
    loop {
        let page = log.read_stream(&stream, version + 1, RUN_READ_PAGE_COUNT).await?;
        let more = page.len() == RUN_READ_PAGE_COUNT;
        for recorded in &page {
            version = recorded.version;
            if let Ok(DefinitionEvent::Registered(registered)) = DefinitionEvent::from_recorded(recorded) {
                out.push(registered);
            }
        }
        if !more {
            return Ok((out, version));
        }
    }
}

/// Registers `definition` (checked already): a new version when it differs from every
/// registered one, the existing version when it is the same (registering is idempotent).
pub async fn register(
    log: &dyn EventLog,
    definition: Definition,
    by: &str,
) -> std::result::Result<Registered, WorkflowError> {
    workflow::check(&definition)
        .map_err(|e| WorkflowError::Invalid { field: e.field, message: e.message })?;
    let hash = workflow::hash(&definition);
    let stream = definition_stream(&definition.name)?;
    for _ in 0..CONFLICT_RETRY_COUNT_MAX {
        let (known, stream_version) = read_versions(log, &definition.name).await?;
        if let Some(same) = known.iter().find(|v| v.hash == hash) {
            return Ok(Registered { name: same.name.clone(), version: same.version, hash, created: false });
        }
        let version = u32::try_from(known.len()).unwrap_or(u32::MAX).saturating_add(1);
        let event = DefinitionEvent::Registered(DefinitionRegistered {
            name: definition.name.clone(),
            version,
            hash: hash.clone(),
            definition: definition.clone(),
            by: by.to_string(),
        });
        let new = event.to_new_event(EventId::new(), Metadata::now(EMITTER))?;
        let expected = if stream_version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(stream_version)
        };
        match log.append(&stream, expected, vec![new]).await {
            Ok(_) => return Ok(Registered { name: definition.name, version, hash, created: true }),
            Err(LogError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::ConflictRetriesExhausted { stream_id: stream.to_string(), attempts: CONFLICT_RETRY_COUNT_MAX }
        .into())
}

/// What to start: a registered workflow by name (its latest version, or the one named), or a
/// definition given whole (registered first, as `pantheon workflow run FILE` does).
#[derive(Clone, Debug)]
pub enum Start {
    /// A registered name and, optionally, a version.
    Named(String, Option<u32>),
    /// A definition.
    Definition(Box<Definition>),
}

/// A run asked for.
#[derive(Clone, Debug)]
pub struct StartRun {
    /// What to run.
    pub what: Start,
    /// The run's input.
    pub input: serde_json::Value,
    /// Who starts it.
    pub submitter: String,
    /// A key that makes a repeated start answer the first run.
    pub idempotency_key: Option<String>,
    /// The capabilities the federation's agents offer now: a step asking for another is
    /// refused at start, with this list.
    pub offered: BTreeSet<String>,
}

/// The run id of a start with `key` by `submitter`: derived, so a repeated start finds the
/// run it made.
fn idempotent_run_id(submitter: &str, key: &str) -> WorkflowId {
    let mut hasher = blake3::Hasher::new_derive_key("pantheon workflow run idempotency v1");
    hasher.update(&(submitter.len() as u64).to_le_bytes());
    hasher.update(submitter.as_bytes());
    hasher.update(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    WorkflowId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// Starts a run: `workflow_started` with the whole definition, pinned by its hash. Returns
/// the run id and whether this call started it (false: the idempotency key's run).
pub async fn start(
    log: &dyn EventLog,
    request: StartRun,
) -> std::result::Result<(WorkflowId, bool), WorkflowError> {
    let registered = match request.what {
        Start::Definition(definition) => {
            let registered = register(log, *definition, &request.submitter).await?;
            versions(log, &registered.name)
                .await?
                .into_iter()
                .find(|v| v.version == registered.version)
                .ok_or_else(|| {
                    WorkflowError::NotFound(format!(
                        "workflow {} version {}",
                        registered.name, registered.version
                    ))
                })?
        }
        Start::Named(name, version) => {
            let known = versions(log, &name).await?;
            let found = match version {
                Some(v) => known.into_iter().find(|r| r.version == v),
                None => known.into_iter().last(),
            };
            found.ok_or_else(|| {
                WorkflowError::NotFound(match version {
                    Some(v) => format!("workflow {name} version {v}"),
                    None => format!("workflow {name}"),
                })
            })?
        }
    };
    let missing: Vec<&str> = registered
        .definition
        .steps
        .iter()
        .map(|s| s.capability.as_str())
        .filter(|c| !request.offered.contains(*c))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        let offered: Vec<&str> = request.offered.iter().map(String::as_str).collect();
        return Err(WorkflowError::Invalid {
            field: "steps".into(),
            message: format!(
                "no registered agent offers {} (offered: {})",
                missing.join(", "),
                if offered.is_empty() { "none".to_string() } else { offered.join(", ") }
            ),
        });
    }
    let idempotent = request.idempotency_key.is_some();
    let run_id = match &request.idempotency_key {
        Some(key) => idempotent_run_id(&request.submitter, key),
        None => WorkflowId::new(),
    };
    let event = WorkflowEvent::Started(WorkflowStarted {
        run_id,
        name: registered.name,
        version: registered.version,
        definition_hash: registered.hash,
        definition: registered.definition,
        input: request.input,
        submitter: request.submitter,
        idempotency_key: request.idempotency_key,
    });
    let id = EventId::new();
    let metadata = Metadata { correlation_id: Some(id), ..Metadata::now("gateway") };
    let new = event.to_new_event(id, metadata)?;
    if new.payload.len() > events::EVENT_PAYLOAD_BYTES_MAX {
        return Err(WorkflowError::Invalid {
            field: "input".into(),
            message: format!(
                "the run's first event is {} bytes; it must fit in {} (pass large inputs by reference)",
                new.payload.len(),
                events::EVENT_PAYLOAD_BYTES_MAX
            ),
        });
    }
    match log.append(&StreamId::workflow(run_id), ExpectedVersion::NoStream, vec![new]).await {
        Ok(_) => Ok((run_id, true)),
        Err(LogError::Conflict { .. }) if idempotent => Ok((run_id, false)),
        Err(error) => Err(error.into()),
    }
}

/// Asks to cancel a run: `workflow_cancel_requested` (the engine then records the cancel and
/// cancels the running step tasks). Refused when the run has ended.
pub async fn cancel(
    log: &dyn EventLog,
    run_id: WorkflowId,
    by: &str,
    reason: &str,
) -> std::result::Result<(), WorkflowError> {
    let reason = security::scrub(reason).unwrap_or_else(|| reason.to_string());
    for _ in 0..CONFLICT_RETRY_COUNT_MAX {
        let run = load_run(log, run_id).await?;
        if run.version == 0 {
            return Err(WorkflowError::NotFound(format!("run {run_id}")));
        }
        if run.state.status.is_final() {
            return Err(WorkflowError::Ended(
                format!("the run has ended ({:?})", run.state.status).to_lowercase(),
            ));
        }
        if run.state.cancel_requested.is_some() {
            return Ok(());
        }
        let event =
            WorkflowEvent::CancelRequested(CancelRequested { by: by.to_string(), reason: reason.clone() });
        let metadata =
            Metadata { correlation_id: run.events.first().map(|e| e.id), ..Metadata::now(EMITTER) };
        let new = event.to_new_event(EventId::new(), metadata)?;
        match log.append(&StreamId::workflow(run_id), ExpectedVersion::Exact(run.version), vec![new]).await {
            Ok(_) => return Ok(()),
            Err(LogError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::ConflictRetriesExhausted {
        stream_id: format!("workflow-{run_id}"),
        attempts: CONFLICT_RETRY_COUNT_MAX,
    }
    .into())
}

/// Waits until the run has ended or `timeout` passes; the run as it stands then.
pub async fn wait(log: &dyn EventLog, run_id: WorkflowId, timeout: std::time::Duration) -> Result<LoadedRun> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let run = load_run(log, run_id).await?;
        if run.state.status.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(run);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
