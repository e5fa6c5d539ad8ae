//! Webhooks: signed deliveries of a task's outcome, retried, then dead-lettered, with every
//! attempt recorded in the task's history.
//!
//! # Format (Standard Webhooks)
//! `POST` with headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the
//! task's secret `whsec_<base64 key>`. The body is `{"type": "task.completed" | "task.failed" |
//! "task.rejected" | "task.cancelled", "timestamp": RFC 3339, "data": <the task view>}`.
//! Each task's secret is derived from the gateway's master secret and the task id (HMAC), so
//! it is returned once at submission and never stored.
//!
//! # Delivery
//! A durable subscription (one name per deployment) to the tasks' final events drives the
//! dispatcher; a finished task with a `webhook_url` is delivered up to `attempts_max` times with
//! exponential backoff and ±50 % jitter, each attempt appended as `WebhookAttempted` with a
//! deterministic id (so a dispatcher restarted mid-delivery does not record an attempt twice and
//! resumes after the attempts already recorded), then `WebhookDeadLettered` with the reason.
//! The subscription position is acknowledged only when the delivery is done.
//!
//! # Workflow runs
//! A run started with a `webhook_url` (`POST /workflows/{name}/runs`) is delivered the same way
//! when it ends: type `run.completed` | `run.failed` | `run.cancelled`, data the run as
//! `GET /runs/{id}` shows it, signed with the run's own secret (derived from the master secret
//! and the run id under another label, returned once in the start's answer); attempts and the
//! dead letter are recorded in the run's stream (`run_webhook_attempted`,
//! `run_webhook_dead_lettered`). A second durable subscription (`<name>-runs`) follows the
//! runs' final events.
//!
//! # SSRF guard
//! Targets must be `http`/`https` URLs without credentials whose every resolved address is
//! public: every special-purpose range of IANA's IPv4 and IPv6 registries is refused
//! (loopback, private, link-local, CGNAT, documentation, benchmarking, reserved, multicast,
//! IPv4-compatible and 6to4 forms; NAT64 by the address it embeds), unless the allow-list
//! names the host or the network (`[webhooks] allow` in `pantheon.toml`). The check runs at submission and again
//! at delivery, inside the HTTP client's resolver (so DNS rebinding between check and connect
//! does not help), and redirects are never followed.
//!
//! # HTTP client
//! reqwest without default features (rustls with no built-in provider, HTTP/2, JSON); the
//! ring provider rustls already compiles for async-nats is installed as the process default,
//! so the tree holds one crypto provider and no aws-lc-rs build.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use events::task::{WebhookAttempted, WebhookDeadLettered};
use events::workflow::WorkflowEvent;
use events::{
    DomainEvent, EventId, EventLog, ExpectedVersion, Filter, Metadata, Position, RecordedEvent, StartFrom,
    StreamId, SubscribeOptions, TaskEvent, TaskId, WorkflowId,
};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::WebhookConfig;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::task::TrackedTask;

/// How long resolving a webhook host may take.
const RESOLVE_TIMEOUT_MS: u64 = 5_000;

/// How long the dispatcher waits before reopening its subscription after a log error.
const RESUBSCRIBE_DELAY_MS: u64 = 1_000;

/// Finished deliveries acknowledged together at most.
const ACK_BATCH_COUNT_MAX: usize = 64;

/// The longest error text recorded for one attempt.
const ATTEMPT_ERROR_BYTES_MAX: usize = 300;

/// The final event types a webhook is sent for.
pub const WEBHOOK_EVENT_TYPES: [&str; 4] = events::task::FINAL_EVENT_TYPES;

/// What sends a dead-lettered webhook again.
const REDELIVERY_EVENT_TYPE: &str = events::task::TaskEventKind::WebhookRedeliveryRequested.as_str();

/// An IP network, `address/prefix` (an address alone is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in the network (an IPv4 network holds the IPv4-mapped IPv6 forms too).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (address, prefix) = text.split_once('/').map_or((text, None), |(a, p)| (a, Some(p)));
        let address: IpAddr =
            address.trim().parse().map_err(|_| format!("{text:?} is not an address or a network"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {bits}"))?,
        };
        Ok(Self { address, prefix })
    }
}

/// An IPv6 address that stands for an IPv4 one (mapped `::ffff:a.b.c.d`) as that IPv4
/// address; any other address as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The special-purpose IPv4 ranges of IANA's registry (RFC 6890 and later): none is a webhook
/// target unless allowed.
const SPECIAL_V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "\"this network\""),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.31.196.0/24", "an AS112 address"),
    ("192.52.193.0/24", "an AMT address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("192.175.48.0/24", "an AS112 address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("255.255.255.255/32", "the broadcast address"),
];

/// The special-purpose IPv6 ranges of IANA's registry. NAT64 (`64:ff9b::/96`) is judged by
/// the IPv4 address it embeds.
const SPECIAL_V6: &[(&str, &str)] = &[
    ("::/96", "an unspecified, loopback or IPv4-compatible address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/23", "an IETF protocol assignment (Teredo and others)"),
    ("2001:db8::/32", "a documentation address"),
    ("2002::/16", "a 6to4 address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
];

/// Why `ip` is a special-purpose address, if it is.
pub fn special_purpose(ip: IpAddr) -> Option<&'static str> {
    let ip = canonical(ip);
    if let IpAddr::V6(v6) = ip {
        let nat64: Network = Network { address: "64:ff9b::".parse().unwrap_or(IpAddr::V6(v6)), prefix: 96 };
        if nat64.contains(ip) {
            let [.., a, b, c, d] = v6.octets();
            return special_purpose(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
        }
    }
    let table = if ip.is_ipv4() { SPECIAL_V4 } else { SPECIAL_V6 };
    table
        .iter()
        .find_map(|(network, why)| network.parse::<Network>().ok().filter(|n| n.contains(ip)).map(|_| *why))
}

/// Which webhook targets are allowed: public addresses, and what the allow-list names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Hosts allowed whatever they resolve to: a name (`hooks.internal`) or every name under
    /// a domain (`*.corp.example`).
    pub hosts: Vec<String>,
    /// Networks allowed although special-purpose (a trusted internal network, loopback for
    /// local development).
    pub networks: Vec<Network>,
}

impl TargetPolicy {
    /// The policy a configuration sets.
    pub fn from_config(config: &WebhookConfig) -> Self {
        let mut policy = Self { hosts: config.allow_hosts.clone(), networks: config.allow_networks.clone() };
        let network = |text: &str| text.parse::<Network>().ok();
        if config.allow_loopback {
            policy.networks.extend(["127.0.0.0/8", "::1/128"].into_iter().filter_map(network));
        }
        if config.allow_private {
            policy.networks.extend(
                [
                    "10.0.0.0/8",
                    "172.16.0.0/12",
                    "192.168.0.0/16",
                    "100.64.0.0/10",
                    "169.254.0.0/16",
                    "fc00::/7",
                    "fe80::/10",
                ]
                .into_iter()
                .filter_map(network),
            );
        }
        policy
    }

    /// Why `ip` is refused, if it is: a special-purpose address outside the allowed networks.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        if self.networks.iter().any(|n| n.contains(ip)) {
            return None;
        }
        special_purpose(ip)
    }

    /// Whether the allow-list names `host` (then whatever it resolves to is allowed).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            match allowed.strip_prefix("*.") {
                Some(domain) => host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.')),
                None => host == allowed,
            }
        })
    }

    /// Checks a target URL: scheme, credentials, and every address its host resolves to.
    pub async fn check(&self, url: &str) -> Result<()> {
        let refuse = |reason: String| Error::WebhookRefused { reason };
        let parsed = reqwest::Url::parse(url).map_err(|e| refuse(format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse("the scheme must be http or https".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse("the URL must not carry credentials".into()));
        }
        let host = parsed.host_str().ok_or_else(|| refuse("the URL has no host".into()))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if self.allows_host(host) {
            return Ok(());
        }
        let addresses: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            let lookup = tokio::net::lookup_host((host, port));
            tokio::time::timeout(Duration::from_millis(RESOLVE_TIMEOUT_MS), lookup)
                .await
                .map_err(|_| refuse(format!("resolving {host} timed out")))?
                .map_err(|_| refuse(format!("{host} does not resolve")))?
                .collect()
        };
        if addresses.is_empty() {
            return Err(refuse(format!("{host} does not resolve")));
        }
        for address in &addresses {
            if let Some(why) = self.refuses(address.ip()) {
                return Err(refuse(format!("{host} resolves to {why}")));
            }
        }
        Ok(())
    }
}

/// The HTTP client's resolver: resolves, then drops refused addresses (DNS rebinding guard).
#[derive(Debug)]
struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let trusted = policy.allows_host(&host);
            let allowed: Vec<SocketAddr> =
                resolved.into_iter().filter(|a| trusted || policy.refuses(a.ip()).is_none()).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no allowed address").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Installs rustls' ring provider as the process default, unless one is installed already:
/// reqwest is built without a provider of its own, so any client needs this first.
pub fn install_crypto_provider() {
    // One crypto provider for the process: ring (already compiled for async-nats' rustls).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTP client webhooks are sent with.
pub fn client(config: &WebhookConfig) -> Result<reqwest::Client> {
    install_crypto_provider();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { policy: Arc::new(TargetPolicy::from_config(config)) }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(config.request_timeout)
        .user_agent("pantheon-gateway-webhooks")
        .build()
        .map_err(|e| Error::Startup(format!("cannot build the webhook HTTP client: {e}")))
}

/// The signing key of one task's webhook: HMAC-SHA256(master, "whsec v1" ‖ task id).
fn secret_key(master: &[u8], label: &[u8], id: &[u8]) -> Result<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(master)
        .map_err(|e| Error::Internal(format!("bad master secret: {e}")))?;
    mac.update(label);
    mac.update(id);
    Ok(mac.finalize().into_bytes().into())
}

/// The task's webhook secret as Standard Webhooks writes it: `whsec_<base64>`.
pub fn secret_for(master: &[u8], task_id: TaskId) -> Result<String> {
    Ok(format!(
        "whsec_{}",
        BASE64.encode(secret_key(master, b"pantheon webhook secret v1\n", task_id.0.as_bytes())?)
    ))
}

/// A workflow run's webhook secret, as [`secret_for`] a task's (its own derivation label, so
/// a run's secret is never a task's).
pub fn run_secret_for(master: &[u8], run_id: WorkflowId) -> Result<String> {
    let key = secret_key(master, b"pantheon run webhook secret v1\n", run_id.0.as_bytes())?;
    Ok(format!("whsec_{}", BASE64.encode(key)))
}

/// The `webhook-signature` value for one message: `v1,<base64 HMAC-SHA256(id.timestamp.body)>`.
/// `secret` is the `whsec_…` string.
pub fn signature(secret: &str, webhook_id: &str, timestamp_s: i64, body: &[u8]) -> Result<String> {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| Error::Internal(format!("bad webhook secret: {e}")))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|e| Error::Internal(format!("bad webhook secret: {e}")))?;
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// The webhook body: the event's type, when it was sent, and the task or run it tells of.
#[derive(Debug, Serialize)]
struct WebhookBody<'a, T: Serialize> {
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    data: &'a T,
}

impl<'a, T: Serialize> WebhookBody<'a, T> {
    /// The encoded body of `event_type` about `data`, stamped now.
    fn encode(event_type: String, data: &'a T) -> Result<Vec<u8>> {
        let body = WebhookBody {
            event_type,
            timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            data,
        };
        serde_json::to_vec(&body).map_err(|e| Error::Internal(format!("cannot encode a webhook: {e}")))
    }
}

/// One round of attempts at one message, and how its records are made.
struct Round<'a, E> {
    url: &'a str,
    secret: &'a str,
    webhook_id: String,
    body: Vec<u8>,
    /// Attempts recorded in earlier rounds: this round's numbers continue after them.
    earlier: u32,
    /// Attempts of this round recorded already: it resumes after them.
    done: u32,
    attempted: fn(WebhookAttempted) -> E,
    dead_lettered: fn(WebhookDeadLettered) -> E,
}

/// Makes a round's attempts (up to `attempts_max`, with backoff), each recorded on the
/// trigger's stream, then the dead letter when none was accepted.
async fn attempt_round<E: DomainEvent>(
    state: &AppState,
    client: &reqwest::Client,
    trigger: &RecordedEvent,
    round: Round<'_, E>,
) -> Result<()> {
    let config = &state.config.webhooks;
    let mut last_error = String::new();
    for round_attempt in (round.done + 1)..=config.attempts_max {
        let attempt = round.earlier + round_attempt;
        let outcome = send(state, client, round.url, round.secret, &round.webhook_id, &round.body).await;
        let (status, error) = match outcome {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) => (Some(status), Some(format!("the target answered {status}"))),
            Err(error) => (None, Some(error)),
        };
        let delivered = error.is_none();
        if delivered {
            state.metrics.webhooks_delivered.inc()
        } else {
            state.metrics.webhooks_failed.inc()
        }
        let attempted = (round.attempted)(WebhookAttempted {
            webhook_id: round.webhook_id.clone(),
            attempt,
            status,
            delivered,
            error: error.clone(),
        });
        record(state, trigger, &format!("webhook attempt {round_attempt}"), attempted).await?;
        if delivered {
            return Ok(());
        }
        last_error = error.unwrap_or_default();
        if round_attempt < config.attempts_max {
            tokio::time::sleep(backoff(config, round_attempt)).await;
        }
    }
    state.metrics.webhooks_dead_lettered.inc();
    let reason =
        format!("gave up after {} attempts; last: {last_error}", round.earlier + config.attempts_max);
    let dead = (round.dead_lettered)(WebhookDeadLettered { webhook_id: round.webhook_id, reason });
    record(state, trigger, "webhook dead letter", dead).await
}

/// The delay before attempt `attempt + 1`: initial × 2^(attempt-1), capped, with ±50 % jitter.
pub fn backoff(config: &WebhookConfig, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(20);
    let base = config.backoff_initial.saturating_mul(1u32 << exponent).min(config.backoff_max);
    let unit = (rand_core::RngCore::next_u32(&mut rand_core::OsRng) as f64) / (u32::MAX as f64);
    base.mul_f64(0.5 + unit)
}

/// The longest a finished delivery waits for its batch's acknowledgement.
const ACK_BATCH_WAIT_MS: u64 = 500;

/// The final events of a workflow run: each posts the run's webhook, if it has one.
pub const RUN_WEBHOOK_EVENT_TYPES: [&str; 3] =
    ["workflow_completed", "workflow_failed", "workflow_cancelled"];

/// What a dispatcher delivers: the ends of tasks, or the ends of workflow runs. Each has a
/// subscription of its own (a JetStream consumer filters on one category).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feed {
    /// Tasks' final events and operators' redelivery requests.
    Tasks,
    /// Workflow runs' final events.
    Runs,
}

impl Feed {
    fn options(self) -> SubscribeOptions {
        let (category, types): (&str, Vec<&str>) = match self {
            Feed::Tasks => {
                ("task", WEBHOOK_EVENT_TYPES.iter().copied().chain([REDELIVERY_EVENT_TYPE]).collect())
            }
            Feed::Runs => ("workflow", RUN_WEBHOOK_EVENT_TYPES.to_vec()),
        };
        let types: Vec<events::EventType> =
            types.into_iter().filter_map(|t| events::EventType::new(t).ok()).collect();
        SubscribeOptions { filter: Filter::category(category).with_types(types), start: StartFrom::End }
    }

    fn subscription(self, state: &AppState) -> String {
        match self {
            Feed::Tasks => state.config.webhook_subscription.clone(),
            Feed::Runs => format!("{}-runs", state.config.webhook_subscription),
        }
    }
}

/// Runs the dispatcher of `feed` until `shutdown` turns true.
pub(crate) async fn run(
    state: AppState,
    client: reqwest::Client,
    feed: Feed,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = feed.subscription(&state);
    loop {
        let options = feed.options();
        let mut subscription = match state.log.subscribe(&name, options).await {
            Ok(subscription) => subscription,
            Err(error) => {
                tracing::warn!(%error, "the webhook dispatcher cannot subscribe; retrying");
                tokio::select! {
                    _ = shutdown.changed() => return,
                    () = tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_DELAY_MS)) => continue,
                }
            }
        };
        let mut deliveries: JoinSet<Position> = JoinSet::new();
        let mut in_flight: HashSet<Position> = HashSet::new();
        let in_flight_max = state.config.webhooks.in_flight_max.max(1);
        // Finished positions are acknowledged in batches, largest first, so the checkpoint
        // (a write on the log's one writer) moves about twice per batch, not once per task.
        let mut finished: Vec<Position> = Vec::new();
        let mut flush_at = tokio::time::Instant::now() + Duration::from_millis(ACK_BATCH_WAIT_MS);
        let error = loop {
            let due = tokio::time::Instant::now() >= flush_at;
            if !finished.is_empty() && (finished.len() >= ACK_BATCH_COUNT_MAX || deliveries.is_empty() || due)
            {
                flush_at = tokio::time::Instant::now() + Duration::from_millis(ACK_BATCH_WAIT_MS);
                finished.sort_unstable();
                let mut failed = None;
                for position in finished.drain(..).rev() {
                    if let Err(error) = subscription.ack(position).await {
                        failed = Some(error);
                        break;
                    }
                }
                if let Some(error) = failed {
                    break error;
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                // Finished deliveries are acknowledged at least every ACK_BATCH_WAIT_MS: with
                // slow deliveries always in flight, waiting for none to be left held up to
                // the consumer's whole allowance of unacknowledged events, and the server
                // then sent no more.
                () = tokio::time::sleep_until(flush_at), if !finished.is_empty() => {}
                Some(done) = deliveries.join_next() => {
                    let Ok(position) = done else { continue };
                    in_flight.remove(&position);
                    finished.push(position);
                }
                next = subscription.next(), if deliveries.len() < in_flight_max => {
                    let delivery = match next { Ok(d) => d, Err(error) => break error };
                    let event = delivery.event;
                    if !in_flight.insert(event.position) { continue; }
                    let (state, client) = (state.clone(), client.clone());
                    deliveries.spawn(async move {
                        let position = event.position;
                        let delivered = match feed {
                            Feed::Tasks => deliver(&state, &client, &event).await,
                            Feed::Runs => deliver_run(&state, &client, &event).await,
                        };
                        if let Err(error) = delivered {
                            tracing::error!(%error, stream = %event.stream_id, "webhook delivery failed inside the gateway");
                        }
                        position
                    });
                }
            }
        };
        tracing::warn!(%error, "the webhook dispatcher's subscription failed; reopening");
        tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_DELAY_MS)).await;
    }
}

/// Delivers the webhook of the task a final event ended, or again after an operator's
/// `webhook_redelivery_requested`; resumes after the attempts this round recorded already.
async fn deliver(state: &AppState, client: &reqwest::Client, trigger: &RecordedEvent) -> Result<()> {
    let Ok(task_id) = trigger.stream_id.entity_id().parse::<TaskId>() else { return Ok(()) };
    let log: &dyn EventLog = state.log.as_ref();
    let redelivery = trigger.event_type.as_str() == REDELIVERY_EVENT_TYPE;
    if !redelivery {
        // Most tasks ask for no webhook: the submission alone says so, without folding the task.
        let first = log.read_stream(&trigger.stream_id, 1, 1).await?;
        let wants_webhook = matches!(
            first.first().map(TaskEvent::from_recorded),
            Some(Ok(TaskEvent::Submitted(submitted))) if submitted.spec.webhook_url.is_some()
        );
        if !wants_webhook {
            return Ok(());
        }
    }
    let Some(task) = TrackedTask::load(log, task_id).await? else { return Ok(()) };
    let Some(url) = task.state.spec().and_then(|s| s.webhook_url.clone()) else { return Ok(()) };
    let history = log.read_stream(&StreamId::task(task_id), 1, usize::MAX).await?;
    // The final event the webhook tells of: the trigger itself, or the task's end.
    let final_event = if redelivery {
        match history
            .iter()
            .find(|e| events::task::TaskEventKind::of(e.event_type.as_str()).is_some_and(|k| k.is_final()))
        {
            Some(event) => event,
            None => return Ok(()),
        }
    } else {
        trigger
    };
    let webhook_id = EventId::derived(final_event.id, "webhook").to_string();
    // Attempts are numbered across rounds; this round's are those after its trigger.
    let mut earlier_attempts = 0;
    let mut done_attempts = 0;
    for recorded in &history {
        let this_round = recorded.version > trigger.version;
        match TaskEvent::from_recorded(recorded) {
            Ok(TaskEvent::WebhookAttempted(a)) if a.webhook_id == webhook_id => {
                if !this_round {
                    earlier_attempts = earlier_attempts.max(a.attempt);
                    continue;
                }
                if a.delivered {
                    return Ok(());
                }
                done_attempts = done_attempts.max(a.attempt.saturating_sub(earlier_attempts));
            }
            Ok(TaskEvent::WebhookDeadLettered(d)) if this_round && d.webhook_id == webhook_id => {
                return Ok(());
            }
            // A later request starts a round of its own.
            Ok(TaskEvent::WebhookRedeliveryRequested(_)) if this_round => return Ok(()),
            _ => {}
        }
    }
    let mut view = task.view();
    view.webhook = None;
    let event_type = format!("task.{}", final_event.event_type.as_str().trim_start_matches("task_"));
    let body = WebhookBody::encode(event_type, &view)?;
    let secret = secret_for(&state.config.webhooks.master_secret, task_id)?;
    let round = Round {
        url: &url,
        secret: &secret,
        webhook_id,
        body,
        earlier: earlier_attempts,
        done: done_attempts,
        attempted: TaskEvent::WebhookAttempted,
        dead_lettered: TaskEvent::WebhookDeadLettered,
    };
    attempt_round(state, client, trigger, round).await
}

/// Delivers the webhook of the run a final event ended: up to `attempts_max` attempts with
/// backoff, each recorded in the run's stream (`run_webhook_attempted`), then the dead letter
/// (`run_webhook_dead_lettered`); resumes after the attempts recorded already. The body is the
/// run as `GET /runs/{id}` shows it, signed with the run's secret (given when it started).
async fn deliver_run(state: &AppState, client: &reqwest::Client, trigger: &RecordedEvent) -> Result<()> {
    let Ok(run_id) = trigger.stream_id.entity_id().parse::<WorkflowId>() else { return Ok(()) };
    let run = workflow::load_run(state.log.as_ref(), run_id).await?;
    let Some(url) = run.state.started.as_ref().and_then(|s| s.webhook_url.clone()) else { return Ok(()) };
    let webhook_id = EventId::derived(trigger.id, "webhook").to_string();
    let mut done_attempts = 0;
    for recorded in &run.events {
        match WorkflowEvent::from_recorded(recorded) {
            Ok(WorkflowEvent::WebhookAttempted(a)) if a.webhook_id == webhook_id => {
                if a.delivered {
                    return Ok(());
                }
                done_attempts = done_attempts.max(a.attempt);
            }
            Ok(WorkflowEvent::WebhookDeadLettered(d)) if d.webhook_id == webhook_id => return Ok(()),
            _ => {}
        }
    }
    let Some(view) = crate::routes::workflows::run_view(&run) else { return Ok(()) };
    let event_type = format!("run.{}", trigger.event_type.as_str().trim_start_matches("workflow_"));
    let body = WebhookBody::encode(event_type, &view)?;
    let secret = run_secret_for(&state.config.webhooks.master_secret, run_id)?;
    let round = Round {
        url: &url,
        secret: &secret,
        webhook_id,
        body,
        earlier: 0,
        done: done_attempts,
        attempted: WorkflowEvent::WebhookAttempted,
        dead_lettered: WorkflowEvent::WebhookDeadLettered,
    };
    attempt_round(state, client, trigger, round).await
}

/// Appends a webhook event with an id derived from the round's trigger (the final event, or a
/// redelivery request) and `purpose`, to the trigger's stream.
async fn record(
    state: &AppState,
    trigger: &RecordedEvent,
    purpose: &str,
    event: impl DomainEvent,
) -> Result<()> {
    let mut metadata = Metadata::now("gateway");
    metadata.causation_id = Some(trigger.id);
    metadata.correlation_id = trigger.metadata.correlation_id;
    let new_event = event.to_new_event(EventId::derived(trigger.id, purpose), metadata)?;
    state.log.append(&trigger.stream_id, ExpectedVersion::Any, vec![new_event]).await?;
    Ok(())
}

/// One attempt: the HTTP status, or why there was none.
async fn send(
    state: &AppState,
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    webhook_id: &str,
    body: &[u8],
) -> std::result::Result<u16, String> {
    state.targets.check(url).await.map_err(|e| truncate(e.to_string()))?;
    let timestamp = events::now_ms() / 1000;
    let signature = signature(secret, webhook_id, timestamp, body).map_err(|e| e.to_string())?;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| truncate(format!("{e}")))?;
    Ok(response.status().as_u16())
}

fn truncate(mut text: String) -> String {
    if text.len() > ATTEMPT_ERROR_BYTES_MAX {
        let mut end = ATTEMPT_ERROR_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let sig = signature(secret, id, 1614265330, body).unwrap_or_default();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn private_targets_are_refused_unless_allowed() {
        let strict = TargetPolicy::default();
        for ip in [
            // What the guard let through before: IPv4-compatible loopback, site-local,
            // benchmarking, IETF assignments, reserved, and NAT64 of loopback.
            "::7f00:1",
            "fec0::1",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.8",
            "240.0.0.1",
            "255.255.255.255",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "2001::1",
            "192.0.2.1",
            "203.0.113.9",
            "224.0.0.1",
            "ff02::1",
            "::",
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "fe80::1",
            "fd00::1",
            "100.64.0.1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            assert!(strict.refuses(ip).is_some(), "{ip} should be refused");
        }
        assert!(
            strict
                .refuses("93.184.216.34".parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)))
                .is_none()
        );
        // Public addresses, including a public one behind NAT64.
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "64:ff9b::5db8:d822", "8.8.8.8"] {
            let ip: IpAddr = ip.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            assert!(strict.refuses(ip).is_none(), "{ip} should be allowed: {:?}", strict.refuses(ip));
        }
        let loopback =
            TargetPolicy { networks: vec!["127.0.0.0/8".parse().unwrap()], ..TargetPolicy::default() };
        assert!(loopback.refuses(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)).is_none());
        assert!(
            loopback.refuses("::ffff:127.0.0.1".parse().unwrap()).is_none(),
            "the mapped form is in the v4 network"
        );
        assert!(
            loopback
                .refuses("10.0.0.1".parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)))
                .is_some()
        );
    }

    #[test]
    fn the_allow_list_names_hosts_and_networks() {
        let mut config = WebhookConfig::new(b"secret".to_vec());
        config
            .allow(&["hooks.internal".into(), "*.corp.example".into(), "10.1.0.0/16".into(), "::1".into()])
            .unwrap();
        let policy = TargetPolicy::from_config(&config);
        assert!(policy.allows_host("hooks.internal") && policy.allows_host("HOOKS.internal."));
        assert!(policy.allows_host("a.b.corp.example") && !policy.allows_host("corp.example"));
        assert!(!policy.allows_host("evilcorp.example") && !policy.allows_host("hooks.internal.evil"));
        assert!(policy.refuses("10.1.200.3".parse().unwrap()).is_none());
        assert!(policy.refuses("10.2.0.1".parse().unwrap()).is_some());
        assert!(policy.refuses("::1".parse().unwrap()).is_none());
        for bad in ["10.0.0.0/33", "::/129", "not a host!", "", "a..b"] {
            assert!(WebhookConfig::new(b"s".to_vec()).allow(&[bad.into()]).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked() {
        let strict = TargetPolicy::default();
        for url in [
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "not a url",
            "http://127.0.0.1:9/",
            "http://[::1]/",
            "http://localhost/",
        ] {
            assert!(strict.check(url).await.is_err(), "{url} should be refused");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = WebhookConfig::new(vec![1u8; 32]);
        let first = backoff(&config, 1);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_millis(1_500));
        let late = backoff(&config, 30);
        assert!(late <= Duration::from_secs(90));
    }
}
