//! What every phase shares: the [`Ctx`] handed to handlers, reading and folding a task, the
//! deterministic append of a phase's outputs, and [`PhaseActor`] — the ractor actor that runs
//! one phase: it pulls input events from the phase's durable subscription, runs the handler
//! for each (up to [`PHASE_IN_FLIGHT_MAX`] at once) and acknowledges each input only after its
//! outputs are in the log. The phases' subscriptions, named `phase-<name>`, are members of one
//! group ([`crate::PHASES_GROUP`]) where the log has that form (JetStream: one consumer for all
//! phases of a process; SQLite: acknowledgements that do not wait for the commit); otherwise
//! each is a subscription of its own.
//!
//! # Exactly once
//! A handler keeps nothing between events. For each input it reads the task stream, folds
//! [`TaskState`], decides, and appends its outputs with `ExpectedVersion::Exact(version)` and
//! ids `EventId::derived(input.id, purpose)`. A redelivered input, or the same input handled by
//! another process at the same moment, derives the same ids: the log answers `duplicate`, or a
//! conflict after which the handler re-reads, finds the phase done, and does nothing.
//!
//! The read starts from the process's cached fold ([`TaskCache`], [`TASK_CACHE_COUNT_MAX`])
//! and fetches only later events: the cache saves reads and decides nothing (a stale entry
//! only costs a conflict and a re-read).

use std::collections::{HashMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use events::task::TaskEvent;
use events::{
    Aggregate, DomainEvent, EventId, EventLog, EventType, ExpectedVersion, Filter, KeyPair, LogError,
    Metadata, NewEvent, Position, PublicKey, RecordedEvent, StreamId, SubscribeOptions, Subscription, TaskId,
    TaskState, Version, now_ms,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::agents::AgentEndpoint;
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::screening::Screener;
use crate::standing::Standing;

/// The most inputs one phase handles at once. Bounds the memory and the open work of a phase;
/// it stays below the SQL subscription's pending limit (1,024) and JetStream's default
/// `max_ack_pending` (1,000) so the log never has to redeliver for lack of room.
pub const PHASE_IN_FLIGHT_MAX: usize = 512;
const _: () = assert!(PHASE_IN_FLIGHT_MAX <= 1_000);

/// How often a handler re-reads and re-decides after losing an append race before giving up
/// (the input is then delivered again later).
pub const CONFLICT_RETRY_COUNT_MAX: u32 = 16;

/// Events read per page when folding a task stream.
const TASK_READ_PAGE_COUNT: usize = 1_000;

/// Consecutive log failures after which a phase actor fails and its supervisor restarts it
/// (reopening its subscription).
const LOG_FAILURE_COUNT_MAX: u32 = 8;

/// The most folded tasks kept by a process's task cache. A folded task takes a few KiB
/// (spec, envelope, result), so the cache stays under a few MiB whatever the number of tasks
/// in flight; 1,024 is many times the tasks the phases work on at once at the benchmark's
/// concurrency (64). Past it, the least recently stored entries go and are read from the log
/// again when needed.
pub const TASK_CACHE_COUNT_MAX: usize = 1_024;

/// Folded tasks by id, shared by every phase of a process, so that a handler reads only the
/// events recorded after the cached version instead of the whole stream. Only an
/// optimisation: a cached fold is always the fold of the log's first `version` events (it is
/// stored after a read, or after an append that expected exactly that version), and every
/// append still expects the version its decision was made on. The least recently first
/// stored entries go first, finished or not.
#[derive(Debug, Default)]
pub(crate) struct TaskCache {
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// Shared, so that a look at the cache copies nothing (a fold holds the task's spec,
    /// envelope and result).
    entries: HashMap<TaskId, Arc<Loaded>>,
    /// Ids in the order they were first stored: the entries' keys, oldest first.
    order: VecDeque<TaskId>,
}

impl TaskCache {
    pub(crate) fn get(&self, task_id: TaskId) -> Option<Arc<Loaded>> {
        self.inner.lock().ok().and_then(|inner| inner.entries.get(&task_id).cloned())
    }

    /// Keeps `loaded` unless the cache holds a later version of the task. A finished task is
    /// kept too (until it is the oldest stored): when it was dropped instead, a
    /// handler still holding an earlier fold of it (a redelivered input) could store that
    /// fold after the end, and a waiter that looked then found the task unfinished and slept
    /// a second before reading the log.
    fn put(&self, loaded: &Arc<Loaded>) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let inner = &mut *inner;
        match inner.entries.get_mut(&loaded.task_id) {
            Some(cached) => {
                if cached.version < loaded.version {
                    *cached = Arc::clone(loaded);
                }
            }
            None => {
                while inner.entries.len() >= TASK_CACHE_COUNT_MAX {
                    let Some(oldest) = inner.order.pop_front() else { break };
                    inner.entries.remove(&oldest);
                }
                inner.entries.insert(loaded.task_id, Arc::clone(loaded));
                inner.order.push_back(loaded.task_id);
            }
        }
    }
}

/// Waiters on tasks reaching a final state in this process.
#[derive(Debug, Default)]
pub(crate) struct Finals {
    waiters: Mutex<HashMap<TaskId, Vec<oneshot::Sender<TaskState>>>>,
}

impl Finals {
    /// A receiver given the final state when this process appends a final event for `task_id`.
    pub(crate) fn watch(&self, task_id: TaskId) -> oneshot::Receiver<TaskState> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.entry(task_id).or_default().push(tx);
        }
        rx
    }

    pub(crate) fn forget(&self, task_id: TaskId) {
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(&task_id);
        }
    }

    pub(crate) fn notify(&self, task_id: TaskId, state: &TaskState) {
        let senders = self.waiters.lock().ok().and_then(|mut waiters| waiters.remove(&task_id));
        for sender in senders.into_iter().flatten() {
            let _ = sender.send(state.clone());
        }
    }
}

/// What handlers share: the log, the federation key, the registry view, the screener, the
/// agents hosted in this process, and the shutdown signal.
pub(crate) struct Ctx {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) federation: Arc<KeyPair>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) screener: Arc<dyn Screener>,
    pub(crate) agents: HashMap<events::AgentId, Arc<dyn AgentEndpoint>>,
    /// Keys whose submissions are accepted (the federation key, the CLI's, and producers').
    pub(crate) trusted_submitters: Vec<PublicKey>,
    /// Cancelled when the runtime shuts down: waits end, nothing new is pulled.
    pub(crate) shutdown: CancellationToken,
    /// Cancelled when the runtime starts draining, before `shutdown`: no new attempt starts
    /// (its input is left for the next start) and no submission is taken, while the attempts
    /// running here finish.
    pub(crate) draining: CancellationToken,
    /// The tasks whose attempt runs in this process now, for the drain to wait for.
    pub(crate) attempts: Mutex<std::collections::HashSet<TaskId>>,
    pub(crate) finals: Finals,
    /// Folded tasks, so handlers read only what is new.
    pub(crate) tasks: TaskCache,
    /// The pipeline's measurements.
    pub(crate) metrics: Arc<crate::metrics::PipelineMetrics>,
    /// The NATS connection, in NATS mode (agents registered at run time may be reached on it).
    pub(crate) nats: Option<async_nats::Client>,
    /// Agents' health and reputation from the read models, for matching.
    pub(crate) standing: Arc<Standing>,
    /// Agents' last heartbeats, outside the log (with a read model).
    pub(crate) liveness: Option<projections::LivenessTable>,
    /// The offers of pull agents, for their workers' polls.
    pub(crate) pull: Arc<crate::pull::PullBoard>,
    /// The workflows' durable timers.
    pub(crate) timers: Arc<crate::workflows::Timers>,
    /// The engine's folds of runs and its per-run locks.
    pub(crate) runs: Arc<crate::workflows::Runs>,
    /// The time deciders are given (the system clock; a manual one in tests).
    pub(crate) clock: Arc<dyn events::Clock>,
    /// The phases' subscriptions served together, when the log has a shared form for them
    /// ([`events::EventLog::subscribe_group`]: one JetStream consumer for all phases).
    pub(crate) intakes: HashMap<&'static str, Arc<dyn events::SubscriptionGroup>>,
    /// Whether dropping a pending `Subscription::next` loses nothing (true for the SQL log);
    /// when false, a phase only stops waiting for the next input on shutdown.
    pub(crate) next_is_cancel_safe: bool,
    /// When set, a phase re-polls its subscription at this interval (the SQL log wakes
    /// subscribers only for appends made in this process; `pantheon submit` is another one).
    pub(crate) poll_interval: Option<Duration>,
}

/// A task folded from its stream.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    pub(crate) task_id: TaskId,
    pub(crate) stream_id: StreamId,
    pub(crate) state: TaskState,
    /// The stream's last version (what the next append expects).
    pub(crate) version: Version,
    /// When `task_submitted` was recorded, ms since the epoch.
    pub(crate) submitted_at_ms: i64,
    /// The id of `task_submitted`: the correlation id of every event of the task.
    pub(crate) correlation_id: Option<EventId>,
}

impl Loaded {
    /// The fold of a task stream before its first event.
    fn empty(task_id: TaskId, stream_id: StreamId, submitted_at_ms: i64) -> Self {
        Self {
            task_id,
            stream_id,
            state: TaskState::default(),
            version: 0,
            submitted_at_ms,
            correlation_id: None,
        }
    }

    /// The task's deadline, ms since the epoch.
    pub(crate) fn deadline_ms(&self) -> i64 {
        let timeout = self.state.spec().map_or(events::task::TASK_TIMEOUT_MS_DEFAULT, |s| s.timeout_ms);
        self.submitted_at_ms.saturating_add(i64::try_from(timeout).unwrap_or(i64::MAX))
    }

    pub(crate) fn is_final(&self) -> bool {
        self.state.status.is_final()
    }
}

/// The task id of a task stream.
pub(crate) fn task_id_of(stream_id: &StreamId) -> Option<TaskId> {
    (stream_id.category() == "task").then(|| TaskId::from_str(stream_id.entity_id()).ok()).flatten()
}

/// Reads a task stream and folds it. Events the fold refuses (a foreign writer's) are skipped
/// with a warning; the stream's version still counts them.
pub(crate) async fn load_task(log: &dyn EventLog, task_id: TaskId) -> Result<Loaded> {
    let mut loaded = Loaded::empty(task_id, StreamId::task(task_id), now_ms());
    read_after(log, &mut loaded).await?;
    Ok(loaded)
}

/// [`load_task`] starting from the process's cached fold, if any: reads only the events after
/// the cached version, and caches the result.
pub(crate) async fn load_task_cached(ctx: &Ctx, task_id: TaskId) -> Result<Arc<Loaded>> {
    let cached = ctx.tasks.get(task_id);
    ctx.metrics.cache(cached.is_some());
    let Some(mut loaded) = cached else {
        let loaded = Arc::new(load_task(ctx.log.as_ref(), task_id).await?);
        ctx.tasks.put(&loaded);
        return Ok(loaded);
    };
    let page = ctx.log.read_stream(&loaded.stream_id, loaded.version + 1, TASK_READ_PAGE_COUNT).await?;
    if page.is_empty() {
        return Ok(loaded); // the cached fold is the stream: nothing copied
    }
    let more = page.len() == TASK_READ_PAGE_COUNT;
    let folded = Arc::make_mut(&mut loaded);
    fold_page(folded, page);
    if more {
        read_after(ctx.log.as_ref(), folded).await?;
    }
    ctx.tasks.put(&loaded);
    Ok(loaded)
}

/// The task's fold up to `input` at least, when known without reading: the cached fold if it
/// includes the input; the cached fold plus the input when the input follows it; the input
/// alone when it is the stream's first event (a new task whose submission came from another
/// writer). Like any cached fold it may be stale: appending on it expects its version.
pub(crate) fn known_fold(ctx: &Ctx, task_id: TaskId, input: &RecordedEvent) -> Option<Arc<Loaded>> {
    let cached = ctx.tasks.get(task_id);
    if let Some(cached) = &cached
        && cached.version >= input.version
    {
        return Some(Arc::clone(cached));
    }
    let mut loaded = match cached {
        Some(cached) if cached.version + 1 == input.version => Arc::unwrap_or_clone(cached),
        None if input.version == 1 => {
            Loaded::empty(task_id, input.stream_id.clone(), input.metadata.occurred_at_ms)
        }
        _ => return None,
    };
    let folded = fold_one(
        &mut loaded,
        input.version,
        input.id,
        input.metadata.occurred_at_ms,
        &input.event_type,
        input.schema_version,
        &input.payload,
    );
    if folded.is_err() {
        return None; // the read decides what to make of it
    }
    let loaded = Arc::new(loaded);
    ctx.tasks.put(&loaded);
    Some(loaded)
}

/// Caches the fold of a task whose first event (`first`) this process just appended.
pub(crate) fn remember_first(ctx: &Ctx, task_id: TaskId, stream_id: StreamId, first: &NewEvent) {
    let mut loaded = Loaded::empty(task_id, stream_id, first.metadata.occurred_at_ms);
    let NewEvent { id, event_type, schema_version, payload, metadata } = first;
    if fold_one(&mut loaded, 1, *id, metadata.occurred_at_ms, event_type, *schema_version, payload).is_ok() {
        ctx.tasks.put(&Arc::new(loaded));
    }
}

/// Folds the events of the task's stream after `loaded.version` into `loaded`.
async fn read_after(log: &dyn EventLog, loaded: &mut Loaded) -> Result<()> {
    loop {
        let page = log.read_stream(&loaded.stream_id, loaded.version + 1, TASK_READ_PAGE_COUNT).await?;
        let count = page.len();
        fold_page(loaded, page);
        if count < TASK_READ_PAGE_COUNT {
            return Ok(());
        }
    }
}

/// Folds a page of the task's stream, read after `loaded.version`, into `loaded`.
fn fold_page(loaded: &mut Loaded, page: Vec<RecordedEvent>) {
    for recorded in page {
        // A refused event is skipped (and logged); the version still counts it.
        let _ = fold_one(
            loaded,
            recorded.version,
            recorded.id,
            recorded.metadata.occurred_at_ms,
            &recorded.event_type,
            recorded.schema_version,
            &recorded.payload,
        );
    }
}

/// Folds one recorded event (given by its parts, so that a just-appended event folds exactly
/// as it will be read back).
fn fold_one(
    loaded: &mut Loaded,
    version: Version,
    id: EventId,
    occurred_at_ms: i64,
    event_type: &EventType,
    schema_version: u32,
    payload: &[u8],
) -> std::result::Result<(), Skipped> {
    loaded.version = version;
    if version == 1 {
        loaded.submitted_at_ms = occurred_at_ms;
        loaded.correlation_id = Some(id);
    }
    match TaskEvent::from_payload(event_type, schema_version, payload) {
        Ok(event) => loaded.state.apply(&event).map_err(|refused| {
            tracing::warn!(stream_id = %loaded.stream_id, version, %refused, "fold skips an event");
            Skipped::Refused(refused)
        }),
        Err(error) => {
            tracing::warn!(stream_id = %loaded.stream_id, version, %error, "fold skips an unreadable event");
            Err(Skipped::Unreadable(error))
        }
    }
}

/// Why a fold skipped an event.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Skipped {
    /// The event is not legal on the state before it.
    #[error("refused: {0}")]
    Refused(events::TransitionError),
    /// The event could not be decoded.
    #[error("unreadable: {0}")]
    Unreadable(events::Error),
}

/// What one append of a phase's outputs did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Written now.
    Written,
    /// The same outputs were in the log already (redelivery, or another process did it).
    Duplicate,
    /// The stream moved since it was read: re-read and re-decide.
    Conflict,
    /// The outputs are not legal on the state they were decided on (a bug): nothing written.
    Illegal,
}

/// One output of a phase: the purpose (which makes its derived id) and the event.
pub(crate) type Output = (std::borrow::Cow<'static, str>, TaskEvent);

/// Appends a phase's outputs for `cause` to the task, expecting the version it was decided on.
pub(crate) async fn append_outputs(
    ctx: &Ctx,
    loaded: &Loaded,
    cause: &RecordedEvent,
    emitter: &str,
    outputs: Vec<Output>,
) -> Result<Appended> {
    let metadata = Metadata {
        occurred_at_ms: ctx.clock.now_ms(),
        causation_id: Some(cause.id),
        correlation_id: cause.metadata.correlation_id.or(loaded.correlation_id).or(Some(cause.id)),
        emitter: emitter.to_string(),
        // The phase's own span when a trace is recorded (its outputs' handlers are its
        // children); else the cause's traceparent carried on.
        traceparent: events::trace::current_traceparent()
            .or_else(|| cause.metadata.traceparent.clone())
            .filter(|t| events::log::traceparent_is_usable(t)),
    };
    append_with(ctx, loaded, cause.id, metadata, outputs).await
}

/// Appends outputs decided on `loaded` with ids derived from `cause_id` and each purpose.
pub(crate) async fn append_with(
    ctx: &Ctx,
    loaded: &Loaded,
    cause_id: EventId,
    metadata: Metadata,
    outputs: Vec<Output>,
) -> Result<Appended> {
    let mut batch = Vec::with_capacity(outputs.len());
    for (purpose, event) in &outputs {
        batch.push(event.to_new_event(EventId::derived(cause_id, purpose.as_ref()), metadata.clone())?);
    }
    let expected =
        if loaded.version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(loaded.version) };
    // Once written, the log holds `loaded`'s events and then the batch (the append expects
    // exactly `loaded.version`): the batch folded as it will be read back is the new state, for
    // the cache and the waiters. Folding it is also the pair assertion: the outputs must be
    // legal on the state they were decided on.
    let mut after = loaded.clone();
    for (version, event) in (loaded.version + 1..).zip(&batch) {
        let NewEvent { id, event_type, schema_version, payload, metadata } = event;
        let folded =
            fold_one(&mut after, version, *id, metadata.occurred_at_ms, event_type, *schema_version, payload);
        if let Err(refused) = folded {
            tracing::error!(stream_id = %loaded.stream_id, %refused, "a phase decided an illegal event; skipped");
            ctx.metrics.appended(
                crate::metrics::AppendResult::Illegal,
                batch.len(),
                std::time::Duration::ZERO,
            );
            return Ok(Appended::Illegal);
        }
    }
    let started = std::time::Instant::now();
    let batch_len = batch.len();
    let appended = ctx.log.append(&loaded.stream_id, expected, batch).await;
    let result = match &appended {
        Ok(outcome) if outcome.duplicate => crate::metrics::AppendResult::Duplicate,
        Ok(_) => crate::metrics::AppendResult::Written,
        Err(LogError::Conflict { .. }) => crate::metrics::AppendResult::Conflict,
        Err(_) => crate::metrics::AppendResult::Error,
    };
    ctx.metrics.appended(result, batch_len, started.elapsed());
    match appended {
        Ok(outcome) if outcome.duplicate => Ok(Appended::Duplicate),
        Ok(_) => {
            // Cached (a final task: forgotten) before the waiters hear, so a waiter that comes
            // after the notice finds no stale fold.
            let after = Arc::new(after);
            ctx.tasks.put(&after);
            if after.is_final() {
                ctx.finals.notify(loaded.task_id, &after.state);
            }
            Ok(Appended::Written)
        }
        Err(LogError::Conflict { .. }) => Ok(Appended::Conflict),
        Err(error) => Err(error.into()),
    }
}

/// What a handler did with its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Outputs written, found written already, or nothing to do: acknowledge the input.
    Done,
    /// Shutdown interrupted the handler: leave the input unacknowledged for the next start.
    Interrupted,
}

/// Reads (or takes the cached fold), decides with `decide`, appends; on a conflict or a
/// duplicate re-reads and re-decides. An empty decision on what was read means there is nothing
/// (left) to do for this input.
///
/// # Resumable from any prefix
/// `decide` looks at the task's state, not at which event woke it, and emits what is missing:
/// a phase whose output is several events decides the rest of them on a state that holds only
/// the first ones (a batch cut by a crash, or by a JetStream batch published event by event).
/// So a redelivered input, whatever prefix of its outputs reached the log, completes them.
pub(crate) async fn decide_and_append(
    ctx: &Ctx,
    input: &RecordedEvent,
    emitter: &str,
    decide: impl FnMut(&Loaded) -> Vec<Output> + Send,
) -> Result<Handled> {
    decide_and_append_as(ctx, input, emitter, Resume::AfterDuplicate, decide).await
}

/// What [`decide_and_append_as`] does when the log says the outputs were written before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Read again and emit what is missing: for outputs that move the task's status on, so
    /// that a state holding them decides nothing more.
    AfterDuplicate,
    /// Done: for outputs that leave the status as it is (progress reports), which the state
    /// cannot tell apart from missing ones.
    Never,
}

/// [`decide_and_append`], saying what a duplicate means.
pub(crate) async fn decide_and_append_as(
    ctx: &Ctx,
    input: &RecordedEvent,
    emitter: &str,
    resume: Resume,
    decide: impl FnMut(&Loaded) -> Vec<Output> + Send,
) -> Result<Handled> {
    decide_and_append_then(ctx, input, emitter, resume, decide).await.map(|_| Handled::Done)
}

/// [`decide_and_append_as`], answering the task's fold after this call's append when it wrote
/// one (`None` when the outputs were in the log already, or there was nothing to do): a
/// handler that goes on from what it wrote needs no read.
pub(crate) async fn decide_and_append_then(
    ctx: &Ctx,
    input: &RecordedEvent,
    emitter: &str,
    resume: Resume,
    mut decide: impl FnMut(&Loaded) -> Vec<Output> + Send,
) -> Result<Option<Arc<Loaded>>> {
    let Some(task_id) = task_id_of(&input.stream_id) else { return Ok(None) };
    // First, without reading: the cached fold, when it includes the input already (the phase
    // that appended the input cached the result). Appending expects that version, so a stale
    // fold only costs a conflict; a decision to do nothing is confirmed on a fresh read first.
    let mut unread = known_fold(ctx, task_id, input);
    for _ in 0..CONFLICT_RETRY_COUNT_MAX {
        let (loaded, read) = match unread.take() {
            Some(cached) => (cached, false),
            None => (load_task_cached(ctx, task_id).await?, true),
        };
        let outputs = decide(&loaded);
        if outputs.is_empty() {
            if read {
                return Ok(None);
            }
            continue;
        }
        match append_outputs(ctx, &loaded, input, emitter, outputs).await? {
            // The append cached the fold after it (unless a later one is cached already).
            Appended::Written => {
                return Ok(ctx.tasks.get(task_id).filter(|after| after.version > loaded.version));
            }
            Appended::Illegal => return Ok(None),
            Appended::Duplicate if resume == Resume::Never => return Ok(None),
            // Written before, by a redelivery or another process — but perhaps only a prefix:
            // a batch cut short (a crash, or JetStream's non-atomic batches) may be reported
            // as a duplicate of its first events. Read again and emit whatever is missing.
            Appended::Duplicate | Appended::Conflict => continue,
        }
    }
    Err(Error::ConflictRetriesExhausted {
        stream_id: input.stream_id.to_string(),
        attempts: CONFLICT_RETRY_COUNT_MAX,
    })
}

/// Sleeps until `at_ms` (ms since the epoch), or returns false if shutdown came first.
pub(crate) async fn sleep_until_ms(ctx: &Ctx, at_ms: i64) -> bool {
    let wait = at_ms.saturating_sub(now_ms());
    if wait <= 0 {
        return !ctx.shutdown.is_cancelled();
    }
    let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
    tokio::select! {
        () = ctx.shutdown.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// One phase of the pipeline: which events it consumes and what it does with each.
#[async_trait]
pub(crate) trait Phase: Send + Sync + 'static {
    /// The phase's name: its actor's name, its subscription's (`phase-<name>`) and the emitter
    /// of its events.
    fn name(&self) -> &'static str;

    /// The kinds of task event it consumes.
    fn inputs(&self) -> &'static [events::TaskEventKind];

    /// Handles one input event.
    async fn handle(&self, ctx: &Ctx, input: &RecordedEvent) -> Result<Handled>;

    /// What its subscription takes: by default its input kinds of task events.
    fn subscription(&self) -> std::result::Result<SubscribeOptions, events::Error> {
        let types = self
            .inputs()
            .iter()
            .map(|kind| EventType::new(kind.as_str()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(SubscribeOptions {
            filter: Filter::category("task").with_types(types),
            start: events::StartFrom::Beginning,
        })
    }

    /// The subscription group it is a member of: [`crate::PHASES_GROUP`] for the task phases
    /// (on JetStream one consumer, filtered on the `task` category); a phase of another
    /// category names a group of its own, so that each group's consumer keeps one category.
    fn group(&self) -> &'static str {
        crate::PHASES_GROUP
    }
}

/// Messages of a phase actor.
#[derive(Debug)]
pub enum PhaseMsg {
    /// The pump met an error it cannot get past: fail, so the supervisor restarts the actor.
    PumpFailed(String),
    /// How many inputs the phase handled since it started.
    Handled(RpcReplyPort<u64>),
}

/// The state of a phase actor: the pump task that owns the subscription.
pub struct PhaseState {
    stop: CancellationToken,
    pump: Option<tokio::task::JoinHandle<()>>,
    handled: Arc<std::sync::atomic::AtomicU64>,
    /// Cancels the pump if the actor is dropped without `post_stop` (killed).
    _guard: tokio_util::sync::DropGuard,
}

/// What a phase actor starts with.
pub(crate) struct PhaseArgs {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) phase: Arc<dyn Phase>,
}

/// The name of a phase's subscription, `phase-<name>`: its member name in the phases' group
/// (on an SQL log, the durable subscription's name too).
pub(crate) fn phase_subscription_name(phase: &dyn Phase) -> String {
    format!("phase-{}", phase.name())
}

/// What a phase's subscription takes: its input types, from the beginning of the log.
pub(crate) fn phase_subscription(phase: &dyn Phase) -> std::result::Result<SubscribeOptions, events::Error> {
    phase.subscription()
}

/// The ractor actor running one phase.
pub(crate) struct PhaseActor;

/// How long a stopping phase waits for its in-flight handlers.
pub const PHASE_DRAIN_MS_MAX: u64 = 10_000;

impl Actor for PhaseActor {
    type Msg = PhaseMsg;
    type State = PhaseState;
    type Arguments = PhaseArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PhaseMsg>,
        args: PhaseArgs,
    ) -> Result<PhaseState, ActorProcessingErr> {
        let PhaseArgs { ctx, phase } = args;
        let options = phase_subscription(phase.as_ref())?;
        let name = phase_subscription_name(phase.as_ref());
        let subscription = match ctx.intakes.get(phase.group()) {
            Some(intake) => intake.member(&name).await?,
            None => ctx.log.subscribe(&name, options).await?,
        };
        let stop = ctx.shutdown.child_token();
        let handled = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let pump = tokio::spawn(pump(ctx, phase, subscription, stop.clone(), myself, Arc::clone(&handled)));
        Ok(PhaseState { _guard: stop.clone().drop_guard(), stop, pump: Some(pump), handled })
    }

    async fn handle(
        &self,
        _myself: ActorRef<PhaseMsg>,
        msg: PhaseMsg,
        state: &mut PhaseState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PhaseMsg::PumpFailed(reason) => Err(reason.into()),
            PhaseMsg::Handled(reply) => {
                let _ = reply.send(state.handled.load(std::sync::atomic::Ordering::Relaxed));
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<PhaseMsg>,
        state: &mut PhaseState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop.cancel();
        if let Some(pump) = state.pump.take() {
            let _ = tokio::time::timeout(Duration::from_millis(PHASE_DRAIN_MS_MAX + 1_000), pump).await;
        }
        Ok(())
    }
}

async fn next_delivery(
    sub: &mut Box<dyn Subscription>,
    poll: Option<Duration>,
) -> Result<events::Delivery, LogError> {
    match poll {
        None => sub.next().await,
        Some(every) => loop {
            // The SQL subscription's `next` is cancel-safe: dropping it re-reads the log.
            if let Ok(delivery) = tokio::time::timeout(every, sub.next()).await {
                return delivery;
            }
        },
    }
}

/// Pulls inputs, runs handlers (bounded), acknowledges what is done, until `stop`; then
/// drains in-flight handlers for at most [`PHASE_DRAIN_MS_MAX`].
async fn pump(
    ctx: Arc<Ctx>,
    phase: Arc<dyn Phase>,
    mut sub: Box<dyn Subscription>,
    stop: CancellationToken,
    actor: ActorRef<PhaseMsg>,
    handled: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut running: JoinSet<(Position, Result<Handled>)> = JoinSet::new();
    let meter = ctx.metrics.phase_meter(phase.name());
    let mut failures = 0u32;
    let poll = ctx.poll_interval;
    let mut finished = Vec::new();
    loop {
        // Acknowledge whatever finished, first.
        while let Some(done) = running.try_join_next() {
            finished.push(done);
        }
        if let Err(reason) = settle_all(&mut sub, &mut finished, phase.name(), &handled).await {
            failures += 1;
            if failures >= LOG_FAILURE_COUNT_MAX {
                let _ = actor.cast(PhaseMsg::PumpFailed(reason));
                break; // the handlers running get the drain below
            }
        }
        let room = running.len() < PHASE_IN_FLIGHT_MAX;
        let can_race = ctx.next_is_cancel_safe || running.is_empty();
        let delivery = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(done) = running.join_next(), if !running.is_empty() && (can_race || !room) => {
                finished.push(done);
                continue; // settled at the top of the loop, with whatever else finished
            }
            delivery = next_delivery(&mut sub, poll), if room => delivery,
        };
        match delivery {
            Ok(delivery) => {
                failures = 0;
                let ctx = Arc::clone(&ctx);
                let phase = Arc::clone(&phase);
                let position = delivery.event.position;
                let handling = meter.handling();
                // One span per input, the child of whatever span recorded it (one trace per
                // task, across processes: the traceparent travels with the event).
                let span = tracing::info_span!(
                    "phase",
                    otel.name = phase.name(),
                    phase = phase.name(),
                    stream = %delivery.event.stream_id,
                    event_type = %delivery.event.event_type,
                );
                events::trace::continue_trace(&span, delivery.event.metadata.traceparent.as_deref());
                running.spawn(tracing::Instrument::instrument(
                    async move {
                        let outcome = phase.handle(&ctx, &delivery.event).await;
                        handling.ended(match &outcome {
                            Ok(Handled::Done) => crate::metrics::HandlingOutcome::Done,
                            Ok(Handled::Interrupted) => crate::metrics::HandlingOutcome::Interrupted,
                            Err(_) => crate::metrics::HandlingOutcome::Failed,
                        });
                        (position, outcome)
                    },
                    span,
                ));
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(phase = phase.name(), %error, "subscription failed");
                if failures >= LOG_FAILURE_COUNT_MAX {
                    let _ = actor.cast(PhaseMsg::PumpFailed(error.to_string()));
                    break; // the handlers running get the drain below
                }
                tokio::time::sleep(Duration::from_millis(50 << failures.min(5))).await;
            }
        }
    }
    // Drain: in-flight handlers finish (waits end at once on shutdown), then their inputs are
    // acknowledged; what is not finished in time stays unacknowledged for the next start.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(PHASE_DRAIN_MS_MAX);
    while !running.is_empty() {
        match tokio::time::timeout_at(deadline, running.join_next()).await {
            Ok(Some(done)) => {
                let _ = settle(&mut sub, done, phase.name(), &handled).await;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(phase = phase.name(), left = running.len(), "drain timed out");
                running.abort_all();
                break;
            }
        }
    }
}

/// What a spawned handler hands back: its input's position and what it did.
type Finished = std::result::Result<(Position, Result<Handled>), tokio::task::JoinError>;

/// Settles every finished handler, highest position first: an acknowledgement above an
/// unacknowledged input does not move the subscription's checkpoint, so only the last one
/// (the lowest) stores it — one durable write for the whole batch instead of one each.
/// Returns the last failure, if any.
async fn settle_all(
    sub: &mut Box<dyn Subscription>,
    finished: &mut Vec<Finished>,
    phase: &str,
    handled: &std::sync::atomic::AtomicU64,
) -> std::result::Result<(), String> {
    finished.sort_by_key(|done| std::cmp::Reverse(done.as_ref().map_or(0, |(position, _)| *position)));
    let mut outcome = Ok(());
    for done in finished.drain(..) {
        if let Err(reason) = settle(sub, done, phase, handled).await {
            outcome = Err(reason);
        }
    }
    outcome
}

/// Acknowledges a finished input, or leaves it for redelivery.
async fn settle(
    sub: &mut Box<dyn Subscription>,
    done: Finished,
    phase: &str,
    handled: &std::sync::atomic::AtomicU64,
) -> std::result::Result<(), String> {
    let (position, outcome) = match done {
        Ok(done) => done,
        Err(join) => {
            // A handler panicked: a bug. Its input stays unacknowledged and comes back after
            // a restart; the phase goes on with the others.
            tracing::error!(phase, %join, "a handler panicked");
            return Ok(());
        }
    };
    match outcome {
        Ok(Handled::Done) => {
            handled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            sub.ack(position).await.map_err(|e| e.to_string())
        }
        Ok(Handled::Interrupted) => Ok(()),
        Err(Error::ConflictRetriesExhausted { stream_id, attempts }) => {
            // Lost the race every time (a busy task, or a log answering with a stale head):
            // not the input's fault; it comes back.
            tracing::warn!(phase, position, %stream_id, attempts, "handler kept losing append races; input delivered again");
            sub.nack(position).await.map_err(|e| e.to_string())
        }
        Err(Error::Log(error)) if !error.is_bad_input() => {
            // The handler's failure is its input's: it comes back (with the log's backoff).
            // Only a failure of the subscription itself counts against the pump, so that a
            // database outage that fails some handlers does not restart the phase and cut
            // short the attempts running in it.
            tracing::warn!(phase, position, %error, "handler failed on the log; input delivered again");
            sub.nack(position).await.map_err(|e| e.to_string())
        }
        Err(error) => {
            // Not the log's fault: the input cannot be handled (undecodable, illegal). Logged
            // and acknowledged, so one bad event does not stop the phase.
            tracing::error!(phase, position, %error, "handler failed; input skipped");
            sub.ack(position).await.map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use events::task::{Channel, ContextGathered, IngressScreened, TaskStatus, TaskSubmitted};
    use events::{KeyPair, SignedSubmission, TaskSpec};

    use super::*;

    /// Given: a task (`spec`, submitted at 1,000 ms) whose first attempt started on `agent_id`
    /// under an envelope `federation` sealed for `spec.timeout_ms` from `issued_at_ms`, then
    /// the events `after` makes from that envelope (a result answering it, a failure).
    pub(crate) fn attempt_started(
        spec: TaskSpec,
        federation: &KeyPair,
        agent_id: &events::AgentId,
        issued_at_ms: i64,
        after: impl FnOnce(&events::SealedEnvelope) -> Vec<TaskEvent>,
    ) -> Loaded {
        use events::task::{AgentSelected, EnvelopeSealed, ExecutionStarted};
        let task_id = TaskId::new();
        let envelope = events::SealedEnvelope::seal(
            events::TaskEnvelope {
                task_id,
                attempt: 1,
                agent_id: agent_id.clone(),
                capability: spec.capability.clone(),
                description: spec.description.clone(),
                input: spec.input.clone(),
                context: serde_json::Value::Null,
                issued_at_ms,
                expires_at_ms: issued_at_ms + i64::try_from(spec.timeout_ms).expect("a test timeout"),
            },
            federation,
        )
        .expect("sealed");
        let mut events = vec![
            TaskEvent::AgentSelected(AgentSelected {
                agent_id: agent_id.clone(),
                attempt: 1,
                candidates: Vec::new(),
            }),
            TaskEvent::EnvelopeSealed(EnvelopeSealed { envelope: envelope.clone() }),
            TaskEvent::ExecutionStarted(ExecutionStarted { agent_id: agent_id.clone(), attempt: 1 }),
        ];
        events.extend(after(&envelope));
        loaded_after(task_id, spec, federation, events)
    }

    /// Given: a task submitted with `spec` (signed by `key`), screened, its context gathered,
    /// then `events`; the fold a decider is handed, as the log would give it.
    pub(crate) fn loaded_after(
        task_id: TaskId,
        spec: TaskSpec,
        key: &KeyPair,
        events: Vec<TaskEvent>,
    ) -> Loaded {
        let submission = SignedSubmission::sign(task_id, spec.clone(), key).expect("signed");
        let mut loaded = Loaded::empty(task_id, StreamId::task(task_id), 1_000);
        let given = [
            TaskEvent::Submitted(TaskSubmitted {
                task_id,
                spec,
                channel: Channel::Local,
                signed_by: submission.signed_by,
                signature: submission.signature,
            }),
            TaskEvent::IngressScreened(IngressScreened { findings: Vec::new(), redacted_description: None }),
            TaskEvent::ContextGathered(ContextGathered {
                similar_tasks: Vec::new(),
                best_practices: Vec::new(),
                pitfalls: Vec::new(),
                complexity: 0.5,
                sources: Vec::new(),
            }),
        ];
        for event in given.into_iter().chain(events) {
            let mut new = event.to_new_event(EventId::new(), Metadata::now("test")).expect("encodes");
            new.metadata.occurred_at_ms = 1_000;
            let version = loaded.version + 1;
            let NewEvent { id, event_type, schema_version, payload, .. } = &new;
            fold_one(&mut loaded, version, *id, 1_000, event_type, *schema_version, payload).expect("legal");
        }
        loaded
    }

    fn fold(task_id: TaskId, version: Version, status: TaskStatus) -> Arc<Loaded> {
        let mut loaded = Loaded::empty(task_id, StreamId::task(task_id), 0);
        loaded.version = version;
        loaded.state.status = status;
        Arc::new(loaded)
    }

    #[test]
    fn a_finished_task_is_not_displaced_by_an_earlier_fold() {
        let cache = TaskCache::default();
        let task = TaskId::new();
        cache.put(&fold(task, 9, TaskStatus::Completed));
        cache.put(&fold(task, 5, TaskStatus::Running));
        let cached = cache.get(task).expect("kept");
        assert_eq!(cached.version, 9);
        assert!(cached.is_final());
    }

    #[test]
    fn the_oldest_stored_entries_go_first_and_the_cache_stays_bounded() {
        let cache = TaskCache::default();
        let tasks: Vec<TaskId> = (0..TASK_CACHE_COUNT_MAX + 10).map(|_| TaskId::new()).collect();
        for (i, task) in tasks.iter().enumerate() {
            let status = if i % 2 == 0 { TaskStatus::Completed } else { TaskStatus::Running };
            cache.put(&fold(*task, 3, status));
            // A later version of an entry already stored replaces it in place.
            cache.put(&fold(*task, 4, status));
        }
        let inner = cache.inner.lock().unwrap();
        assert_eq!(inner.entries.len(), TASK_CACHE_COUNT_MAX);
        assert_eq!(inner.order.len(), TASK_CACHE_COUNT_MAX);
        drop(inner);
        assert!(tasks[..10].iter().all(|t| cache.get(*t).is_none()));
        assert!(tasks[10..].iter().all(|t| cache.get(*t).is_some_and(|l| l.version == 4)));
    }
}
