//! Webhooks against a local receiver: Standard Webhooks signatures, retries with backoff, the
//! dead letter, every attempt in the task's history, and the SSRF guard.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use common::{Driver, TestGateway, assert_error, token};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc;

#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A receiver that fails the first `failures` deliveries with 500, then answers 204.
async fn receiver(failures: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, seen) = (tx.clone(), seen.clone());
            async move {
                let _ = tx.send(Received { headers, body: body.to_vec() });
                if seen.fetch_add(1, Ordering::SeqCst) < failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

fn verify(secret: &str, received: &Received) {
    let header = |name: &str| received.headers.get(name).and_then(|v| v.to_str().ok()).unwrap().to_string();
    let (id, timestamp, signature) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let key =
        base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&received.body);
    let expected =
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(signature, expected);
    let age = events::now_ms() / 1000 - timestamp.parse::<i64>().unwrap();
    assert!(age.abs() < 60);
}

async fn types(gw: &TestGateway, id: &str, last: &str) -> Vec<events::TaskEvent> {
    gw.wait_for_event(id, last)
        .await
        .iter()
        .map(|e| <events::TaskEvent as events::DomainEvent>::from_recorded(e).unwrap())
        .collect()
}

#[tokio::test]
async fn a_completed_task_is_delivered_signed() {
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let (url, mut received) = receiver(0).await;
    let alice = token("alice", &["producer"]);
    let response = gw
        .post_json(
            "/tasks/submit",
            &alice,
            json!({"capability": "echo", "description": "x", "input": 7, "webhook_url": url}),
        )
        .await;
    let body: serde_json::Value = response.json().await.unwrap();
    let secret = body["webhook_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let id = body["task_id"].as_str().unwrap();
    let delivery =
        tokio::time::timeout(std::time::Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
    verify(&secret, &delivery);
    let payload: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(payload["type"], "task.completed");
    assert_eq!(payload["data"]["task_id"], id);
    assert_eq!(payload["data"]["output"], 7);
    let history = types(&gw, id, "webhook_attempted").await;
    let Some(events::TaskEvent::WebhookAttempted(attempt)) = history.last() else { panic!("no attempt") };
    assert!(attempt.delivered);
    assert_eq!(attempt.status, Some(204));
    assert_eq!(attempt.webhook_id, delivery.headers["webhook-id"].to_str().unwrap());
    let task: serde_json::Value = gw.get(&format!("/tasks/{id}"), &alice).await.json().await.unwrap();
    assert_eq!(task["webhook"]["delivered"], true);
}

#[tokio::test]
async fn failures_are_retried_then_delivered_with_one_id() {
    let gw = TestGateway::start().await;
    let (url, mut received) = receiver(2).await;
    let alice = token("alice", &["producer"]);
    let body: serde_json::Value = gw
        .post_json(
            "/tasks/submit",
            &alice,
            json!({"capability": "slow", "description": "x", "webhook_url": url}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = body["task_id"].as_str().unwrap();
    // Cancelling ends the task: the webhook reports it.
    assert_eq!(gw.post_json(&format!("/tasks/{id}/cancel"), &alice, json!({})).await.status(), 200);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let delivery =
            tokio::time::timeout(std::time::Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
        verify(body["webhook_secret"].as_str().unwrap(), &delivery);
        let payload: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(payload["type"], "task.cancelled");
        ids.push(delivery.headers["webhook-id"].to_str().unwrap().to_string());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one webhook id across retries");
    let history = types(&gw, id, "webhook_attempted").await;
    let mut attempts: Vec<(u32, bool)> = Vec::new();
    for _ in 0..100 {
        attempts = types(&gw, id, "webhook_attempted")
            .await
            .iter()
            .filter_map(|e| match e {
                events::TaskEvent::WebhookAttempted(a) => Some((a.attempt, a.delivered)),
                _ => None,
            })
            .collect();
        if attempts.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(attempts, vec![(1, false), (2, false), (3, true)], "{history:?}");
}

#[tokio::test]
async fn a_webhook_that_keeps_failing_is_dead_lettered() {
    let gw = TestGateway::start().await;
    let (url, _received) = receiver(usize::MAX).await;
    let alice = token("alice", &["producer"]);
    let id = gw.submit(&alice, json!({"capability": "slow", "description": "x", "webhook_url": url})).await;
    gw.post_json(&format!("/tasks/{id}/cancel"), &alice, json!({})).await;
    let history = types(&gw, &id, "webhook_dead_lettered").await;
    let attempts = history.iter().filter(|e| matches!(e, events::TaskEvent::WebhookAttempted(_))).count();
    assert_eq!(attempts, 3);
    let Some(events::TaskEvent::WebhookDeadLettered(dead)) = history.last() else { panic!("no dead letter") };
    assert!(dead.reason.contains("500"), "{}", dead.reason);
}

/// A receiver that answers 500 while `failing` is set, then 204.
async fn switchable_receiver(
    failing: Arc<std::sync::atomic::AtomicBool>,
) -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (tx, failing) = (tx.clone(), failing.clone());
            async move {
                let _ = tx.send(Received { headers, body: body.to_vec() });
                if failing.load(Ordering::SeqCst) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), rx)
}

/// `GET /webhooks/dead` until it holds `count` entries.
async fn dead_letters(gw: &TestGateway, token: &str, count: usize) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let answer = gw.get("/webhooks/dead", token).await;
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.unwrap();
        let dead = body["dead"].as_array().cloned().unwrap_or_default();
        if dead.len() == count {
            return dead;
        }
        assert!(std::time::Instant::now() < deadline, "dead letters: {dead:?}, waiting for {count}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dead_letter_is_listed_and_redelivered_by_an_operator() {
    let gw = TestGateway::start().await;
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (url, mut received) = switchable_receiver(failing.clone()).await;
    let producer = token("producer-1", &["producer"]);
    let operator = token("ops", &["operator"]);
    let viewer = token("viewer-1", &["viewer"]);
    let id =
        gw.submit(&producer, json!({"capability": "slow", "description": "x", "webhook_url": url})).await;
    gw.post_json(&format!("/tasks/{id}/cancel"), &producer, json!({})).await;
    types(&gw, &id, "webhook_dead_lettered").await;

    // Listed, for those who read every task.
    let dead = dead_letters(&gw, &operator, 1).await;
    assert_eq!(dead[0]["task_id"], id.as_str());
    assert!(dead[0]["reason"].as_str().unwrap().contains("3 attempts"), "{dead:?}");
    let webhook_id = dead[0]["webhook_id"].as_str().unwrap().to_string();
    assert_error(gw.get("/webhooks/dead", &producer).await, 403, "forbidden").await;
    assert_error(gw.get("/webhooks/dead?limit=0", &operator).await, 400, "invalid_parameter").await;

    // Redelivering takes manage_webhooks: not the producer, not a viewer.
    let path = format!("/tasks/{id}");
    let redeliver = format!("/webhooks/dead/{id}/redeliver");
    assert_error(gw.post_json(&redeliver, &producer, json!({})).await, 403, "forbidden").await;
    assert_error(gw.post_json(&redeliver, &viewer, json!({})).await, 403, "forbidden").await;
    let unknown = format!("/webhooks/dead/{}/redeliver", events::TaskId::new());
    assert_error(gw.post_json(&unknown, &operator, json!({})).await, 404, "not_found").await;

    // The receiver is back; an operator asks again: a new round, the same webhook-id.
    failing.store(false, Ordering::SeqCst);
    while received.try_recv().is_ok() {}
    let answer = gw.post_json(&redeliver, &operator, json!({})).await;
    assert_eq!(answer.status(), 202);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        (body["webhook_id"].as_str(), body["requested_by"].as_str()),
        (Some(webhook_id.as_str()), Some("ops"))
    );
    // Asked once: a second request while it is delivered is a conflict.
    let again = gw.post_json(&redeliver, &operator, json!({})).await;
    assert_error(again, 409, "webhook_conflict").await;
    let delivery =
        tokio::time::timeout(std::time::Duration::from_secs(10), received.recv()).await.unwrap().unwrap();
    assert_eq!(delivery.headers["webhook-id"].to_str().unwrap(), webhook_id);
    let history = types(&gw, &id, "webhook_attempted").await;
    let mut attempts = Vec::new();
    for _ in 0..100 {
        let history = types(&gw, &id, "webhook_attempted").await;
        attempts = history
            .iter()
            .filter_map(|e| match e {
                events::TaskEvent::WebhookAttempted(a) => Some((a.attempt, a.delivered)),
                _ => None,
            })
            .collect();
        if attempts.last().is_some_and(|a| a.1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(attempts, vec![(1, false), (2, false), (3, false), (4, true)], "{history:?}");
    assert!(
        history
            .iter()
            .any(|e| matches!(e, events::TaskEvent::WebhookRedeliveryRequested(r) if r.by == "ops")),
        "the request is recorded with who asked"
    );
    dead_letters(&gw, &operator, 0).await;
    let task: serde_json::Value = gw.get(&path, &producer).await.json().await.unwrap();
    assert_eq!(task["webhook"]["delivered"], true, "{task}");
    // Delivered: nothing to deliver again.
    assert_error(gw.post_json(&redeliver, &operator, json!({})).await, 409, "webhook_conflict").await;
    // A task that asked for no webhook.
    let plain = gw.submit(&producer, json!({"capability": "slow", "description": "x"})).await;
    gw.post_json(&format!("/tasks/{plain}/cancel"), &producer, json!({})).await;
    let conflict = assert_error(
        gw.post_json(&format!("/webhooks/dead/{plain}/redeliver"), &operator, json!({})).await,
        409,
        "webhook_conflict",
    )
    .await;
    assert!(conflict["error"]["message"].as_str().unwrap_or_default().contains("no webhook"), "{conflict}");
}

#[tokio::test]
async fn an_unreachable_target_is_retried_as_an_error() {
    let gw = TestGateway::start().await;
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let alice = token("alice", &["producer"]);
    let id = gw.submit(&alice, json!({"capability": "slow", "description": "x", "webhook_url": url})).await;
    gw.post_json(&format!("/tasks/{id}/cancel"), &alice, json!({})).await;
    let history = types(&gw, &id, "webhook_dead_lettered").await;
    let errors: Vec<_> = history
        .iter()
        .filter_map(|e| match e {
            events::TaskEvent::WebhookAttempted(a) => Some((a.status, a.error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 3);
    assert!(errors.iter().all(|(status, error)| status.is_none() && error.is_some()));
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let mut config = common::config();
    config.webhooks.allow_loopback = false;
    let gw = TestGateway::start_with(config).await;
    let alice = token("alice", &["producer"]);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/x",
        "http://169.254.169.254/latest",
        "http://10.0.0.1/",
        "ftp://example.com/",
        "http://[::1]/",
        "http://[::7f00:1]/",
        "http://[fec0::1]/",
        "http://198.18.0.1/",
        "http://192.0.0.8/",
        "http://240.0.0.1/",
        "http://[64:ff9b::7f00:1]/",
    ] {
        let response = gw
            .post_json(
                "/tasks/submit",
                &alice,
                json!({"capability": "echo", "description": "x", "webhook_url": url}),
            )
            .await;
        assert_error(response, 422, "webhook_refused").await;
    }
}

#[tokio::test]
async fn an_allow_listed_network_or_host_is_a_target() {
    let mut config = common::config();
    config.webhooks.allow_loopback = false;
    config.webhooks.allow(&["127.0.0.0/8".into(), "localhost".into()]).unwrap();
    let gw = TestGateway::start_with(config).await;
    let producer = token("a-producer", &["producer"]);
    for url in ["http://127.0.0.1:9/hook", "http://localhost:9/hook"] {
        let response = gw
            .post_json(
                "/tasks/submit",
                &producer,
                json!({"capability": "echo", "description": "x", "webhook_url": url}),
            )
            .await;
        assert_eq!(response.status(), 202, "{url}");
    }
    // Other special-purpose addresses stay refused.
    let response = gw
        .post_json(
            "/tasks/submit",
            &producer,
            json!({"capability": "echo", "description": "x", "webhook_url": "http://10.0.0.1/"}),
        )
        .await;
    assert_error(response, 422, "webhook_refused").await;
}

/// A workflow run started with a `webhook_url`: its end is posted, signed with the secret the
/// start answered, retried after a failure with the same id, and every attempt is recorded in
/// the run's events; a URL over the limit is refused.
#[tokio::test]
async fn a_finished_run_is_delivered_signed_and_its_attempts_recorded() {
    use events::workflow::{WorkflowEvent, WorkflowFailed};
    use events::{DomainEvent as _, EventId, ExpectedVersion, Metadata, StreamId, WorkflowId};

    let gw = TestGateway::start().await;
    let (url, mut received) = receiver(1).await;
    let producer = token("a-new-user", &["producer"]);
    let definition = workflow::parse("name: hooked\nsteps:\n  - {name: wait, approval: {}}\n").unwrap();
    workflow::register(gw.log.as_ref(), definition, "test").await.unwrap();

    let long = format!("{url}?{}", "a".repeat(2_100));
    let refused = gw.post_json("/workflows/hooked/runs", &producer, json!({"webhook_url": long})).await;
    assert_error(refused, 400, "invalid_parameter").await;

    let started = gw.post_json("/workflows/hooked/runs", &producer, json!({"webhook_url": url})).await;
    assert_eq!(started.status(), 202);
    let run: serde_json::Value = started.json().await.unwrap();
    let secret = run["webhook_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(run["webhook_url"], url.as_str());
    let run_id: WorkflowId = run["run_id"].as_str().unwrap().parse().unwrap();
    // Reading the run later shows the URL, never the secret.
    let shown: serde_json::Value = gw.get(&format!("/runs/{run_id}"), &producer).await.json().await.unwrap();
    assert!(shown.get("webhook_secret").is_none() && shown["webhook_url"] == url.as_str(), "{shown}");

    // The run ends (as the engine would record it).
    let stream = StreamId::workflow(run_id);
    let failed = WorkflowEvent::Failed(WorkflowFailed { reason: "the approval timed out".into() });
    let new_event = failed.to_new_event(EventId::new(), Metadata::now("workflow")).unwrap();
    gw.log.append(&stream, ExpectedVersion::Any, vec![new_event]).await.unwrap();

    let wait = std::time::Duration::from_secs(20);
    let first = tokio::time::timeout(wait, received.recv()).await.unwrap().unwrap();
    let second = tokio::time::timeout(wait, received.recv()).await.unwrap().unwrap();
    verify(&secret, &second);
    assert_eq!(first.headers["webhook-id"], second.headers["webhook-id"], "one message, two attempts");
    let payload: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(payload["type"], "run.failed");
    assert_eq!(payload["data"]["run_id"], run_id.to_string());
    assert_eq!(payload["data"]["status"], "failed");
    assert_eq!(payload["data"]["error"], "the approval timed out");
    assert!(payload["data"].get("webhook_secret").is_none());

    // Both attempts are in the run's history, the second delivered.
    let mut attempts = Vec::new();
    for _ in 0..100 {
        attempts = gw
            .log
            .read_stream(&stream, 1, 100)
            .await
            .unwrap()
            .iter()
            .filter_map(|e| match WorkflowEvent::from_recorded(e) {
                Ok(WorkflowEvent::WebhookAttempted(a)) => Some(a),
                _ => None,
            })
            .collect::<Vec<_>>();
        if attempts.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(!attempts[0].delivered && attempts[0].status == Some(500));
    assert!(attempts[1].delivered && attempts[1].status == Some(204) && attempts[1].attempt == 2);
    assert_eq!(attempts[1].webhook_id, second.headers["webhook-id"].to_str().unwrap());
    // Nothing more is sent.
    let more = tokio::time::timeout(std::time::Duration::from_millis(500), received.recv()).await;
    assert!(more.is_err(), "delivered once");
}
