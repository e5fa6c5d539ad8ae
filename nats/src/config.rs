//! Typed configuration of the JetStream log: one struct, every field documented with its
//! default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// The most events a subscription fetches from the server in one pull request. Bounds the
/// client-side buffer; a nack bounces at most this many buffered events back to the server.
pub const FETCH_BATCH_COUNT_MAX: usize = 1_000;

/// The most events `read_all` reserves memory for up front (a larger limit grows as it reads).
pub const REPLAY_BATCH_COUNT_MAX: usize = 10_000;

/// How the JetStream log is set up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct NatsLogConfig {
    /// # Server URL(s)
    /// Comma-separated. Default: `nats://127.0.0.1:4222`.
    pub url: String,
    /// # Event stream name
    /// The JetStream stream holding every event (`pantheon.*.*`). Default: `PANTHEON`.
    pub stream_name: String,
    /// # Dead-letter stream name
    /// The JetStream stream holding refused events (`pantheon-dead.>`). Default: `PANTHEON_DEAD`.
    pub dead_letter_stream_name: String,
    /// # Replicas
    /// 1 on a single server; 3 on a cluster (a publish is then acknowledged once a quorum holds
    /// it). Default: 1.
    pub replicas: usize,
    /// # Duplicate window
    /// How long JetStream remembers event ids (`Nats-Msg-Id`) to drop a republished event. Every
    /// id in the window costs server memory. Default: 10 minutes.
    #[serde(with = "humantime_duration")]
    pub duplicate_window: Duration,
    /// # Retention by age
    /// Events older than this are removed from JetStream (the archive keeps them). Zero keeps
    /// them forever. Default: 0.
    #[serde(with = "humantime_duration")]
    pub max_age: Duration,
    /// # Retention by count
    /// At most this many events are kept in JetStream, the oldest removed first; -1 for no
    /// limit. Default: -1.
    pub max_messages: i64,
    /// # Manage retention
    /// Whether `max_age` and `max_messages` are this process's to enforce on an existing
    /// stream. When false, they apply only when the stream is created, and an existing
    /// stream's retention is accepted as an operator set it (a client such as `pantheon
    /// submit` never refuses a stream over its retention). When true, a differing retention
    /// is refused, or applied with `update_existing`. Default: false.
    pub manage_retention: bool,
    /// # Manage replicas
    /// Whether `replicas` is this process's to enforce on an existing stream. When false, it
    /// applies only when the stream is created, and an existing stream's replicas are
    /// accepted as an operator set them (a command such as `pantheon archive check` run
    /// against a three-replica cluster never refuses it). Default: false.
    pub manage_replicas: bool,
    /// # Overwrite a differing stream or consumer
    /// When an existing stream or consumer differs from this configuration in a field that can
    /// be changed, update it instead of refusing to start. Default: false (refuse, and say
    /// which fields differ).
    pub update_existing: bool,
    /// # Ack wait
    /// How long a delivered event may stay unacknowledged before it is delivered again; also
    /// the first redelivery delay. The phases' group reports the events it holds in progress
    /// every third of it, so this only times the events of a process that died. Default: 10
    /// seconds.
    #[serde(with = "humantime_duration")]
    pub ack_wait: Duration,
    /// # Redelivery backoff
    /// Delays before the 2nd, 3rd, … delivery of an event that was not acknowledged in time.
    /// Must be shorter than `max-deliver`. Default: 10 s, 10 s, 20 s, 40 s, 1 min, 2 min (a task's
    /// default deadline is 30 s: a longer wait after a crash would outlive it).
    #[serde(with = "humantime_durations")]
    pub redelivery_backoff: Vec<Duration>,
    /// # Deliveries before the dead letter
    /// An event nacked on its last delivery goes to the dead-letter stream. Default: 8.
    pub max_deliver: i64,
    /// # Unacknowledged events per subscription
    /// The server stops delivering to a subscription once this many are outstanding.
    /// Default: 1,000.
    pub max_ack_pending: i64,
    /// # Fetch batch
    /// Events pulled per request by a subscription (at most [`FETCH_BATCH_COUNT_MAX`]).
    /// Default: 100.
    pub fetch_batch_count: usize,
    /// # Newest schema version understood
    /// Events with a newer schema version are dead-lettered by subscriptions rather than
    /// handed to code that cannot read them. `None` accepts every version. Default: none.
    pub schema_version_max: Option<u32>,
    /// # Payloads must be MessagePack
    /// Subscriptions dead-letter events whose payload is not exactly one well-formed MessagePack
    /// value (garbage from a foreign producer) instead of handing them out. Default: true.
    pub require_msgpack_payload: bool,
    /// # Request timeout
    /// How long one JetStream request or publish acknowledgement may take. Default: 5 seconds.
    #[serde(with = "humantime_duration")]
    pub request_timeout: Duration,
}

impl Default for NatsLogConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream_name: "PANTHEON".into(),
            dead_letter_stream_name: "PANTHEON_DEAD".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(10 * 60),
            max_age: Duration::ZERO,
            max_messages: -1,
            manage_retention: false,
            manage_replicas: false,
            update_existing: false,
            ack_wait: Duration::from_secs(10),
            redelivery_backoff: [10, 10, 20, 40, 60, 120].into_iter().map(Duration::from_secs).collect(),
            max_deliver: 8,
            max_ack_pending: 1_000,
            fetch_batch_count: 100,
            schema_version_max: None,
            require_msgpack_payload: true,
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl NatsLogConfig {
    /// The default configuration for the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Checks the fields against each other and the named limits.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::new(ErrorKind::InvalidConfig, message));
        if self.fetch_batch_count == 0 || self.fetch_batch_count > FETCH_BATCH_COUNT_MAX {
            return invalid(format!("fetch-batch-count must be 1 to {FETCH_BATCH_COUNT_MAX}"));
        }
        if self.max_deliver < 1 {
            return invalid("max-deliver must be at least 1".into());
        }
        if !self.redelivery_backoff.is_empty()
            && i64::try_from(self.redelivery_backoff.len()).unwrap_or(i64::MAX) >= self.max_deliver
        {
            return invalid("redelivery-backoff must have fewer entries than max-deliver".into());
        }
        if self.ack_wait.is_zero() || self.request_timeout.is_zero() {
            return invalid("ack-wait and request-timeout must be positive".into());
        }
        if self.duplicate_window.is_zero() {
            return invalid("duplicate-window must be positive: idempotent appends rely on it".into());
        }
        if self.replicas == 0 || self.replicas > 5 {
            return invalid("replicas must be 1 to 5".into());
        }
        for name in [&self.stream_name, &self.dead_letter_stream_name] {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return invalid(format!("stream name {name:?} must be letters, digits, '_' or '-'"));
            }
        }
        Ok(())
    }
}

mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod humantime_durations {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(ds: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ds.iter().map(|d| format!("{}ms", d.as_millis())))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| humantime::parse_duration(text).map_err(serde::de::Error::custom))
            .collect()
    }
}
