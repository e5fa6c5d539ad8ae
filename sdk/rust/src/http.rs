//! The HTTP modes: served to the federation's pushes ([`Agent::serve`]), and the pull worker
//! that long-polls the gateway ([`Agent::pull`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{Agent, Progress, warn};

/// How often a pull worker heartbeats.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// The lines of a streamed answer: progress, then the result or the error.
pub(crate) fn progress_line(progress: &Progress) -> Value {
    let mut report = json!({ "message": progress.message });
    if let Some(percent) = progress.percent {
        report["percent"] = json!(percent);
    }
    json!({ "progress": report })
}

/// A pull worker that cannot go on: the gateway (or the federation on NATS) refused it — a
/// bad token, an unknown agent, a bad request.
#[derive(Debug, thiserror::Error)]
#[error("pull worker: {0}")]
pub struct PullError(pub(crate) String);

impl Agent {
    /// The HTTP service: `POST /` answers envelopes. A refused envelope gets its 4xx and
    /// reason at once; an admitted one `200` with `application/x-ndjson`: the handler's
    /// progress reports as they come, then the signed result (or `{"error"}`).
    pub fn router(self) -> axum::Router {
        let agent = Arc::new(self);
        axum::Router::new().route(
            "/",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let agent = Arc::clone(&agent);
                async move {
                    let admitted = agent
                        .admit(body.get("envelope").unwrap_or(&Value::Null))
                        .map_err(|(status, reason)| (status, axum::Json(json!({ "error": reason }))))?;
                    let (lines, body) = mpsc::unbounded_channel::<Value>();
                    tokio::spawn(async move {
                        let outcome = agent
                            .work_reporting(admitted, |progress| {
                                let _ = lines.send(progress_line(&progress));
                                std::future::ready(())
                            })
                            .await;
                        let last = match outcome {
                            Ok(result) => serde_json::to_value(result)
                                .unwrap_or_else(|e| json!({ "error": e.to_string() })),
                            Err(reason) => json!({ "error": reason }),
                        };
                        let _ = lines.send(last);
                    });
                    let stream = futures::stream::unfold(body, |mut body| async move {
                        let line = body.recv().await?;
                        Some((Ok::<_, std::convert::Infallible>(format!("{line}\n")), body))
                    });
                    Ok::<_, (axum::http::StatusCode, axum::Json<Value>)>((
                        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
                        axum::body::Body::from_stream(stream),
                    ))
                }
            }),
        )
    }

    /// Serves on `listener` until the process stops.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Works as a pull worker until `stop` resolves: long-polls `base_url`'s gateway for the
    /// attempts offered to this agent (registered with transport `pull`; `token` is a token of
    /// role `agent` whose subject is the agent's id), checks each envelope, runs the handler,
    /// posts its progress and the signed result (or why it failed), and heartbeats every 5 s
    /// so its leases hold. A gateway that does not answer is polled again a second later.
    pub async fn pull(
        self,
        base_url: &str,
        token: &str,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), PullError> {
        // reqwest is built without a TLS provider of its own: ring, as the rest of the tree.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().build().map_err(|e| PullError(e.to_string()))?;
        let base = format!("{}/agents/{}", base_url.trim_end_matches('/'), self.id);
        let beats = {
            let (client, url, token) = (client.clone(), format!("{base}/heartbeat"), token.to_string());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(HEARTBEAT_EVERY);
                loop {
                    every.tick().await;
                    let _ = client.post(&url).bearer_auth(&token).send().await;
                }
            })
        };
        tokio::pin!(stop);
        let outcome = loop {
            let poll = client.post(format!("{base}/work?wait_ms=25000")).bearer_auth(token).send();
            let answer = tokio::select! {
                () = &mut stop => break Ok(()),
                answer = poll => answer,
            };
            let work: Value = match answer {
                Ok(answer) if answer.status() == reqwest::StatusCode::NO_CONTENT => continue,
                Ok(answer) if answer.status().is_success() => match answer.json().await {
                    Ok(work) => work,
                    Err(error) => break Err(PullError(format!("the gateway's offer is not JSON: {error}"))),
                },
                Ok(answer) if answer.status().is_client_error() => {
                    let status = answer.status();
                    break Err(PullError(format!(
                        "the gateway refused the poll ({status}): {}",
                        answer.text().await.unwrap_or_default()
                    )));
                }
                _ => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let task = work["task_id"].as_str().unwrap_or_default().to_string();
            let work_url = format!("{base}/work/{task}");
            let outcome = match self.admit(&work["envelope"]) {
                Ok(admitted) => {
                    self.work_reporting(admitted, |progress| {
                        let post = client
                            .post(format!("{work_url}/progress"))
                            .bearer_auth(token)
                            .json(&progress_line(&progress)["progress"])
                            .send();
                        async move {
                            if let Err(error) = post.await {
                                warn(&format!("posting progress failed: {error}"));
                            }
                        }
                    })
                    .await
                }
                Err((_, reason)) => Err(reason),
            };
            let posted = match outcome {
                Ok(result) => {
                    client.post(format!("{work_url}/result")).bearer_auth(token).json(&result).send().await
                }
                Err(reason) => {
                    client
                        .post(format!("{work_url}/fail"))
                        .bearer_auth(token)
                        .json(&json!({ "reason": crate::nats::bounded(reason) }))
                        .send()
                        .await
                }
            };
            // 409: the lease lapsed and the attempt moved on; anything else is the gateway's
            // to recover from, and the next poll goes on.
            if let Err(error) = posted {
                warn(&format!("posting an answer failed: {error}"));
            }
        };
        beats.abort();
        outcome
    }
}
