//! The NATS modes: answering the federation's requests on the agent's subject
//! ([`Agent::serve_nats`]), and the pull worker that asks the federation for its work on
//! `pantheon.work.<id>.*` ([`Agent::pull_nats`]). Both connect out only.

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::http::{HEARTBEAT_EVERY, PullError, progress_line};
use crate::{Agent, warn};

/// The longest failure reason or progress message the federation takes, bytes.
const MESSAGE_BYTES_MAX: usize = 4_096;

/// How long a poll waits for an offer, ms; the request waits a little longer.
const POLL_WAIT_MS: u64 = 25_000;

/// `text` cut to at most [`MESSAGE_BYTES_MAX`] bytes, on a character boundary.
pub(crate) fn bounded(mut text: String) -> String {
    if text.len() > MESSAGE_BYTES_MAX {
        let mut end = MESSAGE_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl Agent {
    /// Serves the federation's requests on `subject` (the agent registered with transport
    /// `{"kind": "nats", "subject": …}`) in queue group `queue` — several workers may share a
    /// subject — until `stop` resolves. Each request is answered on its reply subject: the
    /// handler's progress reports as they come, then the signed result, or `{"error"}` for a
    /// refused envelope or a failed handler.
    pub async fn serve_nats(
        self,
        nats: async_nats::Client,
        subject: &str,
        queue: &str,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), async_nats::SubscribeError> {
        let mut requests = nats.queue_subscribe(subject.to_string(), queue.to_string()).await?;
        tokio::pin!(stop);
        loop {
            let message = tokio::select! {
                () = &mut stop => break,
                message = requests.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            let Some(reply) = message.reply else { continue };
            let (agent, nats) = (self.clone(), nats.clone());
            tokio::spawn(async move {
                let body: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
                let last = match agent.admit(body.get("envelope").unwrap_or(&Value::Null)) {
                    Ok(admitted) => {
                        let outcome = agent
                            .work_reporting(admitted, |progress| {
                                let (nats, reply) = (nats.clone(), reply.clone());
                                async move {
                                    let line = progress_line(&progress).to_string();
                                    let _ = nats.publish(reply, line.into()).await;
                                }
                            })
                            .await;
                        match outcome {
                            Ok(result) => serde_json::to_value(result)
                                .unwrap_or_else(|e| json!({ "error": e.to_string() })),
                            Err(reason) => json!({ "error": reason }),
                        }
                    }
                    Err((_, reason)) => json!({ "error": reason }),
                };
                if let Err(error) = nats.publish(reply, last.to_string().into()).await {
                    warn(&format!("answering over NATS failed: {error}"));
                }
            });
        }
        requests.unsubscribe().await.ok();
        Ok(())
    }

    /// Works as a pull worker over NATS until `stop` resolves: asks the federation's
    /// processes for the attempts offered to this agent (`pantheon.work.<id>.poll`, registered
    /// with transport `pull`), checks each envelope, runs the handler, sends its progress and
    /// the signed result (or why it failed), and heartbeats every 5 s so its leases hold. No
    /// federation process answering (starting, restarting) is waited out a second at a time;
    /// a refused poll ends the worker with the reason.
    pub async fn pull_nats(
        self,
        nats: async_nats::Client,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), PullError> {
        let base = format!("pantheon.work.{}", self.id);
        let beats = {
            let (nats, subject) = (nats.clone(), format!("{base}.heartbeat"));
            tokio::spawn(async move {
                let mut every = tokio::time::interval(HEARTBEAT_EVERY);
                loop {
                    every.tick().await;
                    let _ = nats.publish(subject.clone(), bytes::Bytes::new()).await;
                }
            })
        };
        let call = async |subject: String, body: Value, wait: Duration| -> Result<Value, String> {
            let request =
                async_nats::client::Request::new().payload(body.to_string().into()).timeout(Some(wait));
            let reply = nats.send_request(subject, request).await.map_err(|e| e.to_string())?;
            serde_json::from_slice(&reply.payload).map_err(|e| format!("the answer is not JSON: {e}"))
        };
        tokio::pin!(stop);
        let outcome = loop {
            let poll = call(
                format!("{base}.poll"),
                json!({ "wait_ms": POLL_WAIT_MS }),
                Duration::from_millis(POLL_WAIT_MS + 5_000),
            );
            let answer = tokio::select! {
                () = &mut stop => break Ok(()),
                answer = poll => answer,
            };
            let work = match answer {
                Ok(answer) if answer.get("error").is_some() => {
                    break Err(PullError(format!("the federation refused the poll: {}", answer["error"])));
                }
                Ok(answer) if answer["work"].is_object() => answer["work"].clone(),
                Ok(_) => continue,
                Err(_) => {
                    // No responders or a timeout: the federation is starting or restarting.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let task = work["task_id"].as_str().unwrap_or_default().to_string();
            let outcome = match self.admit(&work["envelope"]) {
                Ok(admitted) => {
                    self.work_reporting(admitted, |progress| {
                        let line = progress_line(&progress)["progress"].clone();
                        let sent = call(format!("{base}.progress.{task}"), line, Duration::from_secs(5));
                        async move {
                            if let Err(error) = sent.await {
                                warn(&format!("sending progress failed: {error}"));
                            }
                        }
                    })
                    .await
                }
                Err((_, reason)) => Err(reason),
            };
            let sent = match outcome {
                Ok(result) => match serde_json::to_value(&result) {
                    Ok(result) => {
                        call(format!("{base}.result.{task}"), result, Duration::from_secs(10)).await
                    }
                    Err(error) => Err(error.to_string()),
                },
                Err(reason) => {
                    call(
                        format!("{base}.fail.{task}"),
                        json!({ "reason": bounded(reason) }),
                        Duration::from_secs(10),
                    )
                    .await
                }
            };
            // A `work_conflict`: the lease lapsed and the attempt moved on.
            match sent {
                Ok(answer) if answer.get("error").is_some() => {
                    warn(&format!("the answer was refused: {}", answer["error"]))
                }
                Ok(_) => {}
                Err(error) => warn(&format!("sending an answer failed: {error}")),
            }
        };
        beats.abort();
        outcome
    }
}
