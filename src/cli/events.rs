//! `pantheon events`: the raw log as JSON — append, read a stream or everything, tail live.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use events::{
    EventId, EventType, ExpectedVersion, Filter, Metadata, NewEvent, RecordedEvent, StartFrom, StreamId,
    SubscribeOptions, codec,
};
use serde::Deserialize;

use crate::Cli;

/// `pantheon events`: the backend and the command.
#[derive(Debug, clap::Args)]
pub(crate) struct EventsArgs {
    #[command(flatten)]
    pub(crate) backend: super::up::BackendArgs,
    #[command(subcommand)]
    pub(crate) command: EventsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Append events to a stream. Reads JSON from stdin: one object or an array of objects,
    /// each `{"type": "...", "data": {...}}` (optional: `id`, `schema_version`, `emitter`).
    Append {
        /// The stream, `<category>-<id>` (e.g. `order-42`).
        stream: StreamId,
        /// Optimistic concurrency: `any`, `none` (the stream must not exist) or a version number.
        #[arg(long, default_value = "any")]
        expect: String,
    },
    /// Read events of one stream, or of all streams with `--all`, as JSON lines.
    Read {
        /// The stream to read (omit with `--all`).
        stream: Option<StreamId>,
        /// Read every stream in position order.
        #[arg(long, conflicts_with = "stream")]
        all: bool,
        /// The first version (for a stream) or position (with `--all`) to read.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// The most events to print.
        #[arg(long, default_value_t = 1_000)]
        limit: usize,
    },
    /// Print events as they are appended, as JSON lines, until interrupted.
    Tail {
        /// Only streams of these categories (repeatable), e.g. `task`.
        #[arg(long = "category")]
        categories: Vec<String>,
        /// Only these event types (repeatable), e.g. `task_completed`.
        #[arg(long = "type")]
        event_types: Vec<EventType>,
        /// Start from the beginning of the log instead of only new events.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
}

/// One event as a producer writes it in JSON. What `events read` prints is accepted too, so a
/// read can be appended elsewhere: its `stream`, `version`, `position` and `time` are the old
/// log's and are ignored (the target stream and the log give new ones); its `id`, `emitter`,
/// `causation_id` and `correlation_id` are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    #[serde(rename = "type")]
    event_type: EventType,
    #[serde(default)]
    data: serde_json::Value,
    #[serde(default)]
    id: Option<EventId>,
    #[serde(default = "one")]
    schema_version: u32,
    #[serde(default)]
    emitter: Option<String>,
    #[serde(default)]
    causation_id: Option<EventId>,
    #[serde(default)]
    correlation_id: Option<EventId>,
    // Printed by `events read`, ignored here.
    #[serde(default, rename = "stream")]
    _stream: serde::de::IgnoredAny,
    #[serde(default, rename = "version")]
    _version: serde::de::IgnoredAny,
    #[serde(default, rename = "position")]
    _position: serde::de::IgnoredAny,
    #[serde(default, rename = "time")]
    _time: serde::de::IgnoredAny,
}

fn one() -> u32 {
    1
}

/// Parses stdin: one event object, an array of them, or JSON lines (one object per line, as
/// `events read` prints); errors name the event and the field.
fn parse_batch(text: &str) -> anyhow::Result<Vec<JsonEvent>> {
    const SHAPE: &str =
        "stdin must hold JSON events {\"type\": ..., \"data\": ...}: one, an array of them, or one per line";
    let mut values = Vec::new();
    for (i, value) in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>().enumerate() {
        values.push(value.with_context(|| format!("{SHAPE}; value #{i} of the input is not JSON"))?);
    }
    let items = match values.len() {
        0 => bail!("{SHAPE}; it is empty"),
        1 if values[0].is_array() => match values.pop() {
            Some(serde_json::Value::Array(items)) => items,
            _ => bail!("{SHAPE}"),
        },
        _ => values,
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            if !item.is_object() {
                bail!("event #{i} of the input is not an object; {SHAPE}");
            }
            serde_json::from_value(item).with_context(|| format!("event #{i} of the input"))
        })
        .collect()
}

fn parse_expected(text: &str) -> anyhow::Result<ExpectedVersion> {
    match text {
        "any" => Ok(ExpectedVersion::Any),
        "none" | "no-stream" => Ok(ExpectedVersion::NoStream),
        n => match n.parse::<u64>() {
            Ok(0) => Ok(ExpectedVersion::NoStream),
            Ok(v) => Ok(ExpectedVersion::Exact(v)),
            Err(_) => bail!("--expect takes `any`, `none` or a version number, not {n:?}"),
        },
    }
}

/// Encodes a JSON event's data: typed events of the known categories are checked against
/// their schema (so a malformed `task_submitted` is refused here), other categories are free-form.
fn encode(stream: &StreamId, event: JsonEvent) -> anyhow::Result<NewEvent> {
    use events::DomainEvent;
    let payload = match stream.category() {
        "task" => typed::<events::TaskEvent>(&event)?,
        "agent" => typed::<events::AgentEvent>(&event)?,
        "workflow" => typed::<events::WorkflowEvent>(&event)?,
        "workflowdef" => typed::<events::DefinitionEvent>(&event)?,
        _ => codec::to_msgpack(&event.data)?,
    };
    fn typed<E: DomainEvent>(event: &JsonEvent) -> anyhow::Result<Vec<u8>> {
        let decoded = E::from_json(&event.event_type, event.data.clone())
            .with_context(|| format!("the data does not fit a {} event", event.event_type))?;
        if event.schema_version != decoded.schema_version() {
            bail!(
                "{} is at schema version {}; write that version (older ones are upcast only on read)",
                event.event_type,
                decoded.schema_version()
            );
        }
        Ok(decoded.to_payload()?)
    }
    Ok(NewEvent {
        id: event.id.unwrap_or_default(),
        event_type: event.event_type,
        schema_version: event.schema_version,
        payload,
        metadata: Metadata {
            causation_id: event.causation_id,
            correlation_id: event.correlation_id,
            ..Metadata::now(event.emitter.unwrap_or_else(|| "cli".into()))
        },
    })
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
const RFC3339_MS_MAX: i64 = 253_402_300_799_999;

/// An event's time (ms since the epoch) in RFC 3339, or the number of milliseconds itself
/// when RFC 3339 cannot write it (before 1970 or after 9999: a producer's clock or data).
pub(crate) fn format_time(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(unsigned) if ms <= RFC3339_MS_MAX => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(unsigned),
        )
        .to_string(),
        _ => format!("{ms} ms since the epoch"),
    }
}

/// An event as printed for humans and scripts.
pub(crate) fn to_json(event: &RecordedEvent) -> serde_json::Value {
    let data = codec::msgpack_to_json(&event.payload)
        .unwrap_or_else(|e| serde_json::json!({ "undecodable_payload": e.to_string() }));
    serde_json::json!({
        "stream": event.stream_id,
        "version": event.version,
        "position": event.position,
        "id": event.id,
        "type": event.event_type,
        "schema_version": event.schema_version,
        "time": format_time(event.metadata.occurred_at_ms),
        "emitter": event.metadata.emitter,
        "causation_id": event.metadata.causation_id,
        "correlation_id": event.metadata.correlation_id,
        "data": data,
    })
}

pub(crate) async fn run(cli: &Cli, args: &EventsArgs) -> anyhow::Result<()> {
    // On NATS with `--database`, reads fall back to the archive for what retention dropped.
    let backend = super::up::open_backend(cli, &args.backend).await?;
    let log = backend.log;
    let command = &args.command;
    let mut out = std::io::stdout().lock();
    match command {
        EventsCommand::Append { stream, expect } => {
            let expected = parse_expected(expect)?;
            if std::io::stdin().is_terminal() {
                eprintln!("reading JSON events from stdin (finish with Ctrl-D)…");
            }
            let mut text = String::new();
            for line in std::io::stdin().lock().lines() {
                text.push_str(&line.context("cannot read stdin")?);
                text.push('\n');
            }
            let batch = parse_batch(&text)?;
            let events = batch.into_iter().map(|e| encode(stream, e)).collect::<anyhow::Result<Vec<_>>>()?;
            let outcome = log.append(stream, expected, events).await?;
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "stream": stream,
                    "first_version": outcome.first_version,
                    "last_version": outcome.last_version,
                    "last_position": outcome.last_position,
                    "duplicate": outcome.duplicate,
                })
            )?;
        }
        EventsCommand::Read { stream, all, from, limit } => {
            if stream.is_none() && !all {
                bail!("name a stream to read, or pass --all to read every stream");
            }
            if let Some(stream) = stream
                && log.stream_version(stream).await? == 0
            {
                bail!("stream {stream} has no events (it was never appended to)");
            }
            let mut next = *from;
            let mut left = *limit;
            while left > 0 {
                let page = match stream {
                    Some(stream) => log.read_stream(stream, next, left).await?,
                    None => log.read_all(next, left).await?,
                };
                let Some(last) = page.last() else { break };
                next = if *all { last.position + 1 } else { last.version + 1 };
                left = left.saturating_sub(page.len());
                for event in &page {
                    writeln!(out, "{}", to_json(event))?;
                }
            }
        }
        EventsCommand::Tail { categories, event_types, from_start, count } => {
            let name = format!("cli-tail-{}", EventId::new());
            let options = SubscribeOptions {
                filter: Filter { categories: categories.clone(), event_types: event_types.clone() },
                start: if *from_start { StartFrom::Beginning } else { StartFrom::End },
            };
            let mut subscription = log.subscribe(&name, options).await?;
            // The SQL log wakes subscribers for appends of this process only: look for other
            // processes' appends often (its `next` is cancel-safe).
            let poll = backend.nats.is_none().then_some(Duration::from_millis(super::tail::TAIL_POLL_MS));
            let tailed = async {
                let mut seen = 0;
                while count.is_none_or(|c| seen < c) {
                    let delivery = tokio::select! {
                        delivery = super::tail::next_polled(subscription.as_mut(), poll) => delivery?,
                        _ = tokio::signal::ctrl_c() => break,
                    };
                    writeln!(out, "{}", to_json(&delivery.event))?;
                    out.flush()?;
                    subscription.ack(delivery.event.position).await?;
                    seen += 1;
                }
                anyhow::Ok(())
            }
            .await;
            drop(subscription);
            super::tail::delete_subscription(log.as_ref(), &name).await;
            tailed?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_outside_rfc3339_print_as_milliseconds() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(RFC3339_MS_MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_time(RFC3339_MS_MAX + 1), "253402300800000 ms since the epoch");
        assert_eq!(format_time(i64::MAX), format!("{} ms since the epoch", i64::MAX));
        assert_eq!(format_time(-1), "-1 ms since the epoch");
    }

    #[test]
    fn input_shapes() {
        assert_eq!(parse_batch(r#"{"type":"a"}"#).map(|b| b.len()).ok(), Some(1));
        assert_eq!(parse_batch(r#"[{"type":"a"},{"type":"b"}]"#).map(|b| b.len()).ok(), Some(2));
        assert_eq!(parse_batch("{\"type\":\"a\"}\n{\"type\":\"b\"}\n").map(|b| b.len()).ok(), Some(2));
        assert!(parse_batch(r#"[{"type":"a"}] [{"type":"b"}]"#).is_err(), "arrays are not lines");
        assert!(parse_batch("{\"type\":\"a\"}\n{").is_err(), "a truncated line");
    }
}
