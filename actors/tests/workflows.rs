//! Workflows end to end on the embedded default: every step an ordinary task; fan-out with
//! `max_parallel` and an ordered fan-in; retries; failures; a cancel; a restart mid-run that
//! schedules nothing twice.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use events::task::{Channel, TaskEvent, TaskStatus};
use events::workflow::{WorkflowEvent, WorkflowStatus};
use events::{DomainEvent, EventLog, KeyPair, StreamId, WorkflowId};
use serde_json::{Value, json};
use workflow::{self as workflows, Start, StartRun};

const PIPELINE: &str = r#"
name: pipeline
steps:
  - {name: plan, capability: echo, input: {items: "${input.topics}"}}
  - name: work
    capability: echo
    needs: [plan]
    for_each: "${steps.plan.output.items}"
    max_parallel: 2
    description: "research ${item}"
    input: "${item}"
  - {name: review, capability: echo, needs: [work], input: "${steps.work.output}"}
output: {reviewed: "${steps.review.output}", count: "${len(steps.work.output)}"}
"#;

fn offered(capabilities: &[&str]) -> std::collections::BTreeSet<String> {
    capabilities.iter().map(|c| c.to_string()).collect()
}

async fn run(log: &dyn EventLog, yaml: &str, input: Value, capabilities: &[&str]) -> WorkflowId {
    let definition = workflow::parse(yaml).expect("a good definition");
    let request = StartRun {
        what: Start::Definition(Box::new(definition)),
        input,
        submitter: "a-new-user".into(),
        idempotency_key: None,
        offered: Some(offered(capabilities)),
        run_id: None,
        parent: None,
        webhook_url: None,
    };
    workflows::start(log, request).await.expect("started").0
}

async fn run_events(log: &dyn EventLog, run: WorkflowId) -> Vec<WorkflowEvent> {
    log.read_stream(&StreamId::workflow(run), 1, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|r| WorkflowEvent::from_recorded(r).unwrap())
        .collect()
}

fn count(events: &[WorkflowEvent], kind: &str) -> usize {
    events.iter().filter(|e| e.event_type() == kind).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_fans_out_and_in_with_every_step_an_ordinary_task() {
    let (_dir, log) = sqlite_log().await;
    let key = Arc::new(KeyPair::generate());
    let runtime = start(sqlite_options(Arc::clone(&log), key)).await;
    let topics = json!(["tides", "winds", "currents", "waves", "storms"]);
    let run_id = run(log.as_ref(), PIPELINE, json!({"topics": topics}), &["echo"]).await;
    let run = workflows::wait(log.as_ref(), run_id, WAIT).await.unwrap();
    assert_eq!(run.state.status, WorkflowStatus::Completed, "{:?}", run.state);
    let fanned: Vec<Value> =
        topics.as_array().unwrap().iter().map(|t| json!({"ok": true, "output": t})).collect();
    assert_eq!(run.state.output, Some(json!({"reviewed": fanned, "count": 5})));

    // One task per step and item, each once, each an ordinary task that completed.
    let events = run_events(log.as_ref(), run_id).await;
    assert_eq!(count(&events, "step_scheduled"), 7);
    assert_eq!(count(&events, "step_task_ended"), 7);
    assert_eq!(count(&events, "workflow_completed"), 1);
    let mut running = 0usize;
    let mut most = 0usize;
    for event in &events {
        match event {
            WorkflowEvent::StepScheduled(s) if s.step == "work" => running += 1,
            WorkflowEvent::StepTaskEnded(e) if e.step == "work" => running -= 1,
            _ => {}
        }
        most = most.max(running);
    }
    assert_eq!(most, 2, "max_parallel holds");
    for task_id in run.state.tasks.keys() {
        let task = events_of(log.as_ref(), *task_id).await;
        let TaskEvent::Submitted(submitted) = TaskEvent::from_recorded(&task[0]).unwrap() else { panic!() };
        assert_eq!(submitted.channel, Channel::Workflow);
        assert_eq!(submitted.spec.workflow.as_ref().map(|w| w.workflow_id), Some(run_id));
        assert_eq!(
            types(log.as_ref(), *task_id).await,
            HAPPY_PATH,
            "an ordinary task, screened and verified"
        );
    }
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_failures_skips_and_cancels_end_runs_with_reasons() {
    let (_dir, log) = sqlite_log().await;
    let key = Arc::new(KeyPair::generate());
    let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&key));
    let flaky = Arc::new(Flaky { failures: 1, calls: Default::default() });
    options.extra_agents.push(hosted("flaky", "flaky", &key, flaky));
    options.extra_agents.push(hosted("refuser", "doomed", &key, Arc::new(Refuser)));
    options.extra_agents.push(hosted("slow", "slow", &key, Arc::new(Slow(Duration::from_secs(30)))));
    let runtime = start(options).await;

    // A step retried as a new task (each task with one attempt) succeeds the second time.
    let retried = "name: retried\nsteps:\n  - {name: a, capability: flaky, retry: {attempts: 3}, input: x}\n";
    let id = run(log.as_ref(), retried, Value::Null, &["flaky"]).await;
    let done = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(done.state.status, WorkflowStatus::Completed, "{:?}", done.state);

    // A step whose tasks always fail fails the run with the task's reason; its dependents and
    // the skipped branch never start.
    let doomed = r#"
name: doomed
steps:
  - {name: a, capability: doomed}
  - {name: b, capability: echo, needs: [a]}
  - {name: c, capability: echo, when: "input.go == true"}
"#;
    let id = run(log.as_ref(), doomed, json!({"go": false}), &["doomed", "echo"]).await;
    let failed = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(failed.state.status, WorkflowStatus::Failed);
    let reason = failed.state.failure.clone().unwrap_or_default();
    assert!(reason.contains("step a failed") && reason.contains("never work"), "{reason}");
    assert_eq!(failed.state.steps["b"].runs.len(), 0);
    assert_eq!(failed.state.steps["c"].reason.as_deref(), Some("when is false: input.go == true"));

    // A cancel ends the run and cancels its running step task.
    let slow =
        "name: slow\nsteps:\n  - {name: a, capability: slow}\n  - {name: b, capability: echo, needs: [a]}\n";
    let id = run(log.as_ref(), slow, Value::Null, &["slow", "echo"]).await;
    let task = loop {
        let run = workflows::load_run(log.as_ref(), id).await.unwrap();
        if let Some((_, _, task)) = run.state.running_tasks().first() {
            break *task;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    workflows::cancel(log.as_ref(), id, "a-new-user", "changed my mind").await.unwrap();
    let cancelled = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(cancelled.state.status, WorkflowStatus::Cancelled);
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Cancelled, "the running step task is cancelled");
    assert!(matches!(
        workflows::cancel(log.as_ref(), id, "a-new-user", "again").await,
        Err(workflow::WorkflowError::Ended(_))
    ));

    // Unknown capabilities are refused at start, with the offered list; nothing is recorded.
    let unknown = "name: unknown\nsteps:\n  - {name: a, capability: teleport}\n";
    let refused = workflows::start(
        log.as_ref(),
        StartRun {
            what: Start::Definition(Box::new(workflow::parse(unknown).unwrap())),
            input: Value::Null,
            submitter: "a-new-user".into(),
            idempotency_key: None,
            offered: Some(offered(&["echo"])),
            run_id: None,
            parent: None,
            webhook_url: None,
        },
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("no registered agent offers teleport (offered: echo)"), "{refused}");
    runtime.shutdown().await;
}

/// A run stopped mid-way (the process shut down while a step ran) resumes after a restart and
/// schedules nothing twice: every (step, item, attempt) once, every task once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_run_resumes_and_schedules_nothing_twice() {
    let (_dir, log) = sqlite_log().await;
    let key = Arc::new(KeyPair::generate());
    let slowly = |key: &Arc<KeyPair>| {
        let mut options = sqlite_options(Arc::clone(&log), Arc::clone(key));
        options.extra_agents.push(hosted("slow", "slow", key, Arc::new(Slow(Duration::from_millis(300)))));
        options
    };
    let runtime = start(slowly(&key)).await;
    let yaml = r#"
name: resumed
steps:
  - {name: fan, capability: slow, for_each: "input", max_parallel: 3, input: "${item}"}
  - {name: after, capability: echo, needs: [fan], input: "${len(steps.fan.output)}"}
output: "${steps.after.output}"
"#;
    let id = run(log.as_ref(), yaml, json!([1, 2, 3, 4, 5, 6, 7, 8]), &["slow", "echo"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    runtime.shutdown().await;
    let midway = workflows::load_run(log.as_ref(), id).await.unwrap();
    assert_eq!(midway.state.status, WorkflowStatus::Running, "stopped mid-run");
    let runtime = start(slowly(&key)).await;
    let done = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(done.state.status, WorkflowStatus::Completed, "{:?}", done.state);
    assert_eq!(done.state.output, Some(json!(8)));
    let events = run_events(log.as_ref(), id).await;
    let mut scheduled = BTreeMap::new();
    for event in &events {
        if let WorkflowEvent::StepScheduled(s) = event {
            *scheduled.entry((s.step.clone(), s.item, s.attempt)).or_insert(0) += 1;
        }
    }
    assert_eq!(scheduled.len(), 9);
    assert!(scheduled.values().all(|n| *n == 1), "{scheduled:?}");
    assert_eq!(count(&events, "step_task_ended"), 9);
    runtime.shutdown().await;
}

/// Durable timers end to end: an approval completed by its signal, one that times out, a
/// retry after its backoff, and a run's deadline that cancels its running step task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_backoffs_and_deadlines_run_on_timers() {
    let (_dir, log) = sqlite_log().await;
    let key = Arc::new(KeyPair::generate());
    let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&key));
    // Its first task fails all three of its attempts; the step's second task succeeds.
    options.extra_agents.push(hosted(
        "flaky",
        "flaky",
        &key,
        Arc::new(Flaky { failures: 3, calls: Default::default() }),
    ));
    options.extra_agents.push(hosted("slow", "slow", &key, Arc::new(Slow(Duration::from_secs(30)))));
    let runtime = start(options).await;

    let approval = r#"
name: approval
steps:
  - {name: ask, approval: {signal: approve}}
  - {name: after, capability: echo, needs: [ask], input: "${steps.ask.output}"}
  - {name: late, approval: {timeout: 300ms, on_timeout: skip}}
output: {after: "${steps.after.output}", late: "${steps.late.status}"}
"#;
    let id = run(log.as_ref(), approval, Value::Null, &["echo"]).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let waiting = workflows::load_run(log.as_ref(), id).await.unwrap();
    assert_eq!(waiting.state.status, WorkflowStatus::Running, "waits for its approval");
    assert_eq!(
        waiting.state.steps["late"].status,
        events::workflow::StepStatus::Skipped,
        "timed out and skipped"
    );
    workflows::signal(log.as_ref(), id, "approve", Some("ask"), json!({"ok": true}), "a-new-user")
        .await
        .unwrap();
    let done = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(
        done.state.output,
        Some(json!({"after": {"ok": true}, "late": "skipped"})),
        "{:?}",
        done.state
    );
    assert!(matches!(
        workflows::signal(log.as_ref(), id, "approve", Some("ask"), Value::Null, "a-new-user").await,
        Err(workflow::WorkflowError::Ended(_))
    ));

    let backoff = "name: backoff\nsteps:\n  - {name: a, capability: flaky, retry: {attempts: 2, backoff: 400ms}, input: x}\n";
    let id = run(log.as_ref(), backoff, Value::Null, &["flaky"]).await;
    let done = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(done.state.status, WorkflowStatus::Completed, "{:?}", done.state);
    let events = run_events(log.as_ref(), id).await;
    let (mut failed_at, mut retried_at) = (None, None);
    for recorded in log.read_stream(&StreamId::workflow(id), 1, 1_000).await.unwrap() {
        match WorkflowEvent::from_recorded(&recorded).unwrap() {
            WorkflowEvent::StepTaskEnded(e) if !e.ok => failed_at = Some(recorded.metadata.occurred_at_ms),
            WorkflowEvent::StepScheduled(s) if s.attempt == 2 => {
                retried_at = Some(recorded.metadata.occurred_at_ms)
            }
            _ => {}
        }
    }
    let waited = retried_at.unwrap() - failed_at.unwrap();
    assert!(waited >= 350, "the retry waited its backoff: {waited} ms");
    assert_eq!(count(&events, "timer_fired"), 1);

    let deadline = "name: deadline\ndeadline: 500ms\nsteps:\n  - {name: a, capability: slow}\n";
    let id = run(log.as_ref(), deadline, Value::Null, &["slow"]).await;
    let failed = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(failed.state.status, WorkflowStatus::Failed);
    assert!(
        failed.state.failure.as_deref().unwrap_or_default().contains("deadline of 500ms"),
        "{:?}",
        failed.state
    );
    let task = *failed.state.tasks.keys().next().unwrap();
    let state = runtime.wait_final(task, WAIT).await.unwrap();
    assert_eq!(state.status, TaskStatus::Cancelled, "its running step task is cancelled");
    runtime.shutdown().await;
}

/// A saga: a run that fails after compensable steps undoes them, the last completed first,
/// one at a time; child runs: the step's output is the child's, a child that cannot start or
/// fails fails its step, and a cancelled parent cancels its child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sagas_compensate_and_child_runs_answer_their_parents() {
    let (_dir, log) = sqlite_log().await;
    let key = Arc::new(KeyPair::generate());
    let mut options = sqlite_options(Arc::clone(&log), Arc::clone(&key));
    options.extra_agents.push(hosted("refuser", "doomed", &key, Arc::new(Refuser)));
    options.extra_agents.push(hosted("slow", "slow", &key, Arc::new(Slow(Duration::from_secs(30)))));
    let runtime = start(options).await;

    let saga = r#"
name: saga
steps:
  - {name: book, capability: echo, input: seat, compensate: {capability: echo, input: "release ${steps.book.output}"}}
  - {name: pay, capability: echo, needs: [book], input: money, compensate: {capability: echo, input: "refund ${steps.pay.output}"}}
  - {name: ship, capability: doomed, needs: [pay]}
"#;
    let id = run(log.as_ref(), saga, Value::Null, &["echo", "doomed"]).await;
    let failed = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(failed.state.status, WorkflowStatus::Failed, "{:?}", failed.state);
    let reason = failed.state.failure.clone().unwrap_or_default();
    assert!(reason.starts_with("step ship failed") && reason.ends_with("compensated: pay, book"), "{reason}");
    let order: Vec<(String, Value)> = run_events(log.as_ref(), id)
        .await
        .into_iter()
        .filter_map(|e| match e {
            WorkflowEvent::CompensationScheduled(c) => Some((c.step, c.input)),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [("pay".to_string(), json!("refund money")), ("book".to_string(), json!("release seat"))]
    );
    for (task_id, _) in failed.state.compensations.values() {
        assert_eq!(runtime.wait_final(*task_id, WAIT).await.unwrap().status, TaskStatus::Completed);
    }

    // Child runs.
    let inner = workflow::parse(
        "name: inner\nsteps:\n  - {name: shout, capability: echo, input: {said: \"${input}\"}}\noutput: \"${steps.shout.output}\"\n",
    ).unwrap();
    workflows::register(log.as_ref(), inner, "a-new-user").await.unwrap();
    let outer = r#"
name: outer
steps:
  - {name: call, workflow: {name: inner}, input: "${input.word}"}
output: "${steps.call.output.said}"
"#;
    let id = run(log.as_ref(), outer, json!({"word": "hello"}), &["echo"]).await;
    let done = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert_eq!(
        (done.state.status, done.state.output.clone()),
        (WorkflowStatus::Completed, Some(json!("hello"))),
        "{:?}",
        done.state
    );
    let child = done.state.steps["call"].child.clone().unwrap().0;
    let child_run = workflows::load_run(log.as_ref(), child).await.unwrap();
    assert_eq!(child_run.state.started.as_ref().and_then(|s| s.parent.clone()).map(|p| p.run_id), Some(id));

    let orphan = "name: orphan\nsteps:\n  - {name: call, workflow: {name: nowhere}}\n";
    let id = run(log.as_ref(), orphan, Value::Null, &["echo"]).await;
    let failed = workflows::wait(log.as_ref(), id, WAIT).await.unwrap();
    assert!(
        failed.state.failure.clone().unwrap_or_default().contains("workflow nowhere is not registered"),
        "{:?}",
        failed.state
    );

    let sleepy = workflow::parse("name: sleepy\nsteps:\n  - {name: nap, capability: slow}\n").unwrap();
    workflows::register(log.as_ref(), sleepy, "a-new-user").await.unwrap();
    let id = run(
        log.as_ref(),
        "name: waiting\nsteps:\n  - {name: call, workflow: {name: sleepy}}\n",
        Value::Null,
        &["slow"],
    )
    .await;
    let child = loop {
        let run = workflows::load_run(log.as_ref(), id).await.unwrap();
        if let Some((_, child)) = run.state.running_children().first() {
            let started = workflows::load_run(log.as_ref(), *child).await.unwrap();
            if !started.state.running_tasks().is_empty() {
                break *child;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    workflows::cancel(log.as_ref(), id, "a-new-user", "enough").await.unwrap();
    let child = workflows::wait(log.as_ref(), child, WAIT).await.unwrap();
    assert_eq!(child.state.status, WorkflowStatus::Cancelled, "the child is cancelled with its parent");
    runtime.shutdown().await;
}
