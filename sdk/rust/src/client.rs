//! A gateway client: submit tasks and follow them — wait for the answer, read the task,
//! poll until it ends, or stream its events as they happen (Server-Sent Events) — and
//! register agents.

use std::time::Duration;

use serde_json::{Value, json};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway could not be reached, or its answer not read.
    #[error("the gateway: {0}")]
    Transport(#[from] reqwest::Error),
    /// The gateway answered with an error status: the status and its problem document.
    #[error("the gateway answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The answer's body (an RFC 9457 problem document).
        body: Value,
    },
    /// The answer was not what the API says.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// A gateway at `base_url`, called with a bearer token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the gateway at `base_url` (e.g. `http://127.0.0.1:8080`) with `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        // reqwest is built without a TLS provider of its own: ring, as the rest of the tree.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self {
            http: reqwest::Client::builder().build()?,
            base: base_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await?;
        let status = answer.status();
        let text = answer.text().await?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| ClientError::Unexpected(format!("{e}: {text}")))?
        };
        // A task refused by screening answers 422 with the task's view: an answer, not an error.
        if status.is_success() || (status.as_u16() == 422 && body.get("status").is_some()) {
            Ok(body)
        } else {
            Err(ClientError::Status { status: status.as_u16(), body })
        }
    }

    /// Submits a task (`POST /tasks/submit`) and answers its id at once. `request` is the
    /// request body: `capability`, `description`, `input`, and any of the optional fields
    /// (`timeout_ms`, `max_attempts`, `webhook_url`, `labels`, …).
    pub async fn submit(&self, request: &Value) -> Result<String, ClientError> {
        let answer = self.call(reqwest::Method::POST, "/tasks/submit", Some(request)).await?;
        answer["task_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::Unexpected(format!("no task_id in {answer}")))
    }

    /// Runs a task and waits for its end (`POST /tasks/execute`, up to 30 s): the task's view,
    /// with `status` and `output` or `error`.
    pub async fn execute(
        &self,
        capability: &str,
        description: &str,
        input: Value,
    ) -> Result<Value, ClientError> {
        let request = json!({ "capability": capability, "description": description, "input": input });
        self.call(reqwest::Method::POST, "/tasks/execute", Some(&request)).await
    }

    /// The task's view (`GET /tasks/{id}`).
    pub async fn task(&self, task_id: &str) -> Result<Value, ClientError> {
        self.call(reqwest::Method::GET, &format!("/tasks/{task_id}"), None).await
    }

    /// The task's view once it has ended, polling every 100 ms; the view as it stands when
    /// `timeout` passes first.
    pub async fn wait(&self, task_id: &str, timeout: Duration) -> Result<Value, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let task = self.task(task_id).await?;
            if task["finished"] == true || tokio::time::Instant::now() >= deadline {
                return Ok(task);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The task's events as they happen from `from_version` (`GET /tasks/{id}/stream`, SSE);
    /// the stream ends after the task's final event.
    pub async fn stream(&self, task_id: &str, from_version: u64) -> Result<EventStream, ClientError> {
        let answer = self
            .http
            .get(format!("{}/tasks/{task_id}/stream?from_version={from_version}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await?;
        let status = answer.status();
        if !status.is_success() {
            let body = answer.json().await.unwrap_or(Value::Null);
            return Err(ClientError::Status { status: status.as_u16(), body });
        }
        Ok(EventStream { answer, buffer: Vec::new() })
    }

    /// Registers an agent at run time (`POST /agents`; an operator's or admin's token):
    /// `registration` is `{"agent_id", "capabilities", "public_key", "transport", …}`.
    pub async fn register(&self, registration: &Value) -> Result<Value, ClientError> {
        self.call(reqwest::Method::POST, "/agents", Some(registration)).await
    }
}

/// A task's events as they arrive: each is `{"type", "version", "data"}`, `data` the event
/// as `GET /tasks/{id}/events` shows it.
pub struct EventStream {
    answer: reqwest::Response,
    buffer: Vec<u8>,
}

impl EventStream {
    /// The next event; `None` once the task's final event was given.
    pub async fn next(&mut self) -> Option<Result<Value, ClientError>> {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                match parse_frame(&String::from_utf8_lossy(&frame)) {
                    Some(Ok(event)) => return Some(Ok(event)),
                    Some(Err(error)) => return Some(Err(error)),
                    None => continue, // a keep-alive comment
                }
            }
            match self.answer.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => return None,
                Err(error) => return Some(Err(error.into())),
            }
        }
    }
}

/// One SSE frame as an event; `None` for a frame with no data; the server's `error` event
/// as an error.
fn parse_frame(frame: &str) -> Option<Result<Value, ClientError>> {
    let (mut kind, mut data) = (None, Vec::new());
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            kind = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if data.is_empty() {
        return None;
    }
    let text = data.join("\n");
    if kind.as_deref() == Some("error") {
        return Some(Err(ClientError::Unexpected(format!("the stream failed: {text}"))));
    }
    Some(match serde_json::from_str::<Value>(&text) {
        Ok(event) => Ok(json!({ "type": kind, "version": event.get("version").cloned(), "data": event })),
        Err(e) => Err(ClientError::Unexpected(format!("an event that is not JSON ({e}): {text}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_comments_are_skipped() {
        let event = parse_frame("id: 3\nevent: task_submitted\ndata: {\"version\": 3}\n\n").unwrap().unwrap();
        assert_eq!(event["type"], "task_submitted");
        assert_eq!(event["version"], 3);
        assert!(parse_frame(": keep-alive\n\n").is_none());
        assert!(parse_frame("event: error\ndata: boom\n\n").unwrap().is_err());
    }
}
