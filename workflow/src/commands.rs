//! The write side of workflows and their reads, for every caller (the gateway, the command
//! line, the engine): [`register`] a definition (a new version only when it differs),
//! [`start`] a run (the whole definition pinned by its hash; an idempotency key answers the
//! first run), [`cancel`] one, [`load_run`] and [`wait`]. Through the log alone.

use std::collections::BTreeSet;

use events::workflow::{
    CancelRequested, Definition, DefinitionEvent, DefinitionRegistered, SignalReceived, WorkflowEvent,
    WorkflowStarted,
};
use events::{
    Aggregate, DomainEvent, EventId, EventLog, ExpectedVersion, LogError, Metadata, RecordedEvent, StreamId,
    Version, WorkflowId, WorkflowState,
};

/// Events read per page of a run's or a definition's stream.
const READ_PAGE_COUNT: usize = 1_000;

/// How often a command re-reads and decides again after a conflicting append.
const CONFLICT_RETRY_COUNT_MAX: u32 = 16;

/// The emitter of the commands' events.
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
pub async fn load_run(log: &dyn EventLog, run_id: WorkflowId) -> Result<LoadedRun, LogError> {
    let stream = StreamId::workflow(run_id);
    let mut loaded = LoadedRun::default();
    loop {
        let page = log.read_stream(&stream, loaded.version + 1, READ_PAGE_COUNT).await?;
        let more = page.len() == READ_PAGE_COUNT;
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
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// An event could not be made.
    #[error(transparent)]
    Events(#[from] events::Error),
    /// Another writer kept appending to the stream.
    #[error("gave up on {0} after {CONFLICT_RETRY_COUNT_MAX} conflicting appends")]
    Contended(String),
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
        let page = log.read_stream(&stream, version + 1, READ_PAGE_COUNT).await?;
        let more = page.len() == READ_PAGE_COUNT;
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
    crate::check(&definition).map_err(|e| WorkflowError::Invalid { field: e.field, message: e.message })?;
    let hash = crate::hash(&definition);
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
    Err(WorkflowError::Contended(stream.to_string()))
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
    /// The capabilities the federation's agents offer now, when known: a step asking for
    /// another is refused at start, with this list.
    pub offered: Option<BTreeSet<String>>,
    /// The run's id when the caller chose it (a child run's is derived from its parent).
    pub run_id: Option<WorkflowId>,
    /// The parent run and step, for a child run, and its depth.
    pub parent: Option<(events::workflow::ParentRun, u32)>,
    /// Where the run's end is posted (checked by the caller), if anywhere.
    pub webhook_url: Option<String>,
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
    let offered = request.offered.unwrap_or_default();
    let missing: Vec<&str> = registered
        .definition
        .steps
        .iter()
        .flat_map(|s| {
            let own = (!s.capability.is_empty()).then_some(s.capability.as_str());
            own.into_iter().chain(s.compensate.as_ref().map(|c| c.capability.as_str()))
        })
        .filter(|c| !offered.is_empty() && !offered.contains(*c))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        let offered: Vec<&str> = offered.iter().map(String::as_str).collect();
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
    if let Some((_, depth)) = &request.parent
        && *depth > events::workflow::CHILD_DEPTH_MAX
    {
        return Err(WorkflowError::Invalid {
            field: "workflow".into(),
            message: format!("child runs nest at most {} deep", events::workflow::CHILD_DEPTH_MAX),
        });
    }
    let idempotent = idempotent || request.run_id.is_some();
    let run_id = match (&request.run_id, &request.idempotency_key) {
        (Some(run_id), _) => *run_id,
        (None, Some(key)) => idempotent_run_id(&request.submitter, key),
        (None, None) => WorkflowId::new(),
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
        started_at_ms: events::now_ms(),
        depth: request.parent.as_ref().map_or(0, |(_, depth)| *depth),
        parent: request.parent.map(|(parent, _)| parent),
        webhook_url: request.webhook_url,
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
    Err(WorkflowError::Contended(format!("workflow-{run_id}")))
}

/// The longest signal payload, bytes of JSON.
pub const SIGNAL_PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// Sends the signal `name` (with `payload`, for `step` when named) to a running run, `by` a
/// principal: recorded as `signal_received`; an approval step waiting for it completes with the
/// payload as its output. Refused when the run has ended or a named step does not wait for
/// that signal (it has ended, or is no approval of that name).
pub async fn signal(
    log: &dyn EventLog,
    run_id: WorkflowId,
    name: &str,
    step: Option<&str>,
    payload: serde_json::Value,
    by: &str,
) -> Result<(), WorkflowError> {
    let size = serde_json::to_vec(&payload).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > SIGNAL_PAYLOAD_BYTES_MAX {
        return Err(WorkflowError::Invalid {
            field: "payload".into(),
            message: format!("{size} bytes; at most {SIGNAL_PAYLOAD_BYTES_MAX}"),
        });
    }
    let mut payload = payload;
    let mut labels = std::collections::BTreeMap::new();
    let mut text = String::new();
    security::scrub_submission(&mut text, &mut payload, &mut labels);
    for _ in 0..CONFLICT_RETRY_COUNT_MAX {
        let run = load_run(log, run_id).await?;
        let Some(started) = &run.state.started else {
            return Err(WorkflowError::NotFound(format!("run {run_id}")));
        };
        if run.state.status.is_final() {
            return Err(WorkflowError::Ended(
                format!("the run has ended ({:?})", run.state.status).to_lowercase(),
            ));
        }
        if let Some(step) = step {
            let Some(definition_step) = started.definition.step(step) else {
                return Err(WorkflowError::NotFound(format!("step {step} of run {run_id}")));
            };
            let expected = definition_step.approval.as_ref().map(|a| a.signal.as_str());
            if expected != Some(name) {
                return Err(WorkflowError::Invalid {
                    field: "step".into(),
                    message: format!("step {step} waits for no signal {name:?}"),
                });
            }
            if run.state.steps.get(step).is_some_and(|s| s.status.is_final()) {
                return Err(WorkflowError::Ended(format!("step {step} has ended")));
            }
        }
        let event = WorkflowEvent::SignalReceived(SignalReceived {
            name: name.to_string(),
            step: step.map(str::to_string),
            payload: payload.clone(),
            by: by.to_string(),
        });
        let metadata =
            Metadata { correlation_id: run.events.first().map(|e| e.id), ..Metadata::now(EMITTER) };
        let new = event.to_new_event(EventId::new(), metadata)?;
        match log.append(&StreamId::workflow(run_id), ExpectedVersion::Exact(run.version), vec![new]).await {
            Ok(_) => return Ok(()),
            Err(LogError::Conflict { .. }) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(WorkflowError::Contended(format!("workflow-{run_id}")))
}

/// Waits until the run has ended or `timeout` passes; the run as it stands then.
pub async fn wait(
    log: &dyn EventLog,
    run_id: WorkflowId,
    timeout: std::time::Duration,
) -> Result<LoadedRun, LogError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let run = load_run(log, run_id).await?;
        if run.state.status.is_final() || tokio::time::Instant::now() >= deadline {
            return Ok(run);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
