//! Traces over OTLP: `pantheon up --otlp-endpoint` exports one trace per task — the gateway's
//! span (the child of the caller's `traceparent`), each phase's span as the child of the span
//! that recorded its input, and the agent call's span under the execution phase, whose
//! traceparent the HTTP agent receives. A small OTLP/HTTP (JSON) receiver in the test collects
//! the spans and the test checks their parent/child structure.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Guard, free_port, pantheon, token};
use events::{KeyPair, PublicKey};

#[derive(Clone, Debug)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    service: String,
}

type Spans = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP receiver of JSON trace exports.
async fn receiver() -> (String, Spans, Arc<Mutex<Vec<String>>>) {
    let spans: Spans = Arc::default();
    let services: Arc<Mutex<Vec<String>>> = Arc::default();
    let (kept, names) = (Arc::clone(&spans), Arc::clone(&services));
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (kept, names) = (Arc::clone(&kept), Arc::clone(&names));
            async move {
                let export: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                    let mut service = String::new();
                    for attribute in resource["resource"]["attributes"].as_array().into_iter().flatten() {
                        if attribute["key"] == "service.name" {
                            service =
                                attribute["value"]["stringValue"].as_str().unwrap_or_default().to_string();
                            names.lock().unwrap().push(service.clone());
                        }
                    }
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            let text = |key: &str| span[key].as_str().unwrap_or_default().to_lowercase();
                            kept.lock().unwrap().push(Span {
                                trace: text("traceId"),
                                id: text("spanId"),
                                parent: text("parentSpanId"),
                                name: text("name"),
                                service: service.clone(),
                            });
                        }
                    }
                }
                axum::Json(serde_json::json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), spans, services)
}

/// An HTTP agent on the Rust SDK that notes the `traceparent` header of each call.
async fn agent(federation: PublicKey, key: KeyPair) -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let noted = Arc::clone(&seen);
    let router = pantheon_agent::Agent::new("traced", key, federation)
        .capability("shout", |task| {
            Ok(serde_json::json!(task.input.as_str().unwrap_or_default().to_uppercase()))
        })
        .router()
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let noted = Arc::clone(&noted);
                async move {
                    if let Some(value) = request.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
                        noted.lock().unwrap().push(value.to_string());
                    }
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}/"), seen)
}

/// The spans of the task's trace, each the child of the one before: the gateway's (the
/// caller's child), the phases' in pipeline order, the agent call under the execution phase,
/// and the phases after it; waits for them to be exported.
async fn wait_chain(spans: &Spans, trace: &str, caller: &str) -> Vec<Span> {
    let chain = [
        "post /tasks/execute",
        "screening",
        "context",
        "matching",
        "sealing",
        "execution",
        "agent call",
        "verification",
        "egress",
        "completion",
    ];
    let started = Instant::now();
    loop {
        let trace_spans: Vec<Span> =
            spans.lock().unwrap().iter().filter(|s| s.trace == trace).cloned().collect();
        let mut linked: Vec<Span> = Vec::new();
        for name in chain {
            // The result was recorded by the execution phase, after the agent call ended.
            let parent = match name {
                "post /tasks/execute" => caller.to_string(),
                "verification" => {
                    linked.iter().find(|s| s.name == "execution").map(|s| s.id.clone()).unwrap_or_default()
                }
                _ => linked.last().map(|s| s.id.clone()).unwrap_or_default(),
            };
            match trace_spans.iter().find(|s| s.name == name && s.parent == parent) {
                Some(span) => linked.push(span.clone()),
                None => break,
            }
        }
        if linked.len() == chain.len() {
            return linked;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the trace's spans do not chain: linked {linked:#?}\nall of the trace: {trace_spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_is_one_trace_from_the_caller_to_the_agent() {
    let (collector, spans, services) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _up = Guard(
        pantheon(dir.path())
            .args(["up", "--http", &format!("127.0.0.1:{port}"), "--otlp-endpoint", &collector])
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("OTEL_SERVICE_NAME", "pantheon-under-test")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while !client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let operator = token(dir.path(), "operator");
    let producer = token(dir.path(), "producer");
    let federation = KeyPair::load(&dir.path().join("federation.key")).unwrap().public_key();
    let seed = [7u8; 32];
    let (url, calls) = agent(federation, KeyPair::from_seed(seed)).await;
    let registration = serde_json::json!({
        "agent_id": "traced",
        "capabilities": ["shout"],
        "public_key": KeyPair::from_seed(seed).public_key().to_string(),
        "transport": {"kind": "http", "url": url},
    });
    let registered = client
        .post(format!("{base}/agents"))
        .bearer_auth(&operator)
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    // A caller that traces: its span is the parent of the whole task.
    let (trace, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let answer: serde_json::Value = client
        .post(format!("{base}/tasks/execute"))
        .bearer_auth(&producer)
        .header("traceparent", format!("00-{trace}-{caller}-01"))
        .json(&serde_json::json!({"capability": "shout", "description": "shout it", "input": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(answer["output"], "HI");

    let found = wait_chain(&spans, trace, caller).await;
    // The HTTP agent was called with the agent call's span as its parent.
    let agent_call = found.iter().find(|s| s.name == "agent call").unwrap();
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls, vec![format!("00-{trace}-{}-01", agent_call.id)], "the agent's traceparent");
    assert!(services.lock().unwrap().iter().all(|s| s == "pantheon-under-test"));
    // Every span of the trace has its parent in the trace (or is the caller's child).
    let all: Vec<Span> = spans.lock().unwrap().iter().filter(|s| s.trace == trace).cloned().collect();
    for span in &all {
        assert!(
            span.parent == caller || all.iter().any(|p| p.id == span.parent),
            "{span:?} has no parent in the trace"
        );
    }
}

/// Two `pantheon up` processes on one NATS server share the phases' work: a task's phases run
/// in either, and its trace still chains, the traceparent travelling with the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_crosses_processes_through_nats() {
    let (collector, spans, _services) = receiver().await;
    let nats = testkit::nats_server::NatsServer::start().expect("nats-server");
    let root = tempfile::tempdir().unwrap();
    let (federation, gateway_key) = (KeyPair::generate(), KeyPair::generate());
    const SECRET: &str = "a-secret-of-the-trace-test-0123456789";
    let mut ports = Vec::new();
    let mut ups = Vec::new();
    for name in ["a", "b"] {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        federation.save(&dir.join("federation.key")).unwrap();
        gateway_key.save(&dir.join("gateway.key")).unwrap();
        std::fs::write(dir.join("auth.json"), format!(r#"{{"hs256_secrets": ["{SECRET}"]}}"#)).unwrap();
        let port = free_port();
        ups.push(Guard(
            pantheon(&dir)
                .args(["up", "--nats", &nats.url(), "--http", &format!("127.0.0.1:{port}")])
                .arg("--auth-config")
                .arg(dir.join("auth.json"))
                .args(["--otlp-endpoint", &collector])
                .env("OTEL_BSP_SCHEDULE_DELAY", "200")
                .env("OTEL_SERVICE_NAME", format!("pantheon-{name}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        ports.push(port);
    }
    gateway::webhooks::install_crypto_provider();
    let client = reqwest::Client::new();
    for port in &ports {
        let started = Instant::now();
        while !client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(started.elapsed() < Duration::from_secs(60), "up never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let issue = |role: &str| {
        gateway::auth::issue_hs256_token(SECRET.as_bytes(), "a-new-user", &[role], 3_600).unwrap()
    };
    let (operator, producer) = (issue("operator"), issue("producer"));
    let seed = [9u8; 32];
    let (url, _calls) = agent(federation.public_key(), KeyPair::from_seed(seed)).await;
    let registration = serde_json::json!({
        "agent_id": "traced",
        "capabilities": ["shout"],
        "public_key": KeyPair::from_seed(seed).public_key().to_string(),
        "transport": {"kind": "http", "url": url},
    });
    let base = format!("http://127.0.0.1:{}", ports[0]);
    let registered = client
        .post(format!("{base}/agents"))
        .bearer_auth(&operator)
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    // The other process takes the registration up within its registry refresh.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    let mut services = std::collections::BTreeSet::new();
    for n in 0..8u32 {
        let (trace, caller) =
            (format!("{:032x}", 0xabc0_0000u64 + u64::from(n) + 1), format!("{:016x}", 0x1000 + n));
        let answer: serde_json::Value = client
            .post(format!("{base}/tasks/execute"))
            .bearer_auth(&producer)
            .header("traceparent", format!("00-{trace}-{caller}-01"))
            .json(&serde_json::json!({"capability": "shout", "description": "shout it", "input": "hi"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["status"], "completed", "{answer}");
        let chain = wait_chain(&spans, &trace, &caller).await;
        services.extend(chain.iter().map(|s| s.service.clone()));
    }
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        vec!["pantheon-a".to_string(), "pantheon-b".to_string()],
        "the phases ran in both processes, their spans in the same traces"
    );
}
