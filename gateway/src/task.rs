//! Reading a task from the log: its stream folded into [`TaskState`], with the timings the
//! events' metadata carry, and the [`TaskView`] the API answers with.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use events::{
    Aggregate, DomainEvent, EventLog, RecordedEvent, StreamId, TaskEvent, TaskId, TaskState, Version,
};
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{Error, Result};

/// Events read from a stream per call while folding.
const READ_PAGE_COUNT: usize = 500;

/// A task followed through its stream: the fold so far and its timings.
#[derive(Clone, Debug)]
pub struct TrackedTask {
    /// The task.
    pub task_id: TaskId,
    /// Its state after the events read so far.
    pub state: TaskState,
    /// The last stream version read (may exceed `state.version` when an event was skipped).
    pub read_version: Version,
    /// When it was submitted, ms since the epoch.
    pub submitted_at_ms: Option<i64>,
    /// When it ended, ms since the epoch.
    pub finished_at_ms: Option<i64>,
    /// The id of its first event: the correlation id of all its events.
    pub correlation_id: Option<events::EventId>,
}

impl TrackedTask {
    /// A task with nothing read yet.
    pub fn new(task_id: TaskId) -> Self {
        Self {
            task_id,
            state: TaskState::default(),
            read_version: 0,
            submitted_at_ms: None,
            finished_at_ms: None,
            correlation_id: None,
        }
    }

    /// Reads the task's stream from scratch; `None` when the task does not exist.
    pub async fn load(log: &dyn EventLog, task_id: TaskId) -> Result<Option<Self>> {
        let mut task = Self::new(task_id);
        task.catch_up(log, usize::MAX).await?;
        Ok((task.read_version > 0).then_some(task))
    }

    /// Reads and applies what the stream holds past what was read, at most `limit` events;
    /// returns the events read.
    pub async fn catch_up(&mut self, log: &dyn EventLog, limit: usize) -> Result<Vec<RecordedEvent>> {
        let stream = StreamId::task(self.task_id);
        let mut read = Vec::new();
        while read.len() < limit {
            let page_limit = READ_PAGE_COUNT.min(limit - read.len());
            let page = log.read_stream(&stream, self.read_version + 1, page_limit).await?;
            let full = page.len() == page_limit;
            for event in page {
                self.apply(&event);
                read.push(event);
            }
            if !full {
                break;
            }
        }
        Ok(read)
    }

    fn apply(&mut self, recorded: &RecordedEvent) {
        self.read_version = recorded.version;
        if recorded.version == 1 {
            self.correlation_id = Some(recorded.id);
        }
        match TaskEvent::from_recorded(recorded) {
            Ok(event) => {
                let was_final = self.state.status.is_final();
                if let Err(error) = self.state.apply(&event) {
                    tracing::warn!(task_id = %self.task_id, version = recorded.version, %error, "skipping an event the task's fold refuses");
                    return;
                }
                if matches!(event, TaskEvent::Submitted(_)) {
                    self.submitted_at_ms = Some(recorded.metadata.occurred_at_ms);
                }
                if !was_final && self.state.status.is_final() {
                    self.finished_at_ms = Some(recorded.metadata.occurred_at_ms);
                }
            }
            Err(error) => {
                tracing::warn!(task_id = %self.task_id, version = recorded.version, %error, "skipping an event that does not decode");
            }
        }
    }

    /// Who submitted the task ("" before the submission is read).
    pub fn submitter(&self) -> &str {
        self.state.spec().map_or("", |spec| spec.submitter.as_str())
    }

    /// The API's view of the task.
    pub fn view(&self) -> TaskView {
        let spec = self.state.spec();
        TaskView {
            task_id: self.task_id.to_string(),
            status: self.state.status.as_str().to_string(),
            finished: self.state.status.is_final(),
            capability: spec.map(|s| s.capability.clone()).unwrap_or_default(),
            description: spec.map(|s| s.description.clone()).unwrap_or_default(),
            submitter: spec.map(|s| s.submitter.clone()).unwrap_or_default(),
            labels: spec.map(|s| s.labels.clone()).unwrap_or_default(),
            attempt: self.state.attempt,
            agent_id: self.state.agent_id.as_ref().map(ToString::to_string),
            progress: self
                .state
                .progress
                .as_ref()
                .map(|p| ProgressView { percent: p.percent, message: p.message.clone() }),
            output: self.state.output.clone(),
            end_reason: self.state.end_reason.clone(),
            submitted_at_ms: self.submitted_at_ms,
            finished_at_ms: self.finished_at_ms,
            duration_ms: match (self.submitted_at_ms, self.finished_at_ms) {
                (Some(start), Some(end)) => Some(end.saturating_sub(start)),
                _ => None,
            },
            version: self.read_version,
            webhook: spec.and_then(|s| s.webhook_url.clone()).map(|url| WebhookView {
                url,
                attempts: self.state.webhook_attempts,
                delivered: self.state.webhook_delivered,
            }),
        }
    }
}

/// A task as the API shows it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct TaskView {
    /// The task's id.
    pub task_id: String,
    /// Where it is: `submitted`, `running`, `completed`, `failed`, `rejected`, `cancelled`, …
    pub status: String,
    /// Whether it has ended.
    pub finished: bool,
    /// The capability asked for.
    pub capability: String,
    /// What was asked.
    pub description: String,
    /// Who submitted it.
    pub submitter: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The current attempt (0 before matching).
    pub attempt: u32,
    /// The agent of the current attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The latest progress report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressView>,
    /// The result, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Why it ended without a result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// When it was submitted, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submitted_at_ms: Option<i64>,
    /// When it ended, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    /// From submission to end, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// The task stream's version read.
    pub version: u64,
    /// The webhook, if one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookView>,
}

/// A progress report.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ProgressView {
    /// Percent done, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    /// What the agent is doing.
    pub message: String,
}

/// A task's webhook delivery.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WebhookView {
    /// The target.
    pub url: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Whether it was delivered.
    pub delivered: bool,
}

/// One event as the API shows it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EventView {
    /// The stream version.
    pub version: u64,
    /// The global position.
    pub position: u64,
    /// The event's id.
    pub event_id: String,
    /// The event type, e.g. `task_submitted`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The payload's schema version.
    pub schema_version: u32,
    /// When it happened, ms since the epoch.
    pub occurred_at_ms: i64,
    /// Who emitted it.
    pub emitter: String,
    /// The payload (see schemas/events/).
    pub data: serde_json::Value,
}

impl EventView {
    /// The view of a recorded task event.
    pub fn of(event: &RecordedEvent) -> Result<Self> {
        let data = TaskEvent::from_recorded(event).and_then(|e| e.to_json()).map_err(|e| {
            Error::Internal(format!("event {} of {} does not decode: {e}", event.version, event.stream_id))
        })?;
        Ok(Self {
            version: event.version,
            position: event.position,
            event_id: event.id.to_string(),
            event_type: event.event_type.to_string(),
            schema_version: event.schema_version,
            occurred_at_ms: event.metadata.occurred_at_ms,
            emitter: event.metadata.emitter.clone(),
            data,
        })
    }
}

/// Parses a task id from a path segment (404 for anything that is not one).
pub fn parse_task_id(text: &str) -> Result<TaskId> {
    TaskId::from_str(text).map_err(|_| Error::NotFound { what: format!("task {text}") })
}
