//! `pantheon tail`: live events, one line each (or JSON with `--json`), filtered by event
//! type, task or agent, until interrupted.

use std::io::Write;
use std::time::Duration;

use clap::Args;
use events::{
    AgentId, Delivery, EventId, EventLog, EventType, Filter, LogError, RecordedEvent, StartFrom, StreamId,
    SubscribeOptions, Subscription, TaskId, codec,
};

use super::events::{format_time, to_json};
use super::up::{BackendArgs, open_backend};
use crate::Cli;

/// How often `tail` looks at an SQLite log for events appended by other processes.
pub(crate) const TAIL_POLL_MS: u64 = 100;

/// Deletes a tail's subscription: a tail starts afresh each time, so it leaves nothing behind.
pub(crate) async fn delete_subscription(log: &dyn EventLog, name: &str) {
    if let Err(error) = log.delete_subscription(name).await {
        tracing::warn!(%error, subscription = name, "cannot delete the tail's subscription");
    }
}

/// The subscription's next delivery; with `poll`, asks the log again at that interval (for an
/// SQL log, whose `next` is cancel-safe and whose wake-ups cover this process only).
pub(crate) async fn next_polled(
    subscription: &mut dyn Subscription,
    poll: Option<Duration>,
) -> Result<Delivery, LogError> {
    let Some(every) = poll else { return subscription.next().await };
    loop {
        if let Ok(delivery) = tokio::time::timeout(every, subscription.next()).await {
            return delivery;
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// Only these event types (repeatable), e.g. `task_completed`.
    #[arg(long = "type")]
    pub(crate) event_types: Vec<EventType>,
    /// Only this task's events.
    #[arg(long)]
    pub(crate) task: Option<TaskId>,
    /// Only events about this agent (its stream, and task events naming it).
    #[arg(long)]
    pub(crate) agent: Option<AgentId>,
    /// Start from the beginning of the log instead of only new events.
    #[arg(long)]
    pub(crate) from_start: bool,
    /// Stop after this many events.
    #[arg(long)]
    pub(crate) count: Option<usize>,
    /// Print JSON lines.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

fn mentions_agent(event: &RecordedEvent, agent: &AgentId) -> bool {
    if event.stream_id == StreamId::agent(agent) {
        return true;
    }
    let Ok(data) = codec::msgpack_to_json(&event.payload) else { return false };
    fn walk(value: &serde_json::Value, agent: &str, depth: usize) -> bool {
        match value {
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| {
                (k == "agent_id" && v.as_str() == Some(agent)) || (depth < 4 && walk(v, agent, depth + 1))
            }),
            _ => false,
        }
    }
    walk(&data, agent.as_str(), 0)
}

/// Every event type the pipeline records, by category.
fn known_types() -> Vec<&'static str> {
    use events::DomainEvent as _;
    [
        events::task::TaskEvent::TYPES,
        events::agent::AgentEvent::TYPES,
        events::workflow::WorkflowEvent::TYPES,
        events::workflow::DefinitionEvent::TYPES,
        events::signals::HeartbeatEvent::TYPES,
        events::signals::FeedbackEvent::TYPES,
        events::policy::PolicyEvent::TYPES,
    ]
    .iter()
    .flat_map(|types| types.iter().map(|(name, _)| *name))
    .collect()
}

pub(crate) async fn run(cli: &Cli, args: &TailArgs) -> anyhow::Result<()> {
    let known = known_types();
    if let Some(unknown) = args.event_types.iter().find(|t| !known.contains(&t.as_str())) {
        anyhow::bail!(
            "no event type \"{unknown}\" is recorded by the pipeline (`pantheon events tail --type` follows any type); known types: {}",
            known.join(", ")
        );
    }
    let backend = open_backend(cli, &args.backend).await?;
    let name = format!("cli-tail-{}", EventId::new());
    let filter = Filter { categories: Vec::new(), event_types: args.event_types.clone() };
    let options = SubscribeOptions {
        filter,
        start: if args.from_start { StartFrom::Beginning } else { StartFrom::End },
    };
    let mut subscription = backend.log.subscribe(&name, options).await?;
    let poll = backend.nats.is_none().then_some(Duration::from_millis(TAIL_POLL_MS));
    let task_stream = args.task.map(StreamId::task);
    let mut out = std::io::stdout().lock();
    let tailed = async {
        let mut seen = 0;
        while args.count.is_none_or(|c| seen < c) {
            let delivery = tokio::select! {
                delivery = next_polled(subscription.as_mut(), poll) => delivery?,
                _ = tokio::signal::ctrl_c() => break,
            };
            let event = &delivery.event;
            let wanted = task_stream.as_ref().is_none_or(|s| &event.stream_id == s)
                && args.agent.as_ref().is_none_or(|a| mentions_agent(event, a));
            if wanted {
                if args.json {
                    writeln!(out, "{}", to_json(event))?;
                } else {
                    let time = format_time(event.metadata.occurred_at_ms);
                    writeln!(
                        out,
                        "{time}  {:<44} v{:<3} {:<20} {}",
                        event.stream_id.as_str(),
                        event.version,
                        event.event_type.as_str(),
                        event.metadata.emitter
                    )?;
                }
                out.flush()?;
                seen += 1;
            }
            subscription.ack(event.position).await?;
        }
        anyhow::Ok(())
    }
    .await;
    drop(subscription);
    delete_subscription(backend.log.as_ref(), &name).await;
    tailed
}
