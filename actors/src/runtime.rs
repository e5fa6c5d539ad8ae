//! [`Runtime`]: everything of one Pantheon process — the registry view and its refresher, the
//! hosted agents (registered with passports), the supervisor and its phase actors, and, in
//! NATS mode, the listener for signed submissions — started together and shut down together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use events::agent::AgentTransport;
use events::task::Channel;
use events::{AgentId, EventLog, KeyPair, PublicKey, StreamId, TaskId, TaskSpec, TaskState};
use ractor::{Actor, ActorRef};
use tokio_util::sync::CancellationToken;

use crate::agents::command::CommandAgent;
use crate::agents::echo::Echo;
use crate::agents::http::HttpAgent;
use crate::agents::nats::NatsAgent;
use crate::agents::{AgentEndpoint, InProcessAgent, Worker};
use crate::completion::Completion;
use crate::config::{AgentConfig, Builtin, Config};
use crate::context::{Context, HttpSource};
use crate::egress::EgressScreening;
use crate::error::{Error, Result};
use crate::execution::Execution;
use crate::matching::Matching;
use crate::phase::{
    Ctx, Finals, Phase, TaskCache, load_task_cached, phase_subscription, phase_subscription_name,
};
use crate::registry::{REGISTRY_REFRESH_MS, Registry, builtin_agent_key, register_agent};
use crate::retry::Retry;
use crate::screening::{IngressScreening, Screener, StandardScreener, SwappableScreener};
use crate::sealing::Sealing;
use crate::standing::Standing;
use crate::supervisor::{Supervisor, SupervisorArgs, SupervisorMsg};
use crate::verification::Verification;

/// An agent hosted by this process besides the configured built-ins (tests bring their own).
pub struct HostedAgent {
    /// Its id.
    pub id: AgentId,
    /// What it can do.
    pub capabilities: Vec<String>,
    /// Tasks it runs at once at most.
    pub max_concurrency: u32,
    /// The key its results are signed with (its passport names it).
    pub public_key: PublicKey,
    /// How the executor reaches it.
    pub endpoint: Arc<dyn AgentEndpoint>,
}

impl std::fmt::Debug for HostedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedAgent").field("id", &self.id).field("capabilities", &self.capabilities).finish()
    }
}

/// How to start a [`Runtime`].
pub struct RuntimeOptions {
    /// The log every phase consumes and appends to.
    pub log: Arc<dyn EventLog>,
    /// The federation key: seals envelopes, issues passports, and signs local submissions.
    pub federation: Arc<KeyPair>,
    /// Agents, screening, producers.
    pub config: Config,
    /// Agents besides the configured built-ins.
    pub extra_agents: Vec<HostedAgent>,
    /// The screener; `None` for [`StandardScreener`] with `config.screening`.
    pub screener: Option<Arc<dyn Screener>>,
    /// Treat dropping a pending `Subscription::next` as safe even when the log does not say so
    /// ([`EventLog::next_is_cancel_safe`] is asked first; this only adds to it).
    pub next_is_cancel_safe: bool,
    /// Re-poll the phases' subscriptions this often; default: the log's own
    /// [`EventLog::cross_process_poll`] (50 ms on SQLite, which wakes only in-process
    /// subscribers).
    pub poll_interval: Option<Duration>,
    /// In NATS mode: the client on which to listen for signed submissions.
    pub nats: Option<async_nats::Client>,
    /// The read models' database (the projections'; the SQLite file or PostgreSQL): matching
    /// then leaves unhealthy agents out and scores health and reputation from it. `None` (the
    /// default): every agent counts as healthy, reputation comes from the registry's counts.
    pub read_model: Option<projections::Db>,
    /// The time deciders are given: the system clock by default.
    pub clock: Arc<dyn events::Clock>,
}

impl RuntimeOptions {
    /// Options with the defaults for `log` and `federation`: the default config (one `echo`
    /// agent), the standard screener, no extra agents.
    pub fn new(log: Arc<dyn EventLog>, federation: Arc<KeyPair>) -> Self {
        Self {
            log,
            federation,
            config: Config::default(),
            extra_agents: Vec::new(),
            screener: None,
            next_is_cancel_safe: false,
            poll_interval: None,
            nats: None,
            read_model: None,
            clock: Arc::new(events::SystemClock),
        }
    }
}

/// One running Pantheon process.
pub struct Runtime {
    ctx: Arc<Ctx>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_task: tokio::task::JoinHandle<()>,
    refresher: tokio::task::JoinHandle<()>,
    /// The heartbeats and the health/reputation refresher; they end with `ctx.shutdown`.
    background: Vec<tokio::task::JoinHandle<()>>,
    submissions: Option<tokio::task::JoinHandle<()>>,
    /// What a reload changes in place.
    reloader: Reloader,
}

/// A handle that reloads a running pipeline's configuration ([`Runtime::reloader`]).
#[derive(Clone)]
pub struct Reloader {
    ctx: Arc<Ctx>,
    reloadable: Arc<Reloadable>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// The parts of a running pipeline a reload changes in place.
struct Reloadable {
    /// The configuration in force.
    config: tokio::sync::Mutex<Config>,
    /// The screener, unless the options gave one of their own.
    screener: Option<Arc<SwappableScreener>>,
    /// The hosted agents' slots, with their maximum concurrency.
    slots: HashMap<AgentId, (Arc<tokio::sync::Semaphore>, std::sync::atomic::AtomicU32)>,
}

/// What [`Runtime::reload`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Changed and applied, one line each.
    pub changes: Vec<String>,
    /// Changed, but takes a restart.
    pub not_applied: Vec<String>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// How long a drain waits, after the attempts running here ended, for their tasks to end.
pub const DRAIN_SETTLE_MS_MAX: u64 = 2_000;

/// How long `pantheon up` gives the attempts running in it to finish when asked to stop.
pub const DRAIN_MS_DEFAULT: u64 = 30_000;

/// The name of the phases' subscription group: on JetStream, the one consumer through which
/// the phases of every process take their input events.
pub const PHASES_GROUP: &str = "phases";

impl Reloader {
    /// Applies a configuration read again (SIGHUP, `POST /admin/reload`) without a restart:
    /// the screening policy (unless the options gave a screener of their own), and the
    /// capabilities and maximum concurrency of the configured agents (their registration
    /// renewed, their slots resized). What takes a restart — an agent added or removed, its
    /// kind, program, URL, subject or key changed, the other sections — is reported, not
    /// applied. Nothing is recorded here: the caller records the report.
    pub async fn reload(&self, new: &Config) -> Result<ReloadReport> {
        let mut current = self.reloadable.config.lock().await;
        let mut report = ReloadReport::default();
        if current.screening != new.screening {
            let lines = changed_keys("screening", &current.screening, &new.screening);
            match &self.reloadable.screener {
                Some(swappable) => {
                    swappable.replace(Arc::new(StandardScreener::new(new.screening.clone())));
                    report.changes.extend(lines);
                }
                None => report.not_applied.extend(
                    lines.into_iter().map(|l| format!("{l} (this process screens with its own screener)")),
                ),
            }
        }
        let old_agents: HashMap<&AgentId, &AgentConfig> = current.agents.iter().map(|a| (&a.id, a)).collect();
        let mut renewed = false;
        for agent in &new.agents {
            let Some(old) = old_agents.get(&agent.id) else {
                report.not_applied.push(format!(
                    "agent {} added: takes a restart (or register it at run time: POST /agents)",
                    agent.id
                ));
                continue;
            };
            if !same_kind(old, agent) {
                report.not_applied.push(format!(
                    "agent {}: its kind, program, URL, subject or key changed: takes a restart",
                    agent.id
                ));
                continue;
            }
            let (capabilities_before, capabilities) = (old.capabilities(), agent.capabilities());
            if capabilities_before == capabilities && old.max_concurrency == agent.max_concurrency {
                continue;
            }
            let (_, transport, public_key) =
                configured_agent(agent, &self.ctx.federation, self.ctx.nats.as_ref())?;
            register_agent(
                self.ctx.log.as_ref(),
                &self.ctx.federation,
                &agent.id,
                &public_key,
                capabilities.clone(),
                agent.max_concurrency,
                transport,
            )
            .await?;
            renewed = true;
            if capabilities_before != capabilities {
                report.changes.push(format!(
                    "agent {}: capabilities [{}] → [{}]",
                    agent.id,
                    capabilities_before.join(", "),
                    capabilities.join(", ")
                ));
            }
            if old.max_concurrency != agent.max_concurrency {
                self.resize(&agent.id, agent.max_concurrency);
                report.changes.push(format!(
                    "agent {}: max-concurrency {} → {}",
                    agent.id, old.max_concurrency, agent.max_concurrency
                ));
            }
        }
        let new_ids: std::collections::HashSet<&AgentId> = new.agents.iter().map(|a| &a.id).collect();
        for agent in current.agents.iter().filter(|a| !new_ids.contains(&a.id)) {
            report.not_applied.push(format!(
                "agent {} removed from the config: it runs until a restart (retire it: pantheon agents retire {})",
                agent.id, agent.id
            ));
        }
        for (section, differs) in [
            ("producers", current.producers != new.producers),
            ("nats", current.nats != new.nats),
            ("health", current.health != new.health),
            ("context", current.context != new.context),
            ("webhooks", current.webhooks != new.webhooks),
        ] {
            if differs {
                report.not_applied.push(format!("[{section}] changed: takes a restart"));
            }
        }
        if renewed && let Err(error) = self.ctx.registry.refresh(self.ctx.log.as_ref()).await {
            tracing::warn!(%error, "the registry view did not take the reload yet; it will on its next refresh");
        }
        // What was applied is in force; what was not stays as it was.
        current.screening = new.screening.clone();
        for agent in current.agents.iter_mut() {
            if let Some(updated) = new.agents.iter().find(|a| a.id == agent.id && same_kind(a, agent)) {
                agent.capabilities = updated.capabilities.clone();
                agent.max_concurrency = updated.max_concurrency;
            }
        }
        Ok(report)
    }

    /// Resizes a hosted agent's slots to `max` (running attempts keep theirs; a smaller
    /// maximum takes effect as they end).
    fn resize(&self, agent: &AgentId, max: u32) {
        use std::sync::atomic::Ordering;
        let Some((slots, current)) = self.reloadable.slots.get(agent) else { return };
        let before = current.swap(max.max(1), Ordering::SeqCst);
        let (before, after) = (crate::execution::permits(before), crate::execution::permits(max));
        if after > before {
            slots.add_permits(after - before);
        } else if before > after {
            let mut owed = before - after;
            owed -= slots.forget_permits(owed);
            if owed > 0 {
                // Held by running attempts: taken as they are given back.
                let slots = Arc::clone(slots);
                tokio::spawn(async move {
                    if let Ok(permits) = slots.acquire_many(u32::try_from(owed).unwrap_or(u32::MAX)).await {
                        permits.forget();
                    }
                });
            }
        }
    }
}

/// Whether two configurations of an agent differ at most in what a reload applies
/// (capabilities, maximum concurrency).
fn same_kind(a: &AgentConfig, b: &AgentConfig) -> bool {
    let reduced = |c: &AgentConfig| AgentConfig { capabilities: Vec::new(), max_concurrency: 0, ..c.clone() };
    reduced(a) == reduced(b)
}

/// `section.key: before → after` for each top-level key of two serialisations that differ.
fn changed_keys<T: serde::Serialize>(section: &str, before: &T, after: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return vec![format!("{section} changed")];
    };
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| before.get(*key) != after.get(*key))
        .map(|key| {
            let show =
                |v: Option<&serde_json::Value>| v.map_or_else(|| "unset".to_string(), |v| v.to_string());
            format!(
                "{section}.{}: {} → {}",
                key.replace('_', "-"),
                show(before.get(key)),
                show(after.get(key))
            )
        })
        .collect()
}

/// The phases in pipeline order.
fn phases(context: Context, execution: Execution) -> Vec<Arc<dyn Phase>> {
    vec![
        Arc::new(IngressScreening),
        Arc::new(context),
        Arc::new(Matching),
        Arc::new(Sealing),
        Arc::new(execution),
        Arc::new(Retry),
        Arc::new(Verification),
        Arc::new(EgressScreening),
        Arc::new(Completion),
        Arc::new(crate::workflows::WorkflowSteps),
        Arc::new(crate::workflows::WorkflowRuns),
    ]
}

impl Runtime {
    /// Registers the agents, rebuilds the registry view from the log, and starts the phases.
    pub async fn start(options: RuntimeOptions) -> Result<Self> {
        let RuntimeOptions {
            log,
            federation,
            config,
            extra_agents,
            screener,
            next_is_cancel_safe,
            poll_interval,
            nats,
            read_model,
            clock,
        } = options;
        let mut agents: HashMap<AgentId, Arc<dyn AgentEndpoint>> = HashMap::new();
        let mut limits = HashMap::new();
        for agent in &config.agents {
            let (endpoint, transport, public_key) = configured_agent(agent, &federation, nats.as_ref())?;
            let registered = register_agent(
                log.as_ref(),
                &federation,
                &agent.id,
                &public_key,
                agent.capabilities(),
                agent.max_concurrency,
                transport,
            )
            .await;
            if let Err(Error::AgentRetired(_)) = registered {
                // Retired for good (`pantheon agents retire`): the rest of the process starts.
                tracing::warn!(
                    agent = %agent.id,
                    "agent {} of the config is retired, so it is not started; remove it from the config, or give it another id",
                    agent.id
                );
                continue;
            }
            registered?;
            agents.insert(agent.id.clone(), endpoint);
            limits.insert(agent.id.clone(), agent.max_concurrency);
        }
        for agent in extra_agents {
            register_agent(
                log.as_ref(),
                &federation,
                &agent.id,
                &agent.public_key,
                agent.capabilities.clone(),
                agent.max_concurrency,
                AgentTransport::InProcess { builtin: "hosted".into() },
            )
            .await?;
            limits.insert(agent.id.clone(), agent.max_concurrency);
            agents.insert(agent.id, agent.endpoint);
        }
        let registry = Arc::new(Registry::new());
        registry.refresh(log.as_ref()).await?;
        let standing = Arc::new(Standing::new(read_model.clone(), config.health.cool_down_ms_i64()));
        if let Err(error) = standing.refresh().await {
            tracing::warn!(%error, "agent health and reputation not read; trying again shortly");
        }
        let mut trusted_submitters = vec![federation.public_key()];
        trusted_submitters.extend(config.producers.iter().map(|p| p.public_key));
        let swappable = match screener {
            Some(_) => None,
            None => Some(Arc::new(SwappableScreener::new(Arc::new(StandardScreener::new(
                config.screening.clone(),
            ))))),
        };
        let screener: Arc<dyn Screener> = match (screener, &swappable) {
            (Some(screener), _) => screener,
            (None, Some(swappable)) => Arc::clone(swappable) as Arc<dyn Screener>,
            (None, None) => Arc::new(StandardScreener::new(config.screening.clone())),
        };
        let shutdown = CancellationToken::new();
        let sources = config
            .context
            .sources
            .iter()
            .map(|source| HttpSource::new(source.clone()).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let slots = crate::execution::slots(&limits);
        let reloadable = Reloadable {
            config: tokio::sync::Mutex::new(config.clone()),
            screener: swappable,
            slots: slots
                .iter()
                .map(|(id, slot)| {
                    let max = limits.get(id).copied().unwrap_or(1);
                    (id.clone(), (Arc::clone(slot), std::sync::atomic::AtomicU32::new(max)))
                })
                .collect(),
        };
        let phases = phases(Context::new(sources), Execution::new(slots));
        // One subscription group per category of inputs: the task phases', the workflows'.
        let mut intakes = HashMap::new();
        let mut groups: Vec<&'static str> = phases.iter().map(|phase| phase.group()).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            let members = phases
                .iter()
                .filter(|phase| phase.group() == group)
                .map(|phase| {
                    Ok((phase_subscription_name(phase.as_ref()), phase_subscription(phase.as_ref())?))
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(intake) = log.subscribe_group(group, &members).await? {
                intakes.insert(group, intake);
            }
        }
        // What the backend says of itself, unless the options say more.
        let next_is_cancel_safe = next_is_cancel_safe || log.next_is_cancel_safe();
        let poll_interval = poll_interval.or_else(|| log.cross_process_poll());
        let ctx = Arc::new(Ctx {
            log: Arc::clone(&log),
            federation,
            registry: Arc::clone(&registry),
            screener,
            agents,
            trusted_submitters,
            shutdown: shutdown.clone(),
            draining: CancellationToken::new(),
            attempts: std::sync::Mutex::default(),
            finals: Finals::default(),
            tasks: TaskCache::default(),
            metrics: Arc::default(),
            nats: nats.clone(),
            standing: Arc::clone(&standing),
            liveness: read_model.clone().map(projections::LivenessTable::new),
            runs: Arc::default(),
            timers: Arc::new(crate::workflows::Timers::new(
                read_model.clone().map(projections::TimerTable::new),
            )),
            pull: Arc::new(crate::pull::PullBoard::new(
                read_model.clone().map(projections::LivenessTable::new),
                nats.clone(),
            )),
            clock,
            // A group's members are cancel-safe (they read an in-process queue).
            next_is_cancel_safe: next_is_cancel_safe || !intakes.is_empty(),
            intakes,
            poll_interval,
        });
        let refresher = {
            let (log, registry, shutdown) = (Arc::clone(&log), Arc::clone(&registry), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(REGISTRY_REFRESH_MS)) => {}
                    }
                    if let Err(error) = registry.refresh(log.as_ref()).await {
                        tracing::warn!(%error, "registry refresh failed");
                    }
                }
            })
        };
        if let Err(error) = crate::heartbeat::round(&ctx).await {
            tracing::warn!(%error, "the first heartbeats were not sent or liveness not watched");
        }
        let args = SupervisorArgs { ctx: Arc::clone(&ctx), phases };
        let (supervisor, supervisor_task) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|e| Error::Actor { name: "supervisor".into(), reason: e.to_string() })?;
        let submissions = match nats {
            Some(client) => Some(
                crate::submissions::listen(Arc::clone(&ctx), client, config.nats.submit_subject.clone())
                    .await?,
            ),
            None => None,
        };
        // Spawned last: no error path is left that would leave them running.
        let mut background = vec![crate::heartbeat::spawn(Arc::clone(&ctx))];
        if let Some(client) = &ctx.nats {
            background.push(tokio::spawn(crate::pull::serve_remote(
                Arc::clone(&ctx.pull),
                client.clone(),
                shutdown.clone(),
            )));
            background.push(tokio::spawn(crate::pull_nats::serve(
                Arc::clone(&ctx.pull),
                client.clone(),
                shutdown.clone(),
            )));
        }
        if let Some(read_model) = read_model {
            background
                .push(crate::sweeper::spawn(Arc::clone(&ctx), projections::TaskReader::new(read_model)));
        }
        background.extend(crate::standing::spawn_refresher(standing, shutdown.clone()));
        background.push(tokio::spawn(crate::workflows::fire_timers(Arc::clone(&ctx))));
        let reloader = Reloader { ctx: Arc::clone(&ctx), reloadable: Arc::new(reloadable) };
        Ok(Self { ctx, supervisor, supervisor_task, refresher, background, submissions, reloader })
    }

    /// The log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.ctx.log
    }

    /// The pipeline's measurements (phases, appends, the fold cache, agent attempts), for
    /// `GET /metrics`.
    pub fn metrics(&self) -> Arc<crate::PipelineMetrics> {
        Arc::clone(&self.ctx.metrics)
    }

    /// The offers of this process's pull agents, which their workers' polls take
    /// (`POST /agents/{id}/work`).
    pub fn pull_board(&self) -> Arc<crate::pull::PullBoard> {
        Arc::clone(&self.ctx.pull)
    }

    /// A handle to reload this pipeline's configuration ([`Reloader::reload`]).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Applies a configuration read again: [`Reloader::reload`].
    pub async fn reload(&self, new: &Config) -> Result<ReloadReport> {
        self.reloader.reload(new).await
    }

    /// The registry view, shared (to refresh it after a change made in this process).
    pub fn registry_shared(&self) -> Arc<Registry> {
        Arc::clone(&self.ctx.registry)
    }

    /// The registry view.
    pub fn registry(&self) -> &Registry {
        &self.ctx.registry
    }

    /// Submits a task signed with the federation key (channel `local`).
    pub async fn submit(&self, spec: TaskSpec) -> Result<TaskId> {
        let (task_id, event) =
            crate::client::new_task_event(spec, &self.ctx.federation, Channel::Local, "runtime")?;
        let stream_id = StreamId::task(task_id);
        if event.payload.len() > events::EVENT_PAYLOAD_BYTES_MAX {
            // Refused and recorded as such (see `client::submit`).
            return crate::client::append_submission(
                self.ctx.log.as_ref(),
                task_id,
                event,
                Channel::Local,
                "runtime",
            )
            .await;
        }
        self.ctx.log.append(&stream_id, events::ExpectedVersion::NoStream, vec![event.clone()]).await?;
        // This process knows the whole stream: the phases and the waiters start from it
        // instead of reading it.
        crate::phase::remember_first(&self.ctx, task_id, stream_id, &event);
        Ok(task_id)
    }

    /// Waits until the task ends (or `timeout` passes) and returns its state. Woken at once
    /// when this process ends the task; another process ending it is seen within a second.
    pub async fn wait_final(&self, task_id: TaskId, timeout: Duration) -> Result<TaskState> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut first = true;
        loop {
            let mut woken = self.ctx.finals.watch(task_id);
            // The first look takes the cached fold when there is one: if it is not final, the
            // wait below is woken when this process ends the task, and the next look (within a
            // second) reads the log for another process's end.
            let cached = if first { self.ctx.tasks.get(task_id) } else { None };
            first = false;
            let loaded = match cached {
                Some(cached) => cached,
                None => load_task_cached(&self.ctx, task_id).await?,
            };
            if loaded.is_final() {
                self.ctx.finals.forget(task_id);
                return Ok(loaded.state.clone());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.ctx.finals.forget(task_id);
                return Err(Error::Timeout(format!("task {task_id} is still {}", loaded.state.status)));
            }
            let wait = (deadline - now).min(Duration::from_secs(1));
            if let Ok(Ok(state)) = tokio::time::timeout(wait, &mut woken).await {
                return Ok(state); // this process just appended the final event
            }
        }
    }

    /// How many times the supervisor restarted a phase actor.
    pub async fn restarts(&self) -> u32 {
        ractor::call_t!(self.supervisor, SupervisorMsg::Restarts, 1_000).unwrap_or(0)
    }

    /// Inputs handled by each phase's current actor.
    pub async fn handled(&self) -> Vec<(&'static str, u64)> {
        ractor::call_t!(self.supervisor, SupervisorMsg::Handled, 5_000).unwrap_or_default()
    }

    /// Makes a phase's actor fail as a fault would; the supervisor restarts it. For
    /// fault-injection tests. Returns whether the phase was found.
    pub async fn fail_phase(&self, name: &str) -> bool {
        ractor::call_t!(self.supervisor, |reply| SupervisorMsg::Fail(name.to_string(), reply), 1_000)
            .unwrap_or(false)
    }

    /// Drains: no new attempt starts and no NATS submission is taken, and the attempts
    /// running in this process are given until `within` passes to end; then the phases after
    /// execution get up to [`DRAIN_SETTLE_MS_MAX`] more to end those tasks (verification,
    /// storage, egress, completion). Returns how many of those tasks were still not final
    /// when it returned (a failed attempt whose retry could not start, or an agent still
    /// working). The other phases keep running; call [`Runtime::shutdown`] next. An attempt
    /// not started stays unacknowledged and starts on the next start.
    pub async fn drain(&self, within: Duration) -> usize {
        self.ctx.draining.cancel();
        let deadline = tokio::time::Instant::now() + within;
        let running =
            || self.ctx.attempts.lock().map(|attempts| attempts.iter().copied().collect::<Vec<_>>());
        let tasks: Vec<TaskId> = running().unwrap_or_default();
        if tasks.is_empty() {
            return 0;
        }
        tracing::info!(tasks = tasks.len(), "draining: waiting for the attempts running here");
        while running().is_ok_and(|now| !now.is_empty()) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let settle = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(100))
            .min(Duration::from_millis(DRAIN_SETTLE_MS_MAX));
        let waits = tasks.iter().map(|task| self.wait_final(*task, settle));
        futures::future::join_all(waits).await.iter().filter(|outcome| outcome.is_err()).count()
    }

    /// Stops pulling new inputs, lets in-flight handlers finish (waits end at once and stay
    /// unacknowledged for the next start), and stops every actor.
    pub async fn shutdown(self) {
        self.ctx.draining.cancel();
        self.ctx.shutdown.cancel();
        if let Some(submissions) = self.submissions {
            let _ = submissions.await;
        }
        let _ = self.supervisor.stop_and_wait(Some("shutdown".into()), None).await;
        let _ = self.supervisor_task.await;
        let _ = self.refresher.await;
        for task in self.background {
            let _ = task.await;
        }
    }
}

/// How a configured agent is reached, how it is registered, and the key its results are
/// signed with: a built-in hosted here (its key derived from the federation's), or an agent
/// outside the process over HTTP or NATS (its key from the configuration).
fn configured_agent(
    agent: &AgentConfig,
    federation: &KeyPair,
    nats: Option<&async_nats::Client>,
) -> Result<(Arc<dyn AgentEndpoint>, AgentTransport, PublicKey)> {
    // The same checks as the config file's (a programmatic config skips that parse).
    agent.validate_kind().map_err(|reason| Error::Config { path: "agents".into(), reason })?;
    let invalid = |reason: &str| Error::Config {
        path: "agents".into(),
        reason: format!("agent {}: {reason}", agent.id),
    };
    let worker: Arc<dyn Worker> =
        match (agent.builtin, &agent.command, &agent.url, &agent.subject, agent.public_key) {
            (Builtin::Echo, ..) => Arc::new(Echo),
            (Builtin::Command, Some(command), ..) => Arc::new(CommandAgent::new(command.clone())),
            (Builtin::Http, _, Some(url), _, Some(public_key)) => {
                let endpoint = HttpAgent::new(url.clone()).map_err(|failure| invalid(&failure.reason))?;
                return Ok((Arc::new(endpoint), AgentTransport::Http { url: url.clone() }, public_key));
            }
            (Builtin::Nats, _, _, Some(subject), Some(public_key)) => {
                let client = nats
                    .cloned()
                    .ok_or_else(|| invalid("a nats agent needs the process to run on NATS (--nats)"))?;
                return Ok((
                    Arc::new(NatsAgent::new(client, subject.clone())),
                    AgentTransport::Nats { subject: subject.clone() },
                    public_key,
                ));
            }
            _ => return Err(invalid("the agent's fields do not fit its kind")),
        };
    let builtin = if agent.builtin == Builtin::Echo { "echo" } else { "command" };
    let key = builtin_agent_key(federation, &agent.id);
    let public_key = key.public_key();
    let endpoint = InProcessAgent::new(agent.id.clone(), key, federation.public_key(), worker);
    Ok((Arc::new(endpoint), AgentTransport::InProcess { builtin: builtin.into() }, public_key))
}
