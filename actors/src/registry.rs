//! The agent registry as this process sees it: every agent's state (folded from its stream),
//! per-agent statistics (success rate, latency) and recent tasks per capability, all rebuilt
//! from the log, plus the in-flight count of the executions this process runs. Also the
//! registration of agents with federation-signed passports, and their suspension and
//! retirement.
//!
//! The view is a cache, never the truth: it is rebuilt by reading the whole log at start and
//! then kept up to date by [`Registry::refresh`] every [`REGISTRY_REFRESH_MS`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use events::agent::{
    AgentEvent, AgentRegistered, AgentReinstated, AgentRetired, AgentSuspended, AgentTransport,
    PassportRenewed,
};
use events::task::TaskEvent;
use events::{
    AgentId, AgentState, AgentStatus, Aggregate, DomainEvent, EventId, EventLog, ExpectedVersion, KeyPair,
    LogError, Metadata, Passport, Position, RecordedEvent, SignedPassport, StreamId, TaskId, Version, now_ms,
};

use crate::error::{Error, Result};

/// How often the view reads what was appended since it last looked. On JetStream each look
/// replays the new events to this process once more; every 250 ms cost about 4% of the
/// pipeline's throughput over every second. Screening looks at once before refusing a
/// capability the view does not know.
pub const REGISTRY_REFRESH_MS: u64 = 1_000;

/// How long matching takes its view of an agent's stream as current before reading the stream
/// again ([`Registry::confirm_agents`]): an agent suspended or retired by another process is
/// no longer chosen from about this long after, instead of up to [`REGISTRY_REFRESH_MS`].
pub const AGENT_CONFIRM_MS: u64 = 100;

/// Recent finished tasks remembered per capability, for the context phase.
pub const RECENT_TASKS_PER_CAPABILITY_MAX: usize = 32;

/// Events read per page while refreshing.
const REFRESH_PAGE_COUNT: usize = 1_000;

/// Events of one agent's stream read at a time by [`Registry::confirm_agents`]: usually none
/// is new.
const AGENT_READ_PAGE_COUNT: usize = 64;

/// Events asked for per read when an agent's whole stream is folded ([`load_agent`]).
const AGENT_LOAD_PAGE_COUNT: usize = 1_000;

/// How long a passport issued at registration is valid.
pub const PASSPORT_VALIDITY_MS: i64 = 365 * 24 * 3_600 * 1_000;

/// Weight of the newest sample in the latency moving average.
const LATENCY_EWMA_WEIGHT: f64 = 0.2;

/// An agent's record of service, from the log.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AgentStats {
    /// Results that verified.
    pub succeeded: u64,
    /// Attempts that failed or timed out.
    pub failed: u64,
    /// Results that did not verify (forged, tampered, replayed).
    pub refused: u64,
    /// Moving average of start → result, ms (0 before any sample).
    pub latency_ms: f64,
}

impl AgentStats {
    /// Success rate with a uniform prior (1/2 before any evidence).
    pub fn success_rate(&self) -> f64 {
        (self.succeeded as f64 + 1.0) / ((self.succeeded + self.failed + self.refused) as f64 + 2.0)
    }
}

/// A finished task remembered for the context phase.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentTask {
    /// The task.
    pub task_id: TaskId,
    /// Lowercased words of its description (at most 64).
    pub words: Vec<String>,
    /// Whether it completed.
    pub succeeded: bool,
    /// The agent that ran its last attempt.
    pub agent_id: Option<AgentId>,
}

/// One agent as the registry shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentView {
    /// Its state (status, registration with the latest passport).
    pub state: AgentState,
    /// Its statistics.
    pub stats: AgentStats,
    /// Executions this process runs for it now.
    pub in_flight: u32,
}

#[derive(Debug, Default)]
struct Open {
    capability: String,
    words: Vec<String>,
    agent: Option<AgentId>,
    started_at_ms: Option<i64>,
}

#[derive(Debug, Default)]
struct View {
    agents: BTreeMap<AgentId, AgentState>,
    /// The last version of each agent's stream the view has taken (applied, or refused by
    /// the agent's state machine): events reach the view both from the whole log, in order,
    /// and from one agent's stream ([`Registry::confirm_agents`]), and each is taken once.
    agent_versions: HashMap<AgentId, Version>,
    /// When each agent's stream was last read on its own, for [`Registry::confirm_agents`].
    confirmed_at: HashMap<AgentId, Instant>,
    /// Whether each agent's passport carries the federation's signature, checked at a version
    /// of its stream ([`Registry::agent_now`]).
    passports_checked: HashMap<AgentId, (Version, bool)>,
    stats: HashMap<AgentId, AgentStats>,
    open: HashMap<TaskId, Open>,
    recent: HashMap<String, VecDeque<RecentTask>>,
    /// The next position to read.
    next: Position,
}

/// An agent as its stream says, and whether its passport's signature verified.
#[derive(Clone, Debug)]
pub(crate) struct KnownAgent {
    /// The agent's state.
    pub(crate) state: AgentState,
    /// The federation's signature on the passport, checked once per version of the stream
    /// (its validity window is checked on every use).
    pub(crate) passport_signed: bool,
}

/// The registry view. Shared by the phases of one process.
#[derive(Debug, Default)]
pub struct Registry {
    view: RwLock<View>,
    /// Held while agents' streams are read for [`Registry::confirm_agents`], so that the
    /// handlers that find the same agents due at once read them once, not each.
    confirming: tokio::sync::Mutex<()>,
    in_flight: Mutex<HashMap<AgentId, u32>>,
}

fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(64)
        .map(str::to_lowercase)
        .collect()
}

/// Whether `agent` is registered, not retired, and offers `capability`.
fn offered_by(agent: &AgentState, capability: &str) -> bool {
    matches!(agent.status, AgentStatus::Active | AgentStatus::Suspended)
        && agent
            .registration
            .as_ref()
            .is_some_and(|r| r.passport.passport.capabilities.iter().any(|c| c == capability))
}

impl View {
    fn apply(&mut self, event: &RecordedEvent) {
        match event.stream_id.category() {
            "agent" => {
                let Ok(id) = AgentId::new(event.stream_id.entity_id()) else { return };
                let taken = self.agent_versions.entry(id.clone()).or_insert(0);
                if event.version <= *taken {
                    return;
                }
                *taken = event.version;
                let Ok(decoded) = AgentEvent::from_recorded(event) else { return };
                let state = self.agents.entry(id).or_default();
                let _ = state.apply(&decoded);
            }
            "task" => self.apply_task(event),
            _ => {}
        }
    }

    fn apply_task(&mut self, event: &RecordedEvent) {
        use events::TaskEventKind as Kind;
        let interesting = Kind::of(event.event_type.as_str()).is_some_and(|kind| {
            kind.is_final()
                || matches!(
                    kind,
                    Kind::Submitted
                        | Kind::ExecutionStarted
                        | Kind::ResultReceived
                        | Kind::ResultVerified
                        | Kind::ExecutionFailed
                        | Kind::ExecutionTimedOut
                )
        });
        if !interesting {
            return;
        }
        let Some(task_id) = crate::phase::task_id_of(&event.stream_id) else { return };
        let Ok(decoded) = TaskEvent::from_recorded(event) else { return };
        let at = event.metadata.occurred_at_ms;
        match decoded {
            TaskEvent::Submitted(e) => {
                self.open.insert(
                    task_id,
                    Open {
                        capability: e.spec.capability,
                        words: words_of(&e.spec.description),
                        ..Open::default()
                    },
                );
            }
            TaskEvent::ExecutionStarted(e) => {
                if let Some(open) = self.open.get_mut(&task_id) {
                    open.agent = Some(e.agent_id);
                    open.started_at_ms = Some(at);
                }
            }
            TaskEvent::ResultReceived(e) => {
                let agent = e.result.result.agent_id;
                let started = self.open.get(&task_id).and_then(|o| o.started_at_ms);
                let stats = self.stats.entry(agent).or_default();
                if let Some(started) = started {
                    let sample = (at - started).max(0) as f64;
                    stats.latency_ms = if stats.latency_ms == 0.0 {
                        sample
                    } else {
                        stats.latency_ms * (1.0 - LATENCY_EWMA_WEIGHT) + sample * LATENCY_EWMA_WEIGHT
                    };
                }
            }
            TaskEvent::ResultVerified(e) => self.stats.entry(e.agent_id).or_default().succeeded += 1,
            TaskEvent::ExecutionFailed(e) => self.stats.entry(e.agent_id).or_default().failed += 1,
            TaskEvent::ExecutionTimedOut(e) => self.stats.entry(e.agent_id).or_default().failed += 1,
            TaskEvent::Completed(_)
            | TaskEvent::Failed(_)
            | TaskEvent::Rejected(_)
            | TaskEvent::Cancelled(_) => {
                let succeeded = matches!(decoded, TaskEvent::Completed(_));
                if let TaskEvent::Failed(f) = &decoded
                    && f.code == events::task::FailureCode::VerificationFailed
                    && let Some(agent) = self.open.get(&task_id).and_then(|o| o.agent.clone())
                {
                    self.stats.entry(agent).or_default().refused += 1;
                }
                if let Some(open) = self.open.remove(&task_id) {
                    let recent = self.recent.entry(open.capability).or_default();
                    if recent.len() == RECENT_TASKS_PER_CAPABILITY_MAX {
                        recent.pop_front();
                    }
                    recent.push_back(RecentTask {
                        task_id,
                        words: open.words,
                        succeeded,
                        agent_id: open.agent,
                    });
                }
            }
            _ => {}
        }
    }
}

impl Registry {
    /// An empty view; call [`Registry::refresh`] to fill it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads what the log recorded since the last refresh (the whole log the first time).
    pub async fn refresh(&self, log: &dyn EventLog) -> Result<usize, LogError> {
        let mut next = self.view.read().map_or(1, |v| v.next.max(1));
        let mut total = 0;
        loop {
            let page = log.read_all(next, REFRESH_PAGE_COUNT).await?;
            let Some(last) = page.last() else { break };
            next = last.position + 1;
            total += page.len();
            if let Ok(mut view) = self.view.write() {
                for event in &page {
                    view.apply(event);
                }
                view.next = next;
            }
            if page.len() < REFRESH_PAGE_COUNT {
                break;
            }
        }
        Ok(total)
    }

    /// Reads the stream of each agent offering `capability` that is not retired and was not
    /// read on its own within `max_age`, and takes what it finds. The whole view follows the
    /// log every [`REGISTRY_REFRESH_MS`]; matching calls this first, so that an agent
    /// another process suspended or retired a moment ago is not chosen. One short read per
    /// such agent (a query on SQL, a last-message request on JetStream).
    pub async fn confirm_agents(
        &self,
        log: &dyn EventLog,
        capability: &str,
        max_age: Duration,
    ) -> Result<(), LogError> {
        let due = self.due_agents(capability, max_age);
        if due.is_empty() {
            return Ok(());
        }
        let _confirming = self.confirming.lock().await;
        // Another handler may have read them while this one waited.
        for agent in self.due_agents(capability, max_age) {
            self.take_stream(log, &agent).await?;
        }
        Ok(())
    }

    /// Reads what `agent`'s stream holds past what the view took, and takes it.
    async fn take_stream(&self, log: &dyn EventLog, agent: &AgentId) -> Result<(), LogError> {
        loop {
            let taken = self.taken(agent);
            let read_at = Instant::now();
            let events = log.read_stream(&StreamId::agent(agent), taken + 1, AGENT_READ_PAGE_COUNT).await?;
            let Ok(mut view) = self.view.write() else { return Ok(()) };
            for event in &events {
                view.apply(event);
            }
            // A log may answer fewer events than asked: only an empty page is the end.
            if events.is_empty() {
                view.confirmed_at.insert(agent.clone(), read_at);
                return Ok(());
            }
        }
    }

    /// The last version of `agent`'s stream the view took.
    fn taken(&self, agent: &AgentId) -> Version {
        self.view.read().map_or(0, |v| v.agent_versions.get(agent).copied().unwrap_or(0))
    }

    /// `agent` as its stream says now: the view's state when it took the stream's last
    /// version (one look at the version), else after reading and taking the rest; with
    /// whether its passport carries `federation`'s signature (checked once per version of the
    /// stream). What verification decides on: a suspension, retirement or renewed passport
    /// recorded a moment ago by another process is a new version, and is read.
    pub(crate) async fn agent_now(
        &self,
        log: &dyn EventLog,
        agent: &AgentId,
        federation: &events::PublicKey,
    ) -> Result<KnownAgent, LogError> {
        let version = log.stream_version(&StreamId::agent(agent)).await?;
        if self.taken(agent) < version {
            self.take_stream(log, agent).await?;
        }
        let Ok(mut view) = self.view.write() else {
            return Ok(KnownAgent { state: AgentState::default(), passport_signed: false });
        };
        let version = view.agent_versions.get(agent).copied().unwrap_or(0);
        let state = view.agents.get(agent).cloned().unwrap_or_default();
        let passport_signed = match view.passports_checked.get(agent) {
            Some((checked, signed)) if *checked == version => *signed,
            _ => {
                let signed = state.registration.as_ref().is_some_and(|r| {
                    r.passport.verify(federation, r.passport.passport.not_before_ms).is_ok()
                });
                view.passports_checked.insert(agent.clone(), (version, signed));
                signed
            }
        };
        Ok(KnownAgent { state, passport_signed })
    }

    /// The agents offering `capability`, not retired, whose streams were not read on their own
    /// within `max_age`.
    fn due_agents(&self, capability: &str, max_age: Duration) -> Vec<AgentId> {
        match self.view.read() {
            Ok(view) => view
                .agents
                .iter()
                .filter(|(_, a)| offered_by(a, capability))
                .filter(|(id, _)| view.confirmed_at.get(*id).is_none_or(|at| at.elapsed() >= max_age))
                .map(|(id, _)| id.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Whether a registered agent that is not retired offers `capability` (a suspended one
    /// counts: the task waits for it rather than being refused).
    pub fn offers(&self, capability: &str) -> bool {
        self.view.read().is_ok_and(|v| v.agents.values().any(|a| offered_by(a, capability)))
    }

    /// Every capability an active agent offers, sorted.
    pub fn capabilities(&self) -> Vec<String> {
        let mut all: Vec<String> = self.view.read().map_or_else(
            |_| Vec::new(),
            |v| {
                v.agents
                    .values()
                    .filter(|a| a.status == AgentStatus::Active)
                    .filter_map(|a| a.registration.as_ref())
                    .flat_map(|r| r.passport.passport.capabilities.clone())
                    .collect()
            },
        );
        all.sort();
        all.dedup();
        all
    }

    /// Every agent the log knows.
    pub fn agents(&self) -> Vec<(AgentId, AgentView)> {
        let in_flight = self.in_flight.lock().map(|m| m.clone()).unwrap_or_default();
        self.view.read().map_or_else(
            |_| Vec::new(),
            |v| {
                v.agents
                    .iter()
                    .map(|(id, state)| {
                        (
                            id.clone(),
                            AgentView {
                                state: state.clone(),
                                stats: v.stats.get(id).copied().unwrap_or_default(),
                                in_flight: in_flight.get(id).copied().unwrap_or(0),
                            },
                        )
                    })
                    .collect()
            },
        )
    }

    /// One agent's state.
    pub fn agent(&self, id: &AgentId) -> Option<AgentState> {
        self.view.read().ok().and_then(|v| v.agents.get(id).cloned())
    }

    /// Recent finished tasks of a capability, oldest first.
    pub fn recent(&self, capability: &str) -> Vec<RecentTask> {
        self.view
            .read()
            .ok()
            .and_then(|v| v.recent.get(capability).map(|r| r.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// Tasks the view knows as submitted and not finished (for `pantheon agents`' load).
    pub fn open_tasks_by_agent(&self) -> HashMap<AgentId, u32> {
        let mut out = HashMap::new();
        if let Ok(v) = self.view.read() {
            for open in v.open.values() {
                if let Some(agent) = &open.agent {
                    *out.entry(agent.clone()).or_insert(0) += 1;
                }
            }
        }
        out
    }

    /// Counts an execution starting in this process.
    pub(crate) fn begin(&self, agent: &AgentId) {
        if let Ok(mut m) = self.in_flight.lock() {
            *m.entry(agent.clone()).or_insert(0) += 1;
        }
    }

    /// Counts an execution starting in this process until the returned guard is dropped —
    /// also when the attempt's future is dropped before it ends (a phase restarting, a drain
    /// cut short), which a `begin` … `end` pair would count as running for ever, until the
    /// agent looked full in this process.
    pub(crate) fn running<'a>(&'a self, agent: &'a AgentId) -> InFlight<'a> {
        self.begin(agent);
        InFlight { registry: self, agent }
    }

    /// Counts an execution ending in this process.
    pub(crate) fn end(&self, agent: &AgentId) {
        if let Ok(mut m) = self.in_flight.lock()
            && let Some(n) = m.get_mut(agent)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// Executions this process runs for `agent` now.
    pub fn in_flight(&self, agent: &AgentId) -> u32 {
        self.in_flight.lock().ok().and_then(|m| m.get(agent).copied()).unwrap_or(0)
    }
}

/// The key a built-in agent signs its results with: derived from the federation key (an
/// ed25519 signature is deterministic), so every process of one federation derives the same
/// key for the same agent and its passport stays valid across restarts and instances.
pub fn builtin_agent_key(federation: &KeyPair, agent: &AgentId) -> KeyPair {
    let mut message = b"pantheon built-in agent key v1\n".to_vec();
    message.extend_from_slice(agent.as_str().as_bytes());
    let signature = federation.sign(&message);
    let seed = blake3_seed(&signature.0);
    KeyPair::from_seed(seed)
}

fn blake3_seed(bytes: &[u8]) -> [u8; 32] {
    // The events crate hashes with blake3; reuse its hash rather than a second hasher.
    events::Hash::of(bytes).0
}

/// An agent's stream folded whole, read page by page (a log answers at most a page per read),
/// and the stream's version. Events the fold refuses are skipped; the version counts them.
pub async fn load_agent(log: &dyn EventLog, agent_id: &AgentId) -> Result<(AgentState, events::Version)> {
    let stream = StreamId::agent(agent_id);
    let mut state = AgentState::default();
    let mut version = 0;
    loop {
        let page = log.read_stream(&stream, version + 1, AGENT_LOAD_PAGE_COUNT).await?;
        for event in &page {
            version = event.version;
            if let Ok(decoded) = AgentEvent::from_recorded(event) {
                let _ = state.apply(&decoded);
            }
        }
        // A log may answer fewer events than asked: only an empty page is the end.
        if page.is_empty() {
            return Ok((state, version));
        }
    }
}

/// An execution counted as running in this process while it lives ([`Registry::running`]).
pub(crate) struct InFlight<'a> {
    registry: &'a Registry,
    agent: &'a AgentId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.registry.end(self.agent);
    }
}

/// Registers an agent (or renews its passport when its key or capabilities changed);
/// returns the passport in force. Idempotent: re-registering the same agent writes nothing.
pub async fn register_agent(
    log: &dyn EventLog,
    federation: &KeyPair,
    agent_id: &AgentId,
    agent_key: &events::PublicKey,
    capabilities: Vec<String>,
    max_concurrency: u32,
    transport: AgentTransport,
) -> Result<SignedPassport> {
    let stream = StreamId::agent(agent_id);
    for _ in 0..crate::phase::CONFLICT_RETRY_COUNT_MAX {
        let (state, version) = load_agent(log, agent_id).await?;
        let now = now_ms();
        let issue = || {
            SignedPassport::issue(
                Passport {
                    agent_id: agent_id.clone(),
                    public_key: *agent_key,
                    capabilities: capabilities.clone(),
                    not_before_ms: now - 60_000,
                    not_after_ms: now + PASSPORT_VALIDITY_MS,
                },
                federation,
            )
        };
        if state.status == AgentStatus::Retired {
            return Err(Error::AgentRetired(agent_id.to_string()));
        }
        let event = match &state.registration {
            None => AgentEvent::Registered(AgentRegistered {
                passport: issue()?,
                max_concurrency,
                transport: transport.clone(),
                slo: None,
            }),
            Some(registration) => {
                let passport = &registration.passport;
                let current = passport.passport.public_key == *agent_key
                    && passport.passport.capabilities == capabilities
                    && passport.issued_by == federation.public_key()
                    && passport.passport.not_after_ms > now + PASSPORT_VALIDITY_MS / 2;
                if current {
                    return Ok(passport.clone());
                }
                AgentEvent::PassportRenewed(PassportRenewed { passport: issue()? })
            }
        };
        let passport = match &event {
            AgentEvent::Registered(r) => r.passport.clone(),
            AgentEvent::PassportRenewed(r) => r.passport.clone(),
            _ => unreachable!("only registrations and renewals are built here"),
        };
        let expected = if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
        let new = event.to_new_event(EventId::new(), Metadata::now("registry"))?;
        match log.append(&stream, expected, vec![new]).await {
            Ok(_) => return Ok(passport),
            Err(LogError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(crate::error::Error::ConflictRetriesExhausted {
        stream_id: stream.to_string(),
        attempts: crate::phase::CONFLICT_RETRY_COUNT_MAX,
    })
}

/// What an operator can do to an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentAction {
    /// Take it out of matching.
    Suspend,
    /// Put a suspended agent back.
    Reinstate,
    /// Remove it for good.
    Retire,
}

/// Suspends, reinstates or retires an agent, by `by`, for `reason`.
pub async fn change_agent(
    log: &dyn EventLog,
    agent_id: &AgentId,
    action: AgentAction,
    by: &str,
    reason: &str,
) -> Result<()> {
    let stream = StreamId::agent(agent_id);
    let (mut state, version) = load_agent(log, agent_id).await?;
    // Said plainly, instead of the vocabulary's refusal of the transition.
    let unchanged = |how: &str| Error::AgentUnchanged(format!("agent {agent_id} {how}"));
    match (version == 0, state.status, action) {
        (true, ..) => return Err(Error::NotFound(format!("no agent {agent_id} is registered"))),
        (_, AgentStatus::Retired, _) => return Err(unchanged("is retired already; nothing changes it")),
        (_, AgentStatus::Suspended, AgentAction::Suspend) => return Err(unchanged("is suspended already")),
        (_, AgentStatus::Active, AgentAction::Reinstate) => return Err(unchanged("is active already")),
        _ => {}
    }
    let (by, reason) = (by.to_string(), reason.to_string());
    let event = match action {
        AgentAction::Suspend => AgentEvent::Suspended(AgentSuspended { reason, by }),
        AgentAction::Reinstate => AgentEvent::Reinstated(AgentReinstated { reason, by }),
        AgentAction::Retire => AgentEvent::Retired(AgentRetired { reason, by }),
    };
    state.apply(&event).map_err(events::Error::from)?;
    let new = event.to_new_event(EventId::new(), Metadata::now("operator"))?;
    log.append(&stream, ExpectedVersion::Exact(version), vec![new]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use events::agent::AgentTransport;
    use events::{KeyPair, PublicKey};

    use super::*;

    async fn log() -> (tempfile::TempDir, std::sync::Arc<dyn EventLog>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("pantheon.db").display());
        let log = store::open(&url).await.expect("open sqlite log");
        (dir, log)
    }

    /// Given: an agent registered and taken by the view; then another writer suspends it,
    /// renews its passport with another federation key, and writes more events than a page.
    #[tokio::test]
    async fn the_agent_verification_decides_on_is_its_stream_now() {
        let (_dir, log) = log().await;
        let federation = KeyPair::generate();
        let agent = AgentId::new("a1").unwrap();
        let key: PublicKey = KeyPair::generate().public_key();
        let transport = AgentTransport::InProcess { builtin: "echo".into() };
        register_agent(log.as_ref(), &federation, &agent, &key, vec!["echo".into()], 4, transport.clone())
            .await
            .expect("registered");
        let registry = Registry::new();
        registry.refresh(log.as_ref()).await.expect("refresh");
        let known = registry.agent_now(log.as_ref(), &agent, &federation.public_key()).await.expect("agent");
        assert_eq!(known.state.status, AgentStatus::Active);
        assert!(known.passport_signed);

        // Another process: suspensions and reinstatements past one page, then a suspension.
        for i in 0..AGENT_READ_PAGE_COUNT {
            change_agent(log.as_ref(), &agent, AgentAction::Suspend, "operator", &format!("check {i}"))
                .await
                .unwrap();
            change_agent(log.as_ref(), &agent, AgentAction::Reinstate, "operator", "back").await.unwrap();
        }
        change_agent(log.as_ref(), &agent, AgentAction::Suspend, "operator", "for good").await.unwrap();
        let known = registry.agent_now(log.as_ref(), &agent, &federation.public_key()).await.expect("agent");
        assert_eq!(
            known.state.status,
            AgentStatus::Suspended,
            "read past a page without waiting for a refresh"
        );
        assert_eq!(known.state.status_reason.as_deref(), Some("for good"));

        // A passport issued by another key does not verify against the federation's.
        change_agent(log.as_ref(), &agent, AgentAction::Reinstate, "operator", "back").await.unwrap();
        let other = KeyPair::generate();
        register_agent(log.as_ref(), &other, &agent, &key, vec!["echo".into()], 4, transport).await.unwrap();
        let known = registry.agent_now(log.as_ref(), &agent, &federation.public_key()).await.expect("agent");
        assert_eq!(known.state.status, AgentStatus::Active);
        assert!(!known.passport_signed, "checked again at the stream's new version");
    }
}
