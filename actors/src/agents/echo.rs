//! The `echo` agent: answers with the task's input, or its description when the input is
//! null. Used by tests and benchmarks.

use async_trait::async_trait;
use events::TaskEnvelope;
use tokio::sync::mpsc;

use super::{AgentFailure, Progress, Worker};

/// The echo worker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

#[async_trait]
impl Worker for Echo {
    async fn work(
        &self,
        envelope: &TaskEnvelope,
        _progress: &mpsc::Sender<Progress>,
    ) -> Result<serde_json::Value, AgentFailure> {
        Ok(match &envelope.input {
            serde_json::Value::Null => serde_json::Value::String(envelope.description.clone()),
            input => input.clone(),
        })
    }
}
