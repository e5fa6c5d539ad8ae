//! The runs view on SQLite and on PostgreSQL: a run's row from its events, filters by
//! workflow name, status and submitter, paging by log position, and a rebuild that gives the
//! same view.

mod common;

use common::World;
use events::workflow::{
    Definition, StepCompleted, WorkflowCompleted, WorkflowEvent, WorkflowFailed, WorkflowStarted,
};
use events::{StreamId, WorkflowId};
use projections::{ProjectionName, RunQuery, RunReader};
use serde_json::json;

const T0: i64 = 1_700_000_000_000;

/// Starts a run of `name` (two steps) by `submitter` and ends it as `end` says.
async fn run(world: &World, name: &str, submitter: &str, end: Option<bool>, at_ms: i64) -> WorkflowId {
    let run_id = WorkflowId::new();
    let stream = StreamId::workflow(run_id);
    let definition: Definition = serde_json::from_value(json!({
        "name": name,
        "steps": [{"name": "first", "capability": "echo"}, {"name": "second", "capability": "echo", "needs": ["first"]}],
    }))
    .expect("a definition");
    let started = WorkflowEvent::Started(WorkflowStarted {
        run_id,
        name: name.to_string(),
        version: 1,
        definition_hash: "00".repeat(32),
        definition,
        input: json!({}),
        submitter: submitter.to_string(),
        idempotency_key: None,
        started_at_ms: at_ms,
        parent: None,
        depth: 0,
        webhook_url: None,
    });
    world.append(&stream, &started, at_ms, "workflow").await;
    let step = WorkflowEvent::StepCompleted(StepCompleted { step: "first".into(), output: json!("ok") });
    world.append(&stream, &step, at_ms + 10, "workflow").await;
    match end {
        Some(true) => {
            let step =
                WorkflowEvent::StepCompleted(StepCompleted { step: "second".into(), output: json!(1) });
            world.append(&stream, &step, at_ms + 20, "workflow").await;
            let done = WorkflowEvent::Completed(WorkflowCompleted { output: json!(1) });
            world.append(&stream, &done, at_ms + 30, "workflow").await;
        }
        Some(false) => {
            let failed = WorkflowEvent::Failed(WorkflowFailed { reason: "second failed".into() });
            world.append(&stream, &failed, at_ms + 30, "workflow").await;
        }
        None => {}
    }
    run_id
}

async fn runs_are_listed_filtered_and_paged(world: World) {
    let done = run(&world, "chain", "a-user", Some(true), T0).await;
    let failed = run(&world, "chain", "another-user", Some(false), T0 + 1_000).await;
    let running = run(&world, "fan-out", "a-user", None, T0 + 2_000).await;
    let projections = world.projections();
    projections.catch_up(ProjectionName::Runs).await.expect("caught up");
    let reader = RunReader::new(world.db.clone());
    let ids = |query: RunQuery| {
        let reader = reader.clone();
        async move { reader.list(&query).await.expect("listed").into_iter().map(|r| r.run_id).collect::<Vec<_>>() }
    };
    let all = RunQuery { limit: 100, ..RunQuery::default() };
    assert_eq!(
        ids(all.clone()).await,
        [done, failed, running].map(|r| r.to_string()),
        "in the order they started"
    );

    let rows = reader.list(&all).await.expect("listed");
    assert_eq!((rows[0].status.as_str(), rows[0].steps, rows[0].steps_done), ("completed", 2, 2));
    assert_eq!(rows[0].finished_at_ms, Some(T0 + 30));
    assert_eq!((rows[1].status.as_str(), rows[1].steps_done), ("failed", 1));
    assert_eq!((rows[2].status.as_str(), rows[2].finished_at_ms), ("running", None));
    assert_eq!(rows[2].started_at_ms, T0 + 2_000);

    let chain = RunQuery { name: Some("chain".into()), ..all.clone() };
    assert_eq!(ids(chain.clone()).await, [done, failed].map(|r| r.to_string()));
    let chain_failed = RunQuery { status: Some("failed".into()), ..chain };
    assert_eq!(ids(chain_failed).await, [failed.to_string()]);
    let mine = RunQuery { submitter: Some("a-user".into()), ..all.clone() };
    assert_eq!(ids(mine).await, [done, running].map(|r| r.to_string()));
    // A page of one, then the next from after its first event.
    let first = reader.list(&RunQuery { limit: 1, ..all.clone() }).await.expect("listed");
    let next = RunQuery { from_position: first[0].started_position + 1, limit: 1, ..all.clone() };
    assert_eq!(ids(next).await, [failed.to_string()]);

    // A rebuild gives the same view.
    let before = projections.digest(ProjectionName::Runs).await.expect("digest");
    projections.rebuild(ProjectionName::Runs).await.expect("rebuilt");
    assert_eq!(projections.digest(ProjectionName::Runs).await.expect("digest"), before);
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $case() { super::$case(super::World::sqlite().await).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $case() { super::$case(super::World::postgres().await).await } )*
        }
    };
}

on_both!(runs_are_listed_filtered_and_paged);
