//! An agent outside the process, reached over HTTP: it gets the sealed envelope, verifies the
//! federation's seal, and answers a result signed with its own key, which the federation
//! verifies against the passport it issued for the configured public key.

mod common;

use std::sync::Arc;

use actors::config::{AgentConfig, Builtin};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use common::*;
use events::agent::AgentTransport;
use events::task::TaskStatus;
use events::{
    AgentEvent, AgentId, AgentResult, DomainEvent, KeyPair, PublicKey, SealedEnvelope, SignedResult,
    StreamId, TaskSpec,
};
use serde_json::json;

#[derive(Clone)]
struct Agent {
    federation: PublicKey,
    /// The key results are signed with (the configured one, or a stranger's).
    signer: Arc<KeyPair>,
}

#[derive(serde::Deserialize)]
struct Request {
    envelope: SealedEnvelope,
}

async fn execute(
    State(agent): State<Agent>,
    Json(request): Json<Request>,
) -> Result<Json<SignedResult>, (StatusCode, String)> {
    let sealed = request.envelope;
    sealed.verify(&agent.federation, events::now_ms()).map_err(|e| (StatusCode::FORBIDDEN, e.to_string()))?;
    let description = sealed.envelope.description.clone();
    let result = AgentResult {
        task_id: sealed.envelope.task_id,
        attempt: sealed.envelope.attempt,
        agent_id: sealed.envelope.agent_id.clone(),
        envelope_hash: sealed.hash,
        output: json!({ "shouted": description.to_uppercase() }),
        completed_at_ms: events::now_ms(),
    };
    let signed = SignedResult::sign(result, &agent.signer)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(signed))
}

async fn overloaded() -> (StatusCode, &'static str) {
    (StatusCode::SERVICE_UNAVAILABLE, "overloaded, try later")
}

/// Serves the agent on a free port; its base URL.
async fn serve(agent: Agent) -> String {
    let app = axum::Router::new()
        .route("/execute", axum::routing::post(execute))
        .route("/overloaded", axum::routing::post(overloaded))
        .with_state(agent);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
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
    let good = serve(Agent { federation: federation.public_key(), signer: Arc::clone(&agent_key) }).await;
    // Same endpoint code, but results signed with a key the passport does not name.
    let forger =
        serve(Agent { federation: federation.public_key(), signer: Arc::new(KeyPair::generate()) }).await;
    let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&federation));
    options.config.agents = vec![
        http_agent("remote", "shout", format!("{good}/execute"), agent_key.public_key()),
        http_agent("forger", "forge", format!("{forger}/execute"), agent_key.public_key()),
        http_agent("busy", "wait", format!("{good}/overloaded"), agent_key.public_key()),
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
    runtime.shutdown().await;
}
