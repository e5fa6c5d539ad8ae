//! Task streams over WebSocket and SSE: history first, live events, cancel over the socket,
//! a clean close after the final event.

mod common;

use common::{Driver, TestGateway, assert_error, token};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

async fn connect(
    gw: &TestGateway,
    id: &str,
    bearer: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{}/tasks/{id}/stream", gw.addr).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Reads frames until the close frame; returns the event types and the close code/reason.
async fn read_all(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    until_type: Option<&str>,
) -> (Vec<String>, Option<(u16, String)>) {
    let mut types = Vec::new();
    while let Some(message) =
        tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await.unwrap()
    {
        match message.unwrap() {
            Message::Text(text) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(frame["kind"], "event", "{frame}");
                let event_type = frame["event"]["type"].as_str().unwrap().to_string();
                let stop = until_type == Some(event_type.as_str());
                types.push(event_type);
                if stop {
                    return (types, None);
                }
            }
            Message::Close(frame) => {
                return (types, frame.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            _ => {}
        }
    }
    (types, None)
}

#[tokio::test]
async fn a_late_websocket_subscriber_gets_the_history_then_a_clean_close() {
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let alice = token("alice", &["producer"]);
    let task: serde_json::Value = gw
        .post_json("/tasks/execute", &alice, json!({"capability": "echo", "description": "x"}))
        .await
        .json()
        .await
        .unwrap();
    let id = task["task_id"].as_str().unwrap();
    let mut socket = connect(&gw, id, &alice).await;
    let (types, close) = read_all(&mut socket, None).await;
    assert_eq!(types.first().map(String::as_str), Some("task_submitted"));
    assert_eq!(types.last().map(String::as_str), Some("task_completed"));
    assert_eq!(types.len(), 12);
    assert_eq!(close, Some((1000, "task finished".to_string())));
}

#[tokio::test]
async fn a_websocket_client_cancels_and_gets_the_cancellation_last() {
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let alice = token("alice", &["producer"]);
    let id = gw.submit(&alice, json!({"capability": "slow", "description": "x"})).await;
    let mut socket = connect(&gw, &id, &alice).await;
    let (types, _) = read_all(&mut socket, Some("progress_reported")).await;
    assert_eq!(types.first().map(String::as_str), Some("task_submitted"));
    // A malformed command is refused on the socket, which stays open.
    socket.send(Message::Text("{\"action\": \"explode\"}".into())).await.unwrap();
    let refused = socket.next().await.unwrap().unwrap();
    let refused: serde_json::Value = serde_json::from_str(refused.to_text().unwrap()).unwrap();
    assert_eq!(refused["kind"], "error");
    socket
        .send(Message::Text(json!({"action": "cancel", "reason": "enough"}).to_string().into()))
        .await
        .unwrap();
    let (types, close) = read_all(&mut socket, None).await;
    assert_eq!(types, vec!["task_cancelled".to_string()]);
    assert_eq!(close, Some((1000, "task finished".to_string())));
    let task: serde_json::Value = gw.get(&format!("/tasks/{id}"), &alice).await.json().await.unwrap();
    assert_eq!(task["status"], "cancelled");
    assert_eq!(task["end_reason"], "enough");
}

#[tokio::test]
async fn a_viewer_cannot_cancel_over_the_socket() {
    let gw = TestGateway::start().await;
    let alice = token("alice", &["producer"]);
    let id = gw.submit(&alice, json!({"capability": "slow", "description": "x"})).await;
    let mut socket = connect(&gw, &id, &token("alice", &["viewer"])).await;
    let (types, _) = read_all(&mut socket, Some("task_submitted")).await;
    assert_eq!(types, vec!["task_submitted".to_string()]);
    socket.send(Message::Text(json!({"action": "cancel"}).to_string().into())).await.unwrap();
    let refused = socket.next().await.unwrap().unwrap();
    let refused: serde_json::Value = serde_json::from_str(refused.to_text().unwrap()).unwrap();
    assert_eq!(refused["error"]["error"]["code"], "forbidden");
}

#[tokio::test]
async fn sse_streams_live_events_and_ends_after_the_final_one() {
    let gw = TestGateway::start().await;
    let alice = token("alice", &["producer"]);
    let id = gw.submit(&alice, json!({"capability": "echo", "description": "x"})).await;
    // Subscribe before the pipeline runs: everything after the submission arrives live.
    let mut response =
        gw.http.get(gw.url(&format!("/tasks/{id}/stream"))).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let _driver = Driver::start(gw.log.clone()).await;
    let mut text = String::new();
    while let Some(chunk) =
        tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk()).await.unwrap().unwrap()
    {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(types.first(), Some(&"task_submitted"));
    assert_eq!(types.last(), Some(&"task_completed"));
    assert_eq!(types.len(), 12);
    // Resuming with Last-Event-ID sends only what came after.
    let resumed = gw
        .http
        .get(gw.url(&format!("/tasks/{id}/stream")))
        .bearer_auth(&alice)
        .header("last-event-id", "10")
        .send()
        .await
        .unwrap();
    let text = resumed.text().await.unwrap();
    let types: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(types, vec!["egress_screened", "task_completed"]);
}

#[tokio::test]
async fn streams_of_tasks_one_cannot_read_are_404() {
    let gw = TestGateway::start().await;
    let id =
        gw.submit(&token("alice", &["producer"]), json!({"capability": "slow", "description": "x"})).await;
    assert_error(
        gw.get(&format!("/tasks/{id}/stream"), &token("bob", &["producer"])).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn a_websocket_client_that_stops_reading_is_dropped_as_a_slow_consumer() {
    use events::task::ProgressReported;
    use events::{AgentId, DomainEvent, EventId, ExpectedVersion, Metadata, StreamId, TaskEvent};
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let producer = token("p", &["producer"]);
    let id = gw.submit(&producer, json!({"capability": "slow", "description": "never ends"})).await;
    gw.wait_for_event(&id, "execution_started").await;
    // Connected, then never read again: the socket buffers fill and the server's sends stall.
    let mut socket = connect(&gw, &id, &producer).await;
    let stream = StreamId::new(format!("task-{id}")).unwrap();
    let message = "x".repeat(256 * 1024);
    for _ in 0..80 {
        let progress = TaskEvent::ProgressReported(ProgressReported {
            agent_id: AgentId::new("echo").unwrap(),
            attempt: 1,
            percent: None,
            message: message.clone(),
        });
        let event = progress.to_new_event(EventId::new(), Metadata::now("test")).unwrap();
        gw.log.append(&stream, ExpectedVersion::Any, vec![event]).await.unwrap();
    }
    // The stalled stream is dropped and counted, not kept with its buffers forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = gw.get("/metrics", &gw.admin).await.text().await.unwrap();
        if metrics.contains("pantheon_gateway_streams_dropped_slow_total 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slow consumer was never dropped:\n{metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // What the client still reads ends: a close frame if it fitted, else the connection's end.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the dropped stream ends");
    if let Some((code, reason)) = ended {
        assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    }
}

/// A run's stream over WebSocket: history, a cancel sent over the socket (recorded on the
/// run), the live events after it, and a clean close after the run's final event.
#[tokio::test]
async fn a_run_streams_over_websocket_and_takes_a_cancel() {
    use events::workflow::{WorkflowCancelled, WorkflowEvent};
    use events::{DomainEvent as _, EventId, ExpectedVersion, Metadata, StreamId};

    let gw = TestGateway::start().await;
    let producer = token("a-new-user", &["producer"]);
    let definition = workflow::parse("name: held\nsteps:\n  - {name: wait, approval: {}}\n").unwrap();
    let request = workflow::StartRun {
        what: workflow::Start::Definition(Box::new(definition)),
        input: json!(null),
        submitter: "a-new-user".into(),
        idempotency_key: None,
        offered: None,
        run_id: None,
        parent: None,
        webhook_url: None,
    };
    let (run_id, _) = workflow::start(gw.log.as_ref(), request).await.unwrap();
    let mut request = format!("ws://{}/runs/{run_id}/stream", gw.addr).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {producer}").parse().unwrap());
    let mut socket = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let (history, _) = read_all(&mut socket, Some("workflow_started")).await;
    assert_eq!(history, ["workflow_started"]);
    socket
        .send(Message::Text(json!({"action": "cancel", "reason": "no longer"}).to_string().into()))
        .await
        .unwrap();
    let (cancel, _) = read_all(&mut socket, Some("workflow_cancel_requested")).await;
    assert_eq!(cancel, ["workflow_cancel_requested"]);
    // What the engine records next (no engine runs here): the stream ends after it.
    let cancelled =
        WorkflowEvent::Cancelled(WorkflowCancelled { by: "a-new-user".into(), reason: "no longer".into() })
            .to_new_event(EventId::new(), Metadata::now("test"))
            .unwrap();
    gw.log.append(&StreamId::workflow(run_id), ExpectedVersion::Exact(2), vec![cancelled]).await.unwrap();
    let (rest, close) = read_all(&mut socket, None).await;
    assert_eq!(rest, ["workflow_cancelled"]);
    assert_eq!(close, Some((1000, "run finished".to_string())));
    // Someone else's run is not there for a viewer.
    let other = token("someone-else", &["viewer"]);
    let mut request = format!("ws://{}/runs/{run_id}/stream", gw.addr).into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {other}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err(), "404 before any upgrade");
}
