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
//! # SSRF guard
//! Targets must be `http`/`https` URLs without credentials whose every resolved address is
//! public: loopback, private, link-local, CGNAT, unspecified, multicast and broadcast addresses
//! are refused unless the configuration allows them. The check runs at submission and again
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
use events::{
    DomainEvent, EventId, EventLog, ExpectedVersion, Filter, Metadata, Position, RecordedEvent, StartFrom,
    StreamId, SubscribeOptions, TaskEvent, TaskId,
};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::WebhookConfig;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::task::{TaskView, TrackedTask};

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

/// Which webhook targets are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback addresses.
    pub allow_loopback: bool,
    /// Allow private, link-local and CGNAT addresses.
    pub allow_private: bool,
}

impl TargetPolicy {
    /// The policy a configuration sets.
    pub fn from_config(config: &WebhookConfig) -> Self {
        Self { allow_loopback: config.allow_loopback, allow_private: config.allow_private }
    }

    /// Why `ip` is refused, if it is.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return (!self.allow_loopback).then_some("a loopback address");
        }
        if ip.is_unspecified() || ip.is_multicast() {
            return Some("an unspecified or multicast address");
        }
        let private = match ip {
            IpAddr::V4(v4) => {
                let [a, b, ..] = v4.octets();
                v4.is_private()
                    || v4.is_link_local()
                    || v4.is_broadcast()
                    || (a == 100 && (64..128).contains(&b))
                    || a == 0
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        };
        (private && !self.allow_private).then_some("a private or link-local address")
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
    policy: TargetPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                resolved.into_iter().filter(|a| policy.refuses(a.ip()).is_none()).collect();
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
        .dns_resolver(Arc::new(GuardedResolver { policy: TargetPolicy::from_config(config) }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(config.request_timeout)
        .user_agent("pantheon-gateway-webhooks")
        .build()
        .map_err(|e| Error::Startup(format!("cannot build the webhook HTTP client: {e}")))
}

/// The signing key of one task's webhook: HMAC-SHA256(master, "whsec v1" ‖ task id).
fn secret_key(master: &[u8], task_id: TaskId) -> Result<[u8; 32]> {
    let mut mac = Hmac::<Sha256>::new_from_slice(master)
        .map_err(|e| Error::Internal(format!("bad master secret: {e}")))?;
    mac.update(b"pantheon webhook secret v1\n");
    mac.update(task_id.0.as_bytes());
    Ok(mac.finalize().into_bytes().into())
}

/// The task's webhook secret as Standard Webhooks writes it: `whsec_<base64>`.
pub fn secret_for(master: &[u8], task_id: TaskId) -> Result<String> {
    Ok(format!("whsec_{}", BASE64.encode(secret_key(master, task_id)?)))
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

/// The webhook body.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    #[serde(rename = "type")]
    event_type: String,
    timestamp: String,
    data: &'a TaskView,
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

/// Runs the dispatcher until `shutdown` turns true.
pub(crate) async fn run(state: AppState, client: reqwest::Client, mut shutdown: watch::Receiver<bool>) {
    let types: Vec<events::EventType> =
        WEBHOOK_EVENT_TYPES.iter().filter_map(|t| events::EventType::new(*t).ok()).collect();
    loop {
        let options = SubscribeOptions {
            filter: Filter::category("task").with_types(types.clone()),
            start: StartFrom::End,
        };
        let mut subscription = match state.log.subscribe(&state.config.webhook_subscription, options).await {
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
                        if let Err(error) = deliver(&state, &client, &event).await {
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

/// Delivers the webhook of the task a final event ended, resuming after recorded attempts.
async fn deliver(state: &AppState, client: &reqwest::Client, final_event: &RecordedEvent) -> Result<()> {
    let Ok(task_id) = final_event.stream_id.entity_id().parse::<TaskId>() else { return Ok(()) };
    let log: &dyn EventLog = state.log.as_ref();
    // Most tasks ask for no webhook: the submission alone says so, without folding the task.
    let first = log.read_stream(&final_event.stream_id, 1, 1).await?;
    let wants_webhook = matches!(
        first.first().map(TaskEvent::from_recorded),
        Some(Ok(TaskEvent::Submitted(submitted))) if submitted.spec.webhook_url.is_some()
    );
    if !wants_webhook {
        return Ok(());
    }
    let Some(task) = TrackedTask::load(log, task_id).await? else { return Ok(()) };
    let Some(url) = task.state.spec().and_then(|s| s.webhook_url.clone()) else { return Ok(()) };
    let webhook_id = EventId::derived(final_event.id, "webhook").to_string();
    let history = log.read_stream(&StreamId::task(task_id), final_event.version + 1, usize::MAX).await?;
    let mut done_attempts = 0;
    for recorded in &history {
        match TaskEvent::from_recorded(recorded) {
            Ok(TaskEvent::WebhookAttempted(a)) if a.webhook_id == webhook_id => {
                if a.delivered {
                    return Ok(());
                }
                done_attempts = done_attempts.max(a.attempt);
            }
            Ok(TaskEvent::WebhookDeadLettered(d)) if d.webhook_id == webhook_id => return Ok(()),
            _ => {}
        }
    }
    let mut view = task.view();
    view.webhook = None;
    let event_type = format!("task.{}", final_event.event_type.as_str().trim_start_matches("task_"));
    let body = serde_json::to_vec(&WebhookBody {
        event_type,
        timestamp: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        data: &view,
    })
    .map_err(|e| Error::Internal(format!("cannot encode a webhook: {e}")))?;
    let secret = secret_for(&state.config.webhooks.master_secret, task_id)?;
    let config = &state.config.webhooks;
    let mut last_error = String::new();
    for attempt in (done_attempts + 1)..=config.attempts_max {
        let outcome = send(state, client, &url, &secret, &webhook_id, &body).await;
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
        let attempted = TaskEvent::WebhookAttempted(WebhookAttempted {
            webhook_id: webhook_id.clone(),
            attempt,
            status,
            delivered,
            error: error.clone(),
        });
        record(state, final_event, &format!("webhook attempt {attempt}"), attempted).await?;
        if delivered {
            return Ok(());
        }
        last_error = error.unwrap_or_default();
        if attempt < config.attempts_max {
            tokio::time::sleep(backoff(config, attempt)).await;
        }
    }
    state.metrics.webhooks_dead_lettered.inc();
    let reason = format!("gave up after {} attempts; last: {last_error}", config.attempts_max);
    let dead = TaskEvent::WebhookDeadLettered(WebhookDeadLettered { webhook_id, reason });
    record(state, final_event, "webhook dead letter", dead).await
}

/// Appends a webhook event with an id derived from the final event and `purpose`.
async fn record(
    state: &AppState,
    final_event: &RecordedEvent,
    purpose: &str,
    event: TaskEvent,
) -> Result<()> {
    let mut metadata = Metadata::now("gateway");
    metadata.causation_id = Some(final_event.id);
    metadata.correlation_id = final_event.metadata.correlation_id;
    let new_event = event.to_new_event(EventId::derived(final_event.id, purpose), metadata)?;
    state.log.append(&final_event.stream_id, ExpectedVersion::Any, vec![new_event]).await?;
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
        let strict = TargetPolicy { allow_loopback: false, allow_private: false };
        for ip in [
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
        let loopback = TargetPolicy { allow_loopback: true, allow_private: false };
        assert!(loopback.refuses(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)).is_none());
        assert!(
            loopback
                .refuses("10.0.0.1".parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)))
                .is_some()
        );
    }

    #[tokio::test]
    async fn urls_are_checked() {
        let strict = TargetPolicy { allow_loopback: false, allow_private: false };
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
