//! An agent outside the process, reached over HTTP: it gets the sealed envelope, verifies the
//! federation's seal, and answers a result signed with its own key, which the federation
//! verifies against the passport it issued for the configured public key.

mod common;

use std::sync::Arc;

use actors::config::{AgentConfig, Builtin};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::*;
use events::agent::AgentTransport;
use events::task::{TaskEvent, TaskStatus};
use events::{
    AgentEvent, AgentId, AgentResult, DomainEvent, EventLog, KeyPair, PublicKey, SealedEnvelope,
    SignedResult, StreamId, TaskSpec,
};
use serde_json::json;

#[derive(Clone)]
struct Agent {
    federation: PublicKey,
    /// The key results are signed with (the configured one, or a stranger's).
    signer: Arc<KeyPair>,
    /// The federation's log, which the streaming agent watches for its progress.
    log: Arc<dyn EventLog>,
}

#[derive(serde::Deserialize)]
struct Request {
    envelope: SealedEnvelope,
}

/// The agent's signed answer to a verified envelope.
fn shout(sealed: &SealedEnvelope, signer: &KeyPair) -> SignedResult {
    let result = AgentResult {
        task_id: sealed.envelope.task_id,
        attempt: sealed.envelope.attempt,
        agent_id: sealed.envelope.agent_id.clone(),
        envelope_hash: sealed.hash,
        output: json!({ "shouted": sealed.envelope.description.to_uppercase() }),
        completed_at_ms: events::now_ms(),
    };
    SignedResult::sign(result, signer).expect("sign")
}

async fn execute(
    State(agent): State<Agent>,
    Json(request): Json<Request>,
) -> Result<Json<SignedResult>, (StatusCode, String)> {
    let sealed = request.envelope;
    sealed.verify(&agent.federation, events::now_ms()).map_err(|e| (StatusCode::FORBIDDEN, e.to_string()))?;
    Ok(Json(shout(&sealed, &agent.signer)))
}

/// How many `progress_reported` events the task has.
async fn progress_recorded(log: &dyn EventLog, sealed: &SealedEnvelope) -> usize {
    types(log, sealed.envelope.task_id).await.iter().filter(|t| *t == "progress_reported").count()
}

/// A streamed answer (`application/x-ndjson`): progress lines, the second one split across two
/// chunks; then, once the federation has recorded both reports while the answer is still open,
/// the signed result (with `finish`), or nothing more.
async fn stream_answer(agent: Agent, request: Request, finish: bool) -> Response {
    let sealed = request.envelope;
    if let Err(e) = sealed.verify(&agent.federation, events::now_ms()) {
        return (StatusCode::FORBIDDEN, e.to_string()).into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(8);
    tokio::spawn(async move {
        let send = |text: String| {
            let tx = tx.clone();
            async move { tx.send(Ok(Bytes::from(text))).await.is_ok() }
        };
        send(format!(
            "{}\n",
            json!({"progress": {"percent": 10, "message": "reading mail of a.person@example.com"}})
        ))
        .await;
        // Over 100 percent and over the message limit: clamped and cut.
        let long = json!({"progress": {"percent": 300, "message": "é".repeat(2_000)}}).to_string();
        let (head, tail) = long.split_at(20);
        send(head.to_string()).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        send(format!("{tail}\n\n")).await;
        if !finish {
            return;
        }
        let started = std::time::Instant::now();
        while progress_recorded(agent.log.as_ref(), &sealed).await < 2 {
            if started.elapsed() > std::time::Duration::from_secs(10) {
                send(json!({"error": "the progress was not recorded while the agent worked"}).to_string())
                    .await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        send(serde_json::to_string(&shout(&sealed, &agent.signer)).expect("json")).await;
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    ([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

async fn execute_with_progress(State(agent): State<Agent>, Json(request): Json<Request>) -> Response {
    stream_answer(agent, request, true).await
}

async fn stream_without_result(State(agent): State<Agent>, Json(request): Json<Request>) -> Response {
    stream_answer(agent, request, false).await
}

async fn overloaded() -> (StatusCode, &'static str) {
    (StatusCode::SERVICE_UNAVAILABLE, "overloaded, try later")
}

/// Serves the agent on a free port; its base URL.
async fn serve(agent: Agent) -> String {
    let app = axum::Router::new()
        .route("/execute", axum::routing::post(execute))
        .route("/overloaded", axum::routing::post(overloaded))
        .route("/progress", axum::routing::post(execute_with_progress))
        .route("/unfinished", axum::routing::post(stream_without_result))
        .with_state(agent);
    serve_http(app).await
}

fn http_agent(id: &str, capability: &str, url: String, key: PublicKey) -> AgentConfig {
    AgentConfig {
        id: AgentId::new(id).unwrap(),
        builtin: Builtin::Http,
        capabilities: vec![capability.into()],
        url: Some(url),
        public_key: Some(key),
        ..AgentConfig::echo()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_agent_runs_tasks_and_its_results_are_verified() {
    let (_dir, log) = sqlite_log().await;
    let federation = Arc::new(KeyPair::generate());
    let agent_key = Arc::new(KeyPair::generate());
    let good = serve(Agent {
        federation: federation.public_key(),
        signer: Arc::clone(&agent_key),
        log: Arc::clone(&log),
    })
    .await;
    // Same endpoint code, but results signed with a key the passport does not name.
    let forger = serve(Agent {
        federation: federation.public_key(),
        signer: Arc::new(KeyPair::generate()),
        log: Arc::clone(&log),
    })
    .await;
    let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&federation));
    options.config.agents = vec![
        http_agent("remote", "shout", format!("{good}/execute"), agent_key.public_key()),
        http_agent("forger", "forge", format!("{forger}/execute"), agent_key.public_key()),
        http_agent("busy", "wait", format!("{good}/overloaded"), agent_key.public_key()),
        http_agent("reporter", "report", format!("{good}/progress"), agent_key.public_key()),
        http_agent("quitter", "quit", format!("{good}/unfinished"), agent_key.public_key()),
    ];
    let runtime = start(options).await;

    // Registered with its transport and the configured key.
    let registered =
        log.read_stream(&StreamId::agent(&AgentId::new("remote").unwrap()), 1, 10).await.unwrap();
    let Ok(AgentEvent::Registered(registration)) = AgentEvent::from_recorded(&registered[0]) else {
        panic!("the first event of the agent's stream is its registration");
    };
    assert_eq!(registration.passport.passport.public_key, agent_key.public_key());
    assert!(matches!(registration.transport, AgentTransport::Http { ref url } if url.ends_with("/execute")));

    let task = runtime.submit(TaskSpec::new("shout", "hello over http")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    assert_eq!(state.output, Some(json!({"shouted": "HELLO OVER HTTP"})));
    assert_eq!(types(log.as_ref(), task).await, HAPPY_PATH);

    // A result signed with another key fails verification.
    let mut spec = TaskSpec::new("forge", "sign it wrong");
    spec.max_attempts = 1;
    let forged = runtime.submit(spec).await.unwrap();
    let state = runtime.wait_final(forged, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Failed, "{state:?}");
    let reason = state.end_reason.unwrap_or_default();
    assert!(reason.contains("did not verify") && reason.contains("bad signature"), "{reason}");
    assert!(!types(log.as_ref(), forged).await.contains(&"result_verified".to_string()));

    // An error answer is the agent's failure, with its status and text.
    let mut spec = TaskSpec::new("wait", "come back later");
    spec.max_attempts = 1;
    let busy = runtime.submit(spec).await.unwrap();
    let state = runtime.wait_final(busy, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Failed, "{state:?}");
    let failed = events_of(log.as_ref(), busy).await;
    let failure =
        failed.iter().find(|e| e.event_type.as_str() == "execution_failed").expect("execution_failed");
    let reason =
        serde_json::to_string(&events::codec::from_msgpack::<serde_json::Value>(&failure.payload).unwrap())
            .unwrap();
    assert!(reason.contains("503") && reason.contains("overloaded, try later"), "{reason}");

    // A streamed answer: the progress is recorded while the agent works (the agent answers
    // only once it sees both reports in the log), then the result completes the task.
    let task = runtime.submit(TaskSpec::new("report", "with progress")).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Completed, "{state:?}");
    assert_eq!(state.output, Some(json!({"shouted": "WITH PROGRESS"})));
    let recorded = events_of(log.as_ref(), task).await;
    let reports: Vec<_> = recorded
        .iter()
        .filter_map(|e| match TaskEvent::from_recorded(e) {
            Ok(TaskEvent::ProgressReported(p)) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(reports.len(), 2, "{:?}", types(log.as_ref(), task).await);
    assert_eq!(reports[0].percent, Some(10));
    assert!(reports[0].message.starts_with("reading mail of"), "{}", reports[0].message);
    assert!(!reports[0].message.contains("a.person@example.com"), "redacted: {}", reports[0].message);
    assert_eq!(reports[1].percent, Some(100));
    assert_eq!(reports[1].message, "é".repeat(512), "cut to 1,024 bytes at a character boundary");
    assert!(reports.iter().all(|p| p.agent_id.as_str() == "reporter" && p.attempt == 1));
    let position = |t: &str| recorded.iter().position(|e| e.event_type.as_str() == t).unwrap();
    assert!(position("progress_reported") > position("execution_started"));
    assert!(position("progress_reported") < position("result_received"));

    // A stream that ends without a result fails the attempt, keeping the progress it reported.
    let mut spec = TaskSpec::new("quit", "never finishes");
    spec.max_attempts = 1;
    let task = runtime.submit(spec).await.unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Failed, "{state:?}");
    let reason = state.end_reason.unwrap_or_default();
    assert!(reason.contains("without a result"), "{reason}");
    assert_eq!(counts(log.as_ref(), task).await.get("progress_reported"), Some(&2));
    runtime.shutdown().await;
}
