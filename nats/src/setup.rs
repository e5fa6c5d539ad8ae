//! Idempotent provisioning of the JetStream streams and durable consumers: created when
//! missing, left alone when equal, refused (or updated, when the configuration allows it)
//! when different. A second start changes nothing.

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Context};

use crate::config::NatsLogConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::layout::{DEAD_LETTER_PREFIX, EVENT_SUBJECTS};

/// The largest message the event stream accepts: the payload limit plus room for headers.
pub const MESSAGE_BYTES_MAX: i32 = (events::EVENT_PAYLOAD_BYTES_MAX + 16 * 1024) as i32;

/// The event stream's configuration.
/// `atomic`: allow atomic batch publishing (nats-server 2.12+; an older server is not told).
pub(crate) fn event_stream_config(config: &NatsLogConfig, atomic: bool) -> stream::Config {
    stream::Config {
        name: config.stream_name.clone(),
        description: Some("Pantheon events: pantheon.<category>.<entity_id>".into()),
        subjects: vec![EVENT_SUBJECTS.into()],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age,
        max_messages: config.max_messages,
        max_message_size: MESSAGE_BYTES_MAX,
        allow_direct: true,
        deny_delete: true,
        allow_atomic_publish: atomic,
        ..Default::default()
    }
}

/// The dead-letter stream's configuration.
pub(crate) fn dead_letter_stream_config(config: &NatsLogConfig) -> stream::Config {
    stream::Config {
        name: config.dead_letter_stream_name.clone(),
        description: Some("Pantheon dead letters: pantheon-dead.<subscription>".into()),
        subjects: vec![format!("{DEAD_LETTER_PREFIX}.>")],
        storage: StorageType::File,
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_message_size: MESSAGE_BYTES_MAX * 2,
        max_messages: -1,
        allow_direct: true,
        ..Default::default()
    }
}

/// The fields of a stream configuration this crate manages that differ between `want` and
/// `have`, with whether each can be changed on an existing stream.
fn stream_differences(want: &stream::Config, have: &stream::Config) -> Vec<(&'static str, bool)> {
    let mut differences = Vec::new();
    let mut check = |name, differs: bool, mutable| {
        if differs {
            differences.push((name, mutable));
        }
    };
    check("subjects", want.subjects != have.subjects, true);
    check("storage", want.storage != have.storage, false);
    check("retention", want.retention != have.retention, false);
    check("discard", want.discard != have.discard, true);
    check("num_replicas", want.num_replicas != have.num_replicas, true);
    check("duplicate_window", want.duplicate_window != have.duplicate_window, true);
    check("max_age", want.max_age != have.max_age, true);
    check("max_messages", want.max_messages != have.max_messages, true);
    check("max_message_size", want.max_message_size != have.max_message_size, true);
    check("allow_direct", want.allow_direct != have.allow_direct, true);
    check("deny_delete", want.deny_delete != have.deny_delete, false);
    differences
}

/// Creates the stream `want` describes, or checks that the existing one matches (its
/// retention only when `config.manage_retention`).
pub(crate) async fn ensure_stream(
    js: &Context,
    mut want: stream::Config,
    config: &NatsLogConfig,
) -> Result<stream::Stream> {
    let update_existing = config.update_existing;
    let request =
        |e: &dyn std::fmt::Display| Error::new(ErrorKind::Request, format!("stream {}: {e}", want.name));
    match js.get_stream(&want.name).await {
        Ok(mut existing) => {
            let have = existing.info().await.map_err(|e| request(&e))?.config.clone();
            if !config.manage_retention {
                want.max_age = have.max_age;
                want.max_messages = have.max_messages;
            }
            if !config.manage_replicas {
                want.num_replicas = have.num_replicas;
            }
            let differences = stream_differences(&want, &have);
            if differences.is_empty() {
                return Ok(existing);
            }
            let names: Vec<_> = differences.iter().map(|(name, _)| *name).collect();
            if !update_existing || differences.iter().any(|(_, mutable)| !mutable) {
                return Err(Error::new(
                    ErrorKind::IncompatibleStream,
                    format!(
                        "stream {} exists with different {}; {}",
                        want.name,
                        names.join(", "),
                        if update_existing {
                            "some of these cannot be changed on an existing stream"
                        } else {
                            "set update-existing to apply the configuration"
                        }
                    ),
                ));
            }
            tracing::warn!(stream = %want.name, fields = ?names, "updating the existing stream");
            js.update_stream(&want).await.map_err(|e| request(&e))?;
            js.get_stream(&want.name).await.map_err(|e| request(&e))
        }
        Err(e)
            if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            js.create_stream(want.clone()).await.map_err(|e| request(&e))
        }
        Err(e) => Err(request(&e)),
    }
}

/// The durable consumer of a subscription: explicit acks, ack wait, bounded deliveries with
/// backoff, bounded outstanding acks.
pub(crate) fn consumer_config(
    config: &NatsLogConfig,
    name: &str,
    filter_subject: String,
    deliver_policy: DeliverPolicy,
) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        description: Some("Pantheon subscription".into()),
        filter_subject,
        deliver_policy,
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        max_deliver: config.max_deliver,
        backoff: config.redelivery_backoff.clone(),
        max_ack_pending: config.max_ack_pending,
        max_batch: i64::try_from(crate::config::FETCH_BATCH_COUNT_MAX).unwrap_or(i64::MAX),
        ..Default::default()
    }
}

/// Opens the durable consumer `want` describes: created when missing; when it exists, its
/// filter must match (another filter under the same name is refused), the start is kept (a
/// subscription resumes where it was), and the delivery settings are updated to `want`'s.
pub(crate) async fn ensure_consumer(stream: &stream::Stream, want: pull::Config) -> Result<PullConsumer> {
    let name = want.durable_name.clone().unwrap_or_default();
    let request = |e: &dyn std::fmt::Display| Error::new(ErrorKind::Request, format!("consumer {name}: {e}"));
    match stream.consumer_info(&name).await {
        Ok(info) => {
            let have = info.config;
            if have.filter_subject != want.filter_subject {
                return Err(Error::new(
                    ErrorKind::IncompatibleConsumer,
                    format!(
                        "subscription {name} exists with filter {:?}, not {:?}; use another name",
                        have.filter_subject, want.filter_subject
                    ),
                ));
            }
            let same = have.ack_wait == want.ack_wait
                && have.max_deliver == want.max_deliver
                && have.backoff == want.backoff
                && have.max_ack_pending == want.max_ack_pending
                && have.max_batch == want.max_batch
                && have.ack_policy == want.ack_policy;
            if same {
                return stream.get_consumer(&name).await.map_err(|e| request(&e));
            }
            let updated = pull::Config {
                deliver_policy: have.deliver_policy,
                description: have.description.clone(),
                ..want
            };
            tracing::info!(consumer = %name, "updating the subscription's delivery settings");
            stream.update_consumer(updated).await.map_err(|e| request(&e))
        }
        Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => {
            stream.create_consumer(want).await.map_err(|e| request(&e))
        }
        Err(e) => Err(request(&e)),
    }
}
