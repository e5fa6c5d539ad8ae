//! Workflows against `pantheon up` on the embedded default, as a new user would use them:
//! over HTTP (register in YAML or JSON, start and wait, the step table, events, the runs
//! list, cancel, idempotency, refusals that name the field, RBAC) and from the command line
//! (`pantheon workflow register|run|show|list`).

mod common;

use common::{pantheon, token, up_with_gateway};
use serde_json::{Value, json};

const CHAIN: &str = r#"
name: chain
description: plan, research in parallel, review
steps:
  - name: plan
    capability: echo
    input: {items: "${input.topics}"}
  - name: research
    capability: echo
    needs: [plan]
    for_each: "${steps.plan.output.items}"
    max_parallel: 4
    input: "${item}"
  - name: review
    capability: echo
    needs: [research]
    input: {count: "${len(steps.research.output)}"}
output: "${steps.review.output}"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_over_http_and_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, base, client) = up_with_gateway(dir.path()).await;
    let (producer, viewer, operator) =
        (token(dir.path(), "producer"), token(dir.path(), "viewer"), token(dir.path(), "operator"));

    // Register in YAML; the same again is the same version; JSON of it too.
    let post = |body: String, kind: &'static str, token: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let answer = client
                .post(format!("{base}/workflows"))
                .bearer_auth(token)
                .header("content-type", kind)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = post(CHAIN.into(), "application/yaml", producer.clone()).await;
    assert_eq!((status, first["version"].as_u64()), (201, Some(1)), "{first}");
    let (status, again) = post(CHAIN.into(), "application/yaml", producer.clone()).await;
    assert_eq!((status, again["version"].as_u64(), again["created"].as_bool()), (200, Some(1), Some(false)));
    let (status, refused) = post(CHAIN.into(), "application/yaml", viewer.clone()).await;
    assert_eq!(status, 403, "{refused}");

    // Definitions that cannot run are refused with the field, and nothing is recorded.
    for (text, field) in [
        (CHAIN.replace("needs: [plan]", "needs: [plan, nowhere]"), "steps[1].needs[1]"),
        (CHAIN.replace("needs: [research]", "needs: [plan]"), "steps[2].input"),
        (CHAIN.replace("max_parallel: 4", "max_parallel: 4\n    colour: red"), ""),
        (CHAIN.replace("len(steps.research.output)", "len(steps.research.output"), "steps[2].input"),
    ] {
        let (status, body) = post(text, "application/yaml", producer.clone()).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["code"], "invalid_workflow", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let versions: Value = client
        .get(format!("{base}/workflows/chain"))
        .bearer_auth(&producer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1), "{versions}");

    // Start and wait: the output, and a step table.
    let topics = json!(["tides", "winds", "currents"]);
    let started = client
        .post(format!("{base}/workflows/chain/runs"))
        .bearer_auth(&producer)
        .header("idempotency-key", "first-run")
        .json(&json!({"input": {"topics": topics}, "wait_ms": 30000}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let run: Value = started.json().await.unwrap();
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], json!({"count": 3}));
    let steps: Vec<(&str, &str, u64)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (s["name"].as_str().unwrap(), s["status"].as_str().unwrap(), s["attempts"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(steps, [("plan", "completed", 1), ("research", "completed", 3), ("review", "completed", 1)]);
    let run_id = run["run_id"].as_str().unwrap().to_string();

    // The same Idempotency-Key answers the same run.
    let again: Value = client
        .post(format!("{base}/workflows/chain/runs"))
        .bearer_auth(&producer)
        .header("idempotency-key", "first-run")
        .json(&json!({"input": {"topics": topics}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["run_id"], run_id.as_str());

    // Its events, the runs list, and who may see it.
    let events: Value = client
        .get(format!("{base}/runs/{run_id}/events"))
        .bearer_auth(&producer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"workflow_started"));
    assert_eq!(types.last(), Some(&"workflow_completed"));
    // The runs view follows the log within moments.
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = client
            .get(format!("{base}/runs?status=completed&name=chain"))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listed["runs"].as_array().unwrap().iter().any(|r| r["run_id"] == run_id.as_str()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let row = listed["runs"].as_array().unwrap().iter().find(|r| r["run_id"] == run_id.as_str());
    let row = row.unwrap_or_else(|| panic!("the run is listed: {listed}"));
    assert_eq!((row["steps"].as_i64(), row["steps_done"].as_i64()), (Some(3), Some(3)), "{row}");
    let none: Value = client
        .get(format!("{base}/runs?status=failed&name=chain"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["runs"], json!([]), "no failed run of chain: {none}");
    let hidden = client.get(format!("{base}/runs/{run_id}")).bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(hidden.status(), 404, "a viewer reads only its own runs");

    // A run that has ended cannot be cancelled; an unknown one is 404.
    let cancel =
        client.post(format!("{base}/runs/{run_id}/cancel")).bearer_auth(&producer).send().await.unwrap();
    assert_eq!(cancel.status(), 409);
    let unknown = client
        .post(format!("{base}/workflows/nope/runs"))
        .bearer_auth(&producer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    // A capability nobody offers is refused at start, with the offered list.
    let teleport = CHAIN
        .replace("name: chain", "name: teleporting")
        .replace("capability: echo\n    needs: [plan]", "capability: teleport\n    needs: [plan]");
    let (status, _) = post(teleport, "application/yaml", producer.clone()).await;
    assert_eq!(status, 201);
    let refused: Value = client
        .post(format!("{base}/workflows/teleporting/runs"))
        .bearer_auth(&producer)
        .json(&json!({"input": {"topics": []}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no registered agent offers teleport (offered: echo"),
        "{refused}"
    );

    // The command line: a definition file run and waited for, then shown.
    let file = dir.path().join("chain.yaml");
    std::fs::write(&file, CHAIN.replace("name: chain", "name: chain-cli")).unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(&input, json!({"topics": ["a", "b"]}).to_string()).unwrap();
    let out = pantheon(dir.path())
        .args(["workflow", "run"])
        .arg(&file)
        .arg("--input")
        .arg(format!("@{}", input.display()))
        .args(["--wait", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((shown["status"].as_str(), &shown["output"]), (Some("completed"), &json!({"count": 2})));
    let table =
        pantheon(dir.path()).args(["workflow", "show", shown["run_id"].as_str().unwrap()]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("research") && l.contains("completed") && l.contains("echo")),
        "{table}"
    );
    // Listed by the command line, from the runs view (brought up to the log first).
    let list = pantheon(dir.path()).args(["workflow", "list", "--status", "completed"]).output().unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let list = String::from_utf8_lossy(&list.stdout);
    let cli_run = shown["run_id"].as_str().unwrap();
    assert!(
        list.lines().any(|l| l.starts_with(cli_run) && l.contains("chain-cli") && l.contains("3/3")),
        "{list}"
    );
    let bad = pantheon(dir.path()).args(["workflow", "list", "--status", "finished"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--status"));
    // Replayed: the timeline, and the state at a version.
    let run_id = shown["run_id"].as_str().unwrap();
    let timeline = pantheon(dir.path()).args(["replay", run_id]).output().unwrap();
    let timeline = String::from_utf8_lossy(&timeline.stdout);
    assert!(timeline.lines().next().is_some_and(|l| l.contains("workflow_started")), "{timeline}");
    assert!(timeline.lines().last().is_some_and(|l| l.contains("workflow_completed")), "{timeline}");
    assert!(timeline.contains("step_scheduled") && timeline.contains("research[1]"), "{timeline}");
    let at = pantheon(dir.path()).args(["replay", run_id, "--at", "2"]).output().unwrap();
    let at: Value = serde_json::from_slice(&at.stdout).unwrap();
    assert_eq!((at["status"].as_str(), at["version_of_stream"].as_u64()), (Some("running"), Some(2)), "{at}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        CHAIN.replace(
            "  - name: plan\n    capability: echo\n",
            "  - name: plan\n    capability: echo\n    needs: [review]\n",
        ),
    )
    .unwrap();
    let refused = pantheon(dir.path()).args(["workflow", "register"]).arg(&bad).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("cycle"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// An approval over HTTP and from the command line: the run waits; only a principal allowed to
/// signal it moves it on; a timed-out approval (a durable timer in the read models' table)
/// fails its run with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_wait_for_a_signal_over_http_or_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_up, base, client) = up_with_gateway(dir.path()).await;
    let (producer, viewer) = (token(dir.path(), "producer"), token(dir.path(), "viewer"));
    let definition = json!({
        "name": "reviewed",
        "deadline": "1h",
        "steps": [
            {"name": "draft", "capability": "echo", "input": "${input}"},
            {"name": "review", "needs": ["draft"], "approval": {"timeout": "1h"}},
            {"name": "publish", "capability": "echo", "needs": ["review"], "input": "${steps.review.output.note}"},
        ],
        "output": "${steps.publish.output}",
    });
    let registered = client
        .post(format!("{base}/workflows"))
        .bearer_auth(&producer)
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let start = |input: Value| {
        let (client, base, producer) = (client.clone(), base.clone(), producer.clone());
        async move {
            let run: Value = client
                .post(format!("{base}/workflows/reviewed/runs"))
                .bearer_auth(&producer)
                .json(&json!({"input": input, "wait_ms": 2000}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            run
        }
    };
    let run = start(json!("a post")).await;
    assert_eq!(run["status"], "running", "waits for its review: {run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let signal = |token: String, body: Value| {
        let (client, base, run_id) = (client.clone(), base.clone(), run_id.clone());
        async move {
            client
                .post(format!("{base}/runs/{run_id}/signals/approve"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // Followed as it happens (SSE): the stream ends after the run's final event.
    let follower = {
        let (client, url, producer) =
            (client.clone(), format!("{base}/runs/{run_id}/stream"), producer.clone());
        tokio::spawn(async move { sse_events(&client, &url, &producer, None).await })
    };
    assert_eq!(signal(viewer.clone(), json!({"step": "review"})).await.status(), 403);
    let wrong = signal(producer.clone(), json!({"step": "draft"})).await;
    assert_eq!(wrong.status(), 422, "the draft waits for no signal");
    let approved = signal(producer.clone(), json!({"step": "review", "payload": {"note": "ship it"}})).await;
    assert_eq!(approved.status(), 202);
    let mut done = Value::Null;
    for _ in 0..100 {
        done = client
            .get(format!("{base}/runs/{run_id}"))
            .bearer_auth(&producer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done["finished"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!((done["status"].as_str(), &done["output"]), (Some("completed"), &json!("ship it")), "{done}");
    assert_eq!(signal(producer.clone(), json!({"step": "review"})).await.status(), 409, "the run has ended");
    let followed = tokio::time::timeout(std::time::Duration::from_secs(30), follower).await.unwrap().unwrap();
    let types: Vec<&str> = followed.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(types.first(), Some(&"workflow_started"), "{types:?}");
    assert!(types.contains(&"signal_received"), "{types:?}");
    assert_eq!(types.last(), Some(&"workflow_completed"), "{types:?}");
    // Resumed after an event: the next one comes first.
    let (third, _) = followed[2].clone();
    let resumed = sse_events(&client, &format!("{base}/runs/{run_id}/stream"), &producer, Some(third)).await;
    assert_eq!(resumed.first().map(|(v, _)| *v), Some(third + 1));
    assert_eq!(resumed.len(), followed.len() - 3);

    // From the command line.
    let run = start(json!("another")).await;
    let run_id = run["run_id"].as_str().unwrap();
    let out = pantheon(dir.path())
        .args(["workflow", "approve", run_id, "review", "--payload", r#"{"note": "fine"}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut status = String::new();
    for _ in 0..100 {
        let out = pantheon(dir.path()).args(["workflow", "show", run_id, "--json"]).output().unwrap();
        let view: Value = serde_json::from_slice(&out.stdout).unwrap();
        status = view["status"].as_str().unwrap_or_default().to_string();
        if status == "completed" {
            assert_eq!(view["output"], "fine");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "completed");

    // A short timeout: the durable timer fails the run with the reason.
    let hurried = json!({
        "name": "hurried",
        "steps": [{"name": "review", "approval": {"timeout": "300ms"}}],
    });
    assert_eq!(
        client
            .post(format!("{base}/workflows"))
            .bearer_auth(&producer)
            .json(&hurried)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let run: Value = client
        .post(format!("{base}/workflows/hurried/runs"))
        .bearer_auth(&producer)
        .json(&json!({"wait_ms": 5000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("no approve signal within 300ms"), "{run}");
}

/// The events of an SSE stream until it ends: (version, type).
async fn sse_events(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    last: Option<u64>,
) -> Vec<(u64, String)> {
    let mut request = client.get(url).bearer_auth(token).header("accept", "text/event-stream");
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    let mut answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let mut text = String::new();
    while let Some(chunk) = answer.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text.split("\n\n")
        .filter_map(|frame| {
            let field =
                |name: &str| frame.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
            Some((field("id:")?.parse().ok()?, field("event:")?))
        })
        .collect()
}
