//! What the gateway is configured with, and the named limits every bounded resource uses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use events::KeyPair;

use crate::auth::AuthConfig;

/// The largest request body accepted, in bytes. A task's input travels inside one event whose
/// payload may be at most 512 KiB ([`events::EVENT_PAYLOAD_BYTES_MAX`]); 256 KiB leaves room for
/// the spec, the signature and the encoding.
pub const REQUEST_BODY_BYTES_MAX: usize = 256 * 1024;

/// The longest a synchronous execute waits, whatever timeout the task asks for (10 min): an
/// HTTP request held longer than that is better served by submit + webhook.
pub const EXECUTE_WAIT_MS_MAX: u64 = 10 * 60 * 1000;

/// The largest stream version a request may name (`from_version`): the log's versions are
/// signed 64-bit integers.
pub const VERSION_MAX: u64 = i64::MAX as u64;

/// A query parameter in `min..=max`, or `400` naming it and its range.
pub(crate) fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> crate::error::Result<Option<T>> {
    match value {
        Some(v) if v < min || v > max => Err(crate::error::Error::InvalidParameter {
            what: name.to_string(),
            message: format!("must be {min} to {max}, not {v}"),
        }),
        other => Ok(other),
    }
}

/// How long `/tasks/execute` waits past the task's own timeout for the task's end to be
/// recorded (the pipeline fails a task at its deadline, or the sweeper a moment after it:
/// 2 s of grace, swept every second), so that it answers the real end instead of a 504.
pub const EXECUTE_END_GRACE_MS: u64 = 5_000;

/// The most events one `GET /tasks/{id}/events` page returns.
pub const EVENTS_PAGE_COUNT_MAX: usize = 500;

/// The most tasks one `GET /tasks` page returns.
pub const TASKS_PAGE_COUNT_MAX: usize = 100;

/// The most log events one `GET /tasks` or `GET /agents` request scans before it answers with
/// a cursor: bounds the work of one listing until the projections' indexed views serve it.
pub const LIST_SCAN_EVENT_COUNT_MAX: usize = 5_000;

/// The most task streams (WebSocket + SSE) open at once.
pub const STREAMS_OPEN_COUNT_MAX: usize = 1_024;

/// The largest WebSocket message a client may send (commands are tiny JSON objects).
pub const WS_CLIENT_MESSAGE_BYTES_MAX: usize = 4 * 1024;

/// How long one frame may take to reach a streaming client before it is dropped as a slow
/// consumer (the server reads the log only as fast as the client takes frames, so nothing
/// queues beyond one page of events).
pub const STREAM_SEND_TIMEOUT_MS: u64 = 5_000;

/// How often a waiting request looks at the task's stream when no wake-up arrived: the
/// fallback for writers this process does not see (another process on the same SQLite file).
pub const WAIT_POLL_MS: u64 = 1_000;

/// One rate limit: a sustained rate with a burst above it (a GCRA bucket), or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// No limit: for trusted services (a producer feeding the federation).
    Unlimited,
    /// At most `per_s` requests a second sustained, `burst` at once.
    Rate {
        /// Sustained requests per second (at least 1).
        per_s: u32,
        /// Requests at once above the sustained rate (at least 1).
        burst: u32,
    },
}

impl Limit {
    /// `per_s` a second with a burst of twice that.
    pub const fn per_s(per_s: u32) -> Self {
        Self::Rate { per_s, burst: per_s.saturating_mul(2) }
    }

    /// Whether this limit lets more through than `other` (unlimited above all; then the
    /// higher sustained rate, then the higher burst).
    pub fn more_generous_than(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Unlimited, Self::Unlimited) | (Self::Rate { .. }, Self::Unlimited) => false,
            (Self::Unlimited, Self::Rate { .. }) => true,
            (Self::Rate { per_s: a, burst: b }, Self::Rate { per_s: c, burst: d }) => (a, b) > (c, d),
        }
    }
}

/// How a limit is written in the auth config: `"unlimited"`, or `{"per_s": N, "burst": M}`
/// (`burst` defaults to twice `per_s`).
#[derive(Clone, Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum LimitSpec {
    /// `"unlimited"`.
    Word(String),
    /// A rate.
    Rate {
        /// Sustained requests per second, at least 1.
        per_s: u32,
        /// Requests at once; default twice `per_s`.
        #[serde(default)]
        burst: Option<u32>,
    },
}

impl LimitSpec {
    /// The limit, or why the spec is not one.
    pub fn limit(&self) -> std::result::Result<Limit, String> {
        match self {
            Self::Word(word) if word == "unlimited" => Ok(Limit::Unlimited),
            Self::Word(word) => {
                Err(format!("{word:?} is not a limit: write \"unlimited\" or {{\"per_s\": N}}"))
            }
            Self::Rate { per_s: 0, .. } => {
                Err("per_s must be at least 1 (use \"unlimited\" for no limit)".into())
            }
            Self::Rate { burst: Some(0), .. } => Err("burst must be at least 1".into()),
            Self::Rate { per_s, burst } => {
                Ok(Limit::Rate { per_s: *per_s, burst: burst.unwrap_or_else(|| per_s.saturating_mul(2)) })
            }
        }
    }
}

/// Rate limits: a GCRA bucket per principal and per client address. A principal's limit is
/// its subject's own when one is set, else the most generous of its roles' limits, else
/// `per_principal`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Each principal's limit, unless its subject or a role of its says otherwise.
    pub per_principal: Limit,
    /// Limits by role (the most generous of a principal's roles applies).
    pub per_role: BTreeMap<String, Limit>,
    /// Limits by token subject (before any role's).
    pub per_subject: BTreeMap<String, Limit>,
    /// Each client IP address's limit, before authentication (a proxy in front of the gateway
    /// is one address).
    pub per_ip: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_principal: Limit::Rate {
                per_s: RATE_PER_PRINCIPAL_PER_S,
                burst: 2 * RATE_PER_PRINCIPAL_PER_S,
            },
            per_role: BTreeMap::new(),
            per_subject: BTreeMap::new(),
            per_ip: Limit::Rate { per_s: RATE_PER_IP_PER_S, burst: 2 * RATE_PER_IP_PER_S },
        }
    }
}

/// The default sustained requests a second per principal.
pub const RATE_PER_PRINCIPAL_PER_S: u32 = 200;

/// The default sustained requests a second per client address.
pub const RATE_PER_IP_PER_S: u32 = 500;

impl RateLimits {
    /// The limit of the principal `subject` holding `roles`.
    pub fn for_principal<'a>(&self, subject: &str, roles: impl IntoIterator<Item = &'a str>) -> Limit {
        if let Some(limit) = self.per_subject.get(subject) {
            return *limit;
        }
        roles
            .into_iter()
            .filter_map(|role| self.per_role.get(role))
            .fold(None, |best: Option<Limit>, limit| match best {
                Some(best) if !limit.more_generous_than(&best) => Some(best),
                _ => Some(*limit),
            })
            .unwrap_or(self.per_principal)
    }

    /// Every distinct principal limit (the limiters to build).
    pub fn principal_limits(&self) -> Vec<Limit> {
        let mut limits = vec![self.per_principal];
        for limit in self.per_role.values().chain(self.per_subject.values()) {
            if !limits.contains(limit) {
                limits.push(*limit);
            }
        }
        limits
    }
}

/// The `rate_limits` section of the auth config.
#[derive(Clone, Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// Each principal's limit (default 200 a second, burst 400).
    #[serde(default)]
    pub per_principal: Option<LimitSpec>,
    /// Limits by role.
    #[serde(default)]
    pub roles: BTreeMap<String, LimitSpec>,
    /// Limits by token subject.
    #[serde(default)]
    pub subjects: BTreeMap<String, LimitSpec>,
    /// Each client address's limit (default 500 a second, burst 1,000).
    #[serde(default)]
    pub per_ip: Option<LimitSpec>,
}

impl RateLimitsFile {
    /// The limits it sets over the defaults, or what is wrong (naming the entry).
    pub fn limits(&self) -> std::result::Result<RateLimits, String> {
        let mut limits = RateLimits::default();
        let at = |what: String| move |e: String| format!("rate_limits.{what}: {e}");
        if let Some(spec) = &self.per_principal {
            limits.per_principal = spec.limit().map_err(at("per_principal".into()))?;
        }
        if let Some(spec) = &self.per_ip {
            limits.per_ip = spec.limit().map_err(at("per_ip".into()))?;
        }
        for (role, spec) in &self.roles {
            limits.per_role.insert(role.clone(), spec.limit().map_err(at(format!("roles.{role}")))?);
        }
        for (subject, spec) in &self.subjects {
            limits
                .per_subject
                .insert(subject.clone(), spec.limit().map_err(at(format!("subjects.{subject}")))?);
        }
        Ok(limits)
    }
}

impl WebhookConfig {
    /// Takes an allow-list: each entry a network (`10.1.0.0/16`, an address) or a host
    /// (`hooks.internal`, `*.corp.example`); what is wrong, naming the entry.
    pub fn allow(&mut self, entries: &[String]) -> std::result::Result<(), String> {
        for entry in entries {
            let entry = entry.trim();
            let looks_like_network = entry.contains('/') || entry.parse::<IpAddr>().is_ok();
            if looks_like_network {
                self.allow_networks.push(entry.parse().map_err(|e| format!("webhooks.allow: {e}"))?);
            } else if !entry.is_empty()
                && entry.trim_start_matches("*.").split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
            {
                self.allow_hosts.push(entry.to_string());
            } else {
                return Err(format!("webhooks.allow: {entry:?} is neither a host name nor a network"));
            }
        }
        Ok(())
    }
}

/// Webhook delivery settings.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The master secret each task's webhook signing secret (`whsec_…`) is derived from.
    pub master_secret: Arc<[u8]>,
    /// Deliveries tried per webhook before it is dead-lettered.
    pub attempts_max: u32,
    /// The first retry's delay; each next one doubles, with ±50 % jitter.
    pub backoff_initial: Duration,
    /// The longest delay between two attempts.
    pub backoff_max: Duration,
    /// How long one delivery may take.
    pub request_timeout: Duration,
    /// Allow targets on loopback addresses (tests, local development).
    pub allow_loopback: bool,
    /// Allow targets on private and link-local addresses (a trusted internal network).
    pub allow_private: bool,
    /// Hosts allowed as targets whatever they resolve to (`name`, or `*.domain`).
    pub allow_hosts: Vec<String>,
    /// Networks allowed as targets although special-purpose.
    pub allow_networks: Vec<crate::webhooks::Network>,
    /// The most deliveries in flight at once.
    pub in_flight_max: usize,
}

impl WebhookConfig {
    /// Defaults with the given master secret: 6 attempts over about a minute, 10 s per try,
    /// public targets only.
    pub fn new(master_secret: impl Into<Arc<[u8]>>) -> Self {
        Self {
            master_secret: master_secret.into(),
            attempts_max: 6,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            allow_loopback: false,
            allow_private: false,
            allow_hosts: Vec::new(),
            allow_networks: Vec::new(),
            in_flight_max: 64,
        }
    }
}

/// Everything the gateway needs to run.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The key the gateway signs admitted submissions with.
    pub signing_key: Arc<KeyPair>,
    /// Token verification and roles.
    pub auth: AuthConfig,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Webhook delivery.
    pub webhooks: WebhookConfig,
    /// A name for this gateway instance (subscription names, logs); unique per process.
    pub instance: String,
    /// Where the webhook dispatcher's durable subscription is named from: one name per
    /// deployment so a restarted gateway resumes unfinished deliveries.
    pub webhook_subscription: String,
    /// Where `pantheon up` keeps the files it generated (informational).
    pub data_dir: Option<PathBuf>,
    /// The projections' database: `GET /tasks` lists from its task view, and the agent
    /// endpoints add load, health and reputation from it. Without it those answer 503.
    pub read_model: Option<projections::Db>,
    /// The health cool-down the deployment uses (what a half-open agent waits), ms.
    pub health_cool_down_ms: i64,
    /// Parts of the process outside the gateway that report on `/metrics` and `/readyz` (the
    /// archiver, in NATS mode).
    pub probes: Vec<Arc<dyn Probe>>,
    /// Agent registration and management (without it those endpoints answer 503).
    pub agent_admin: Option<Arc<dyn AgentAdmin>>,
    /// The rate limiters, when the caller keeps a handle to replace the limits at run time;
    /// `None`: built from `rate_limits`.
    pub limiters: Option<Arc<crate::limits::Limiters>>,
    /// Reloads the configuration (`POST /admin/reload`; without it that endpoint answers 503).
    pub reload: Option<Arc<dyn Reload>>,
    /// The pull agents' work (`POST /agents/{id}/work`; without it those endpoints answer 503).
    pub pull: Option<Arc<dyn PullWork>>,
}

/// What the gateway needs of the pipeline for pull workers (`pantheon up` supplies the
/// pipeline's pull board): offers to take, and the workers' results, failures, progress and
/// heartbeats to pass on.
pub trait PullWork: Send + Sync + std::fmt::Debug + 'static {
    /// The oldest offer for `agent`, waiting up to `wait`, leased for `lease`.
    fn take(
        &self,
        agent: events::AgentId,
        wait: std::time::Duration,
        lease: std::time::Duration,
    ) -> futures::future::BoxFuture<'_, Option<WorkOffer>>;
    /// The worker's signed result for its leased attempt; why not, if refused.
    fn complete(
        &self,
        agent: events::AgentId,
        task_id: events::TaskId,
        result: events::SignedResult,
    ) -> futures::future::BoxFuture<'_, std::result::Result<(), String>>;
    /// The worker gives its leased attempt up, for `reason`.
    fn fail(
        &self,
        agent: events::AgentId,
        task_id: events::TaskId,
        reason: String,
    ) -> futures::future::BoxFuture<'_, std::result::Result<(), String>>;
    /// Progress of the leased attempt (renews its lease).
    fn progress(
        &self,
        agent: events::AgentId,
        task_id: events::TaskId,
        percent: Option<u8>,
        message: String,
    ) -> futures::future::BoxFuture<'_, std::result::Result<(), String>>;
    /// The worker is alive: its leases are renewed and its liveness noted.
    fn heartbeat(&self, agent: events::AgentId) -> futures::future::BoxFuture<'_, ()>;
}

/// An attempt offered to a pull worker.
#[derive(Clone, Debug)]
pub struct WorkOffer {
    /// The task.
    pub task_id: events::TaskId,
    /// The attempt.
    pub attempt: u32,
    /// What to run, sealed by the federation.
    pub envelope: events::SealedEnvelope,
    /// The lease: renewed by progress and heartbeats, lapsed after this long without them.
    pub lease_ms: u64,
}

/// What the gateway needs of the process to reload its configuration without a restart:
/// `pantheon up` reads its files again, applies what it can and records the change.
pub trait Reload: Send + Sync + std::fmt::Debug + 'static {
    /// Reloads, `by` the principal: what changed, or why nothing did (the configuration did
    /// not load).
    fn reload(
        &self,
        by: String,
    ) -> futures::future::BoxFuture<'_, std::result::Result<ReloadOutcome, String>>;
}

/// What a reload applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ReloadOutcome {
    /// Changed and applied, one line each.
    pub changes: Vec<String>,
    /// Changed, but takes a restart.
    pub not_applied: Vec<String>,
    /// The blake3 hash of the configuration now in force.
    pub config_hash: String,
}

/// What the gateway needs of the pipeline to manage agents: the federation key issues their
/// passports, so `pantheon up` supplies this (`POST /agents`, suspend, reinstate, retire).
pub trait AgentAdmin: Send + Sync + std::fmt::Debug + 'static {
    /// Registers `request`'s agent (or renews its passport), recorded as its events, `by`
    /// the principal; the passport in force.
    fn register(
        &self,
        request: crate::routes::agents::RegisterAgent,
        by: String,
    ) -> futures::future::BoxFuture<'_, std::result::Result<events::SignedPassport, AgentAdminError>>;

    /// Suspends, reinstates or retires `agent`, `by` the principal, for `reason`.
    fn change(
        &self,
        agent: events::AgentId,
        change: AgentChange,
        by: String,
        reason: String,
    ) -> futures::future::BoxFuture<'_, std::result::Result<(), AgentAdminError>>;

    /// The capabilities the federation's active agents offer now (a workflow asking for
    /// another is refused at start); `None` when not known here.
    fn capabilities(&self) -> Option<Vec<String>> {
        None
    }
}

/// A change to an agent's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentChange {
    /// Out of matching for now.
    Suspend,
    /// Back into matching.
    Reinstate,
    /// Out for good.
    Retire,
}

/// Why an agent could not be managed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentAdminError {
    /// No such agent.
    #[error("{0}")]
    NotFound(String),
    /// The agent's state does not allow it (retired, suspended already…).
    #[error("{0}")]
    Conflict(String),
    /// The log or the pipeline failed.
    #[error("{0}")]
    Failed(String),
}

/// A part of the process outside the gateway that `/metrics` and `/readyz` report on.
pub trait Probe: Send + Sync + std::fmt::Debug + 'static {
    /// Its Prometheus text (`# HELP`, `# TYPE` and samples), appended to `/metrics`.
    fn metrics(&self) -> String;
    /// Why it is degraded, if it is: `/readyz` then answers 503 with this reason.
    fn degraded(&self) -> Option<String>;
}

impl GatewayConfig {
    /// A configuration with defaults, listening on `listen`, checking tokens with `auth`.
    pub fn new(listen: SocketAddr, auth: AuthConfig, signing_key: KeyPair, webhook_secret: Vec<u8>) -> Self {
        Self {
            listen,
            signing_key: Arc::new(signing_key),
            rate_limits: auth.rate_limits.clone().unwrap_or_default(),
            auth,
            webhooks: WebhookConfig::new(webhook_secret),
            instance: format!("gateway-{}", uuid::Uuid::new_v4().simple()),
            webhook_subscription: "gateway-webhooks".to_string(),
            data_dir: None,
            read_model: None,
            health_cool_down_ms: projections::health::COOL_DOWN_MS,
            probes: Vec::new(),
            agent_admin: None,
            limiters: None,
            reload: None,
            pull: None,
        }
    }
}
