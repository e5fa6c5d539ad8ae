//! What the gateway is configured with, and the named limits every bounded resource uses.

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

/// Rate limits: a GCRA bucket per principal and per client address.
#[derive(Clone, Debug)]
pub struct RateLimits {
    /// Sustained requests per second per principal (token subject).
    pub per_principal_per_s: u32,
    /// Burst allowance per principal.
    pub per_principal_burst: u32,
    /// Sustained requests per second per client IP address.
    pub per_ip_per_s: u32,
    /// Burst allowance per client IP address.
    pub per_ip_burst: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { per_principal_per_s: 200, per_principal_burst: 400, per_ip_per_s: 500, per_ip_burst: 1_000 }
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
            auth,
            rate_limits: RateLimits::default(),
            webhooks: WebhookConfig::new(webhook_secret),
            instance: format!("gateway-{}", uuid::Uuid::new_v4().simple()),
            webhook_subscription: "gateway-webhooks".to_string(),
            data_dir: None,
            read_model: None,
            health_cool_down_ms: projections::health::COOL_DOWN_MS,
            probes: Vec::new(),
        }
    }
}
