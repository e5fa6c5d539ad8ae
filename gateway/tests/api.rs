//! The endpoints against a running gateway on a real socket over a real SQLite log.

mod common;

use common::{Driver, TestGateway, assert_error, token};
use serde_json::json;

#[tokio::test]
async fn probes_and_openapi_are_public_and_metrics_needs_admin() {
    let gw = TestGateway::start().await;
    let health: serde_json::Value =
        gw.http.get(gw.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let doc: serde_json::Value =
        gw.http.get(gw.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_error(gw.get("/metrics", &token("p", &["producer"])).await, 403, "forbidden").await;
    let metrics = gw.get("/metrics", &gw.admin).await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains("pantheon_gateway_http_responses_total{class=\"2xx\"}"), "{text}");
}

/// `/readyz` is 200 while the log and the read models' database answer, and its 503 names the
/// one that does not: here the read models' database, closed under a gateway whose log still
/// answers.
async fn readiness_names_what_failed(gw: TestGateway) {
    let ready = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    match &gw.views {
        projections::Db::Sqlite { writer, readers } => {
            readers.close().await;
            writer.close().await;
        }
        projections::Db::Postgres(pool) => pool.close().await,
    }
    let response = gw.http.get(gw.url("/readyz")).send().await.unwrap();
    let body = assert_error(response, 503, "not_ready").await;
    let message = body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "the read models' database is not available");
    // The log is named when the log is what fails.
    let log_down = gateway::Error::NotReady { component: gateway::Component::EventLog }.body();
    assert_eq!(log_down.error.message, "the event log is not available");
}

#[tokio::test]
async fn readiness_on_sqlite() {
    readiness_names_what_failed(TestGateway::start().await).await;
}

/// PostgreSQL answers `SELECT 1` with an INT4: the probe must not insist on an INT8.
#[tokio::test]
async fn readiness_on_postgres() {
    readiness_names_what_failed(TestGateway::start_on_postgres().await).await;
}

#[tokio::test]
async fn submit_answers_202_with_location_and_the_task_is_readable() {
    let gw = TestGateway::start().await;
    let producer = token("alice", &["producer"]);
    let response = gw
        .post_json(
            "/tasks/submit",
            &producer,
            json!({"capability": "echo", "description": "say hi", "input": {"x": 1}}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    let id = body["task_id"].as_str().unwrap();
    assert_eq!(location, format!("/tasks/{id}"));
    assert!(body.get("webhook_secret").is_none());
    let task: serde_json::Value = gw.get(&location, &producer).await.json().await.unwrap();
    assert_eq!(task["status"], "submitted");
    assert_eq!(task["submitter"], "alice");
    // The admitted event is signed by the gateway, on the gateway channel.
    let events = gw.wait_for_event(id, "task_submitted").await;
    let submitted = <events::TaskEvent as events::DomainEvent>::from_recorded(&events[0]).unwrap();
    let events::TaskEvent::Submitted(submitted) = submitted else { panic!("not a submission") };
    assert_eq!(submitted.channel, events::task::Channel::Gateway);
    let signed = events::SignedSubmission {
        task_id: submitted.task_id,
        spec: submitted.spec.clone(),
        signed_by: submitted.signed_by,
        signature: submitted.signature,
    };
    signed.verify(&[submitted.signed_by]).unwrap();
}

#[tokio::test]
async fn execute_waits_for_the_result_in_json_markdown_and_html() {
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let producer = token("alice", &["producer"]);
    let body = json!({"capability": "echo", "description": "echo this", "input": "hello <world>"});
    let response = gw.post_json("/tasks/execute", &producer, body.clone()).await;
    assert_eq!(response.status(), 200);
    let task: serde_json::Value = response.json().await.unwrap();
    assert_eq!(task["status"], "completed");
    assert_eq!(task["output"], "hello <world>");
    assert!(task["duration_ms"].as_i64().is_some());

    let markdown = gw
        .http
        .post(gw.url("/tasks/execute?format=markdown"))
        .bearer_auth(&producer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(markdown.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    assert!(markdown.text().await.unwrap().contains("## Result"));
    let html = gw
        .http
        .post(gw.url("/tasks/execute"))
        .header("accept", "text/html")
        .bearer_auth(&producer)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(html.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.text().await.unwrap().contains("hello &lt;world&gt;"));

    let failed: serde_json::Value = gw
        .post_json("/tasks/execute", &producer, json!({"capability": "fail", "description": "x"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["end_reason"], "asked to fail");

    // A refused task answers 422 with the task and why.
    let refused = gw
        .post_json("/tasks/execute", &producer, json!({"capability": "teleport", "description": "x"}))
        .await;
    assert_eq!(refused.status(), 422);
    let refused: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(refused["status"], "rejected");
    assert!(refused["end_reason"].as_str().unwrap().contains("teleport"), "{refused}");
    assert!(refused["task_id"].as_str().is_some());

    // A client that takes none of the types the endpoint answers in gets 406, not JSON.
    for (path, accept) in [
        ("/tasks/execute", "application/xml"),
        ("/tasks", "text/html"),
        ("/tasks/execute", "application/json;q=0"),
    ] {
        let refused = if path == "/tasks" {
            gw.http.get(gw.url(path)).header("accept", accept).bearer_auth(&producer).send().await.unwrap()
        } else {
            gw.http
                .post(gw.url(path))
                .header("accept", accept)
                .bearer_auth(&producer)
                .json(&body)
                .send()
                .await
                .unwrap()
        };
        let error = assert_error(refused, 406, "not_acceptable").await;
        assert!(error["error"]["message"].as_str().unwrap().contains("application/json"), "{error}");
    }
}

#[tokio::test]
async fn execute_times_out_with_504_and_the_task_goes_on() {
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let producer = token("alice", &["producer"]);
    let started = std::time::Instant::now();
    let response = gw
        .post_json(
            "/tasks/execute",
            &producer,
            json!({"capability": "slow", "description": "x", "timeout_ms": 300}),
        )
        .await;
    let body = assert_error(response, 504, "execute_timeout").await;
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let id = body["error"]["task_id"].as_str().unwrap();
    gw.wait_for_event(id, "progress_reported").await;
    let task: serde_json::Value = gw.get(&format!("/tasks/{id}"), &producer).await.json().await.unwrap();
    assert_eq!(task["status"], "running");
    assert_eq!(task["progress"]["percent"], 50);
}

#[tokio::test]
async fn execute_answers_the_real_end_of_a_task_failed_just_after_its_deadline() {
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let producer = token("a-producer", &["producer"]);
    let response = gw
        .post_json(
            "/tasks/execute",
            &producer,
            json!({"capability": "deadline", "description": "x", "timeout_ms": 300}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let task: serde_json::Value = response.json().await.unwrap();
    assert_eq!(task["status"], "failed");
    assert!(task["end_reason"].as_str().unwrap().contains("deadline"), "{task}");
}

#[tokio::test]
async fn events_are_paged() {
    let gw = TestGateway::start().await;
    let _driver = Driver::start(gw.log.clone()).await;
    let producer = token("alice", &["producer"]);
    let task: serde_json::Value = gw
        .post_json("/tasks/execute", &producer, json!({"capability": "echo", "description": "x"}))
        .await
        .json()
        .await
        .unwrap();
    let id = task["task_id"].as_str().unwrap();
    let first: serde_json::Value =
        gw.get(&format!("/tasks/{id}/events?limit=5"), &producer).await.json().await.unwrap();
    assert_eq!(first["events"].as_array().unwrap().len(), 5);
    assert_eq!(first["events"][0]["type"], "task_submitted");
    assert_eq!(first["next_from_version"], 6);
    let rest: serde_json::Value =
        gw.get(&format!("/tasks/{id}/events?from_version=6"), &producer).await.json().await.unwrap();
    let rest = rest["events"].as_array().unwrap();
    assert_eq!(rest.last().unwrap()["type"], "task_completed");
    assert_eq!(rest.len(), 7);
    assert_error(gw.get(&format!("/tasks/{id}/events?limit=x"), &producer).await, 400, "invalid_parameter")
        .await;
}

#[tokio::test]
async fn cancel_appends_task_cancelled_and_refuses_finished_tasks() {
    let gw = TestGateway::start().await;
    let producer = token("alice", &["producer"]);
    let id = gw.submit(&producer, json!({"capability": "slow", "description": "x"})).await;
    let response =
        gw.post_json(&format!("/tasks/{id}/cancel"), &producer, json!({"reason": "changed my mind"})).await;
    assert_eq!(response.status(), 200);
    let task: serde_json::Value = response.json().await.unwrap();
    assert_eq!(task["status"], "cancelled");
    assert_eq!(task["end_reason"], "changed my mind");
    let again =
        gw.http.post(gw.url(&format!("/tasks/{id}/cancel"))).bearer_auth(&producer).send().await.unwrap();
    let body = assert_error(again, 409, "task_finished").await;
    assert_eq!(body["error"]["task_id"], id.as_str());
    // A viewer may read but not cancel.
    assert_error(
        gw.post_json(&format!("/tasks/{id}/cancel"), &token("alice", &["viewer"]), json!({})).await,
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn tasks_are_visible_to_their_submitter_unless_the_role_reads_all() {
    let gw = TestGateway::start().await;
    let alice = token("alice", &["producer"]);
    let bob = token("bob", &["producer"]);
    let a =
        gw.submit(&alice, json!({"capability": "echo", "description": "a", "labels": {"team": "x"}})).await;
    let b = gw.submit(&bob, json!({"capability": "other", "description": "b"})).await;
    assert_error(gw.get(&format!("/tasks/{a}"), &bob).await, 404, "not_found").await;
    assert_error(gw.get(&format!("/tasks/{a}/events"), &bob).await, 404, "not_found").await;
    assert_error(gw.post_json(&format!("/tasks/{a}/cancel"), &bob, json!({})).await, 404, "not_found").await;
    let c = gw
        .submit(
            &alice,
            json!({"capability": "echo", "description": "Summarize the quarterly INVOICE report"}),
        )
        .await;
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["tasks"].as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap().to_string()).collect()
    };
    // The list reads the projections' task view, newest first.
    let mine = gw.list_tasks("/tasks", &alice, 2).await;
    assert_eq!(ids(&mine), [c.clone(), a.clone()]);
    assert_eq!(mine["tasks"][1]["status"], "submitted");
    assert_eq!(mine["tasks"][1]["submitter"], "alice");
    assert_eq!(mine["tasks"][1]["capability"], "echo");
    // A principal that reads only its own tasks never sees another's, whatever it asks.
    assert!(ids(&gw.list_tasks("/tasks?submitter=bob", &alice, 0).await).is_empty());
    let operator = token("olga", &["operator"]);
    let all = gw.list_tasks("/tasks", &operator, 3).await;
    assert_eq!(ids(&all), [c.clone(), b.clone(), a.clone()]);
    assert_eq!(ids(&gw.list_tasks("/tasks?submitter=bob", &operator, 1).await), [b.as_str()]);
    let filtered = gw.list_tasks("/tasks?capability=other&status=submitted", &operator, 1).await;
    assert_eq!(ids(&filtered), [b.as_str()]);
    // Full-text search on the description: every word, any case.
    assert_eq!(ids(&gw.list_tasks("/tasks?q=invoice%20quarterly", &operator, 1).await), [c.as_str()]);
    assert!(ids(&gw.list_tasks("/tasks?q=invoice%20poem", &operator, 0).await).is_empty());
    assert_error(gw.get("/tasks?q=%20*%20", &operator).await, 400, "invalid_parameter").await;
    // Paging by cursor walks the same order as one page, nothing repeated.
    let mut walked = Vec::new();
    let mut path = "/tasks?limit=1".to_string();
    loop {
        let page: serde_json::Value = gw.get(&path, &operator).await.json().await.unwrap();
        assert!(page["tasks"].as_array().unwrap().len() <= 1);
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/tasks?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(walked, [c.clone(), b.clone(), a.clone()]);
    assert_error(gw.get("/tasks?cursor=nonsense", &operator).await, 400, "invalid_parameter").await;
    let none: serde_json::Value = gw.get("/tasks?status=completed", &operator).await.json().await.unwrap();
    assert!(none["tasks"].as_array().unwrap().is_empty());
    assert_error(gw.get("/tasks?status=bogus", &operator).await, 400, "invalid_parameter").await;
    assert_error(gw.get("/tasks/not-a-uuid", &operator).await, 404, "not_found").await;
}

#[tokio::test]
async fn idempotency_key_returns_the_original_and_refuses_another_body() {
    let gw = TestGateway::start().await;
    let alice = token("alice", &["producer"]);
    let send = |body: serde_json::Value, key: &'static str| {
        gw.http
            .post(gw.url("/tasks/submit"))
            .bearer_auth(&alice)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first: serde_json::Value = send(json!({"capability": "echo", "description": "once"}), "order-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["created"], true);
    let repeat = send(json!({"capability": "echo", "description": "once"}), "order-1").await.unwrap();
    assert_eq!(repeat.status(), 202);
    let repeat: serde_json::Value = repeat.json().await.unwrap();
    assert_eq!(repeat["task_id"], first["task_id"]);
    assert_eq!(repeat["created"], false);
    let other = send(json!({"capability": "echo", "description": "twice"}), "order-1").await.unwrap();
    let body = assert_error(other, 422, "idempotency_key_reused").await;
    assert_eq!(body["error"]["task_id"], first["task_id"]);
    // The same key from another principal is another task.
    let bob = token("bob", &["producer"]);
    let bobs: serde_json::Value = gw
        .http
        .post(gw.url("/tasks/submit"))
        .bearer_auth(&bob)
        .header("idempotency-key", "order-1")
        .json(&json!({"capability": "echo", "description": "twice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(bobs["task_id"], first["task_id"]);
}

#[tokio::test]
async fn bad_input_is_refused_with_json_naming_the_problem() {
    let gw = TestGateway::start().await;
    let alice = token("alice", &["producer"]);
    let raw = |body: &'static str| {
        gw.http
            .post(gw.url("/tasks/submit"))
            .bearer_auth(&alice)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let body = assert_error(
        raw("{\"capability\": \"echo\", \"description\": 5}").await.unwrap(),
        400,
        "invalid_body",
    )
    .await;
    assert_eq!(body["error"]["field"], "description");
    let body = assert_error(
        raw("{\"capability\": \"echo\", \"description\": \"x\", \"timeout_ms\": \"soon\"}").await.unwrap(),
        400,
        "invalid_body",
    )
    .await;
    assert_eq!(body["error"]["field"], "timeout_ms");
    let body = assert_error(
        raw("{\"capability\": \"echo\", \"description\": \"x\", \"evil\": 1}").await.unwrap(),
        400,
        "unknown_field",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("evil"));
    assert_error(raw("{not json").await.unwrap(), 400, "invalid_body").await;
    assert_error(raw("{\"capability\": \"\", \"description\": \"x\"}").await.unwrap(), 400, "invalid_body")
        .await;
    let huge = format!("{{\"capability\": \"echo\", \"description\": \"{}\"}}", "x".repeat(300 * 1024));
    let response = gw
        .http
        .post(gw.url("/tasks/submit"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "body_too_large").await;
    let response = gw
        .http
        .post(gw.url("/tasks/submit"))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "unsupported_media_type").await;
    assert_error(gw.get("/no/such/route", &alice).await, 404, "not_found").await;
    assert_error(
        gw.http.delete(gw.url("/tasks")).bearer_auth(&alice).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    let key = gw
        .http
        .post(gw.url("/tasks/submit"))
        .bearer_auth(&alice)
        .header("idempotency-key", "has space")
        .json(&json!({"capability": "echo", "description": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(key, 400, "invalid_parameter").await;
}

#[tokio::test]
async fn agents_are_listed_from_their_streams() {
    use events::agent::{AgentRegistered, AgentTransport};
    use events::{
        AgentEvent, AgentId, DomainEvent, EventId, ExpectedVersion, KeyPair, Metadata, Passport,
        SignedPassport, StreamId,
    };
    let gw = TestGateway::start().await;
    let federation = KeyPair::generate();
    let agent_id = AgentId::new("echo").unwrap();
    let passport = SignedPassport::issue(
        Passport {
            agent_id: agent_id.clone(),
            public_key: KeyPair::generate().public_key(),
            capabilities: vec!["echo".into()],
            not_before_ms: 0,
            not_after_ms: i64::MAX,
        },
        &federation,
    )
    .unwrap();
    let event = AgentEvent::Registered(AgentRegistered {
        passport,
        max_concurrency: 8,
        transport: AgentTransport::InProcess { builtin: "echo".into() },
        slo: None,
    });
    gw.log
        .append(
            &StreamId::agent(&agent_id),
            ExpectedVersion::NoStream,
            vec![event.to_new_event(EventId::new(), Metadata::now("test")).unwrap()],
        )
        .await
        .unwrap();
    // The agents are the federation's: operators read them, a viewer does not.
    assert_error(gw.get("/agents", &token("v", &["viewer"])).await, 403, "forbidden").await;
    let viewer = token("o", &["operator"]);
    let agents: serde_json::Value = gw.get("/agents", &viewer).await.json().await.unwrap();
    assert_eq!(agents["agents"][0]["agent_id"], "echo");
    assert_eq!(agents["agents"][0]["capabilities"], json!(["echo"]));
    assert_eq!(agents["agents"][0]["status"], "active");
    let one: serde_json::Value = gw.get("/agents/echo", &viewer).await.json().await.unwrap();
    assert_eq!(one["max_concurrency"], 8);
    assert_eq!(one["transport"], "in_process");
    // Load, health and reputation come from the read models: nothing yet.
    assert_eq!(one["load"], 0);
    assert_eq!(one["health"]["status"], "healthy");
    assert_eq!(one["reputation"], json!([]));
    // One task completes on the agent, another stays running on it.
    let _driver = Driver::start(gw.log.clone()).await;
    let producer = token("p", &["producer"]);
    let done = gw.submit(&producer, json!({"capability": "echo", "description": "d", "input": "x"})).await;
    gw.wait_for_event(&done, "task_completed").await;
    let running = gw.submit(&producer, json!({"capability": "slow", "description": "r"})).await;
    gw.wait_for_event(&running, "execution_started").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let one = loop {
        let one: serde_json::Value = gw.get("/agents/echo", &viewer).await.json().await.unwrap();
        let settled = one["load"] == 1 && one["reputation"].as_array().is_some_and(|r| !r.is_empty());
        if settled || std::time::Instant::now() > deadline {
            break one;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(one["load"], 1, "{one}");
    assert_eq!(one["reputation"][0]["capability"], "echo", "{one}");
    assert_eq!(one["reputation"][0]["successes"], 1, "{one}");
    let score = one["reputation"][0]["score"].as_f64().unwrap();
    assert!(score > 0.5 && score < 1.0, "one success lifts a smoothed score above the prior: {score}");
    assert_eq!(one["health"]["status"], "healthy", "{one}");
    let listed: serde_json::Value = gw.get("/agents", &viewer).await.json().await.unwrap();
    assert_eq!(listed["agents"][0]["load"], 1);
    assert_error(gw.get("/agents/nobody", &viewer).await, 404, "not_found").await;
    assert_error(gw.get("/agents/NOT VALID", &viewer).await, 404, "not_found").await;
    assert_error(gw.get("/agents", &token("n", &[])).await, 403, "forbidden").await;
}

#[tokio::test]
async fn a_stopped_gateway_leaves_no_subscription_behind() {
    let config = common::config();
    let instance = config.instance.clone();
    let gateway = TestGateway::start_with(config).await;
    let file = sqlx::SqlitePool::connect(&format!("sqlite://{}", gateway.log_file().display()))
        .await
        .expect("open the log file");
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM subscriptions WHERE name = $1")
            .bind(&instance)
            .fetch_one(&file)
            .await
            .expect("count")
    };
    // The follower's subscription, created at start, is there while the gateway runs.
    for _ in 0..250 {
        if count().await == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count().await, 1);
    gateway.stop().await.expect("a clean stop");
    assert_eq!(count().await, 0, "the gateway deleted its subscription when it stopped");
}
