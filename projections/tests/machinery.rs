//! The machinery and the task view on SQLite and on PostgreSQL: filters and full-text
//! search, exactly-once application across restarts and concurrent instances, rebuilds that
//! give identical read models, lag and metrics.

mod common;

use common::{Outcome, World, fail, ok};
use events::TaskStatus;
use events::task::FailureCause;
use projections::{ProjectionName, ReputationReader, TaskCursor, TaskQuery, TaskReader, prometheus_metrics};

const T0: i64 = 1_700_000_000_000;

async fn seed(world: &World) {
    world.task("summarize", "Summarize the quarterly invoice report", "alice", "scribe", ok(120), T0).await;
    world
        .task("summarize", "Summarize meeting notes about invoices", "bob", "scribe", fail(), T0 + 1_000)
        .await;
    world
        .task("translate", "Translate the invoice into French", "alice", "polyglot", ok(300), T0 + 2_000)
        .await;
    world
        .task(
            "translate",
            "Translate a poem",
            "carol",
            "polyglot",
            Outcome::Timeout { timeout_ms: 30_000 },
            T0 + 3_000,
        )
        .await;
    world
        .task(
            "summarize",
            "Summarize: \"quotes\" AND * NEAR -weird (syntax)",
            "dave",
            "scribe",
            Outcome::CancelledBeforeMatching,
            T0 + 4_000,
        )
        .await;
}

async fn task_view_filters_and_searches(world: World) {
    seed(&world).await;
    let projections = world.projections();
    assert!(projections.catch_up(ProjectionName::Tasks).await.unwrap() > 30);
    let reader = TaskReader::new(world.db.clone());
    let all = reader.list(&TaskQuery::default()).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].submitted_at_ms >= w[1].submitted_at_ms), "newest first");

    let by = |q: TaskQuery| {
        let reader = reader.clone();
        async move { reader.list(&q).await.unwrap().into_iter().map(|t| t.description).collect::<Vec<_>>() }
    };
    let completed = by(TaskQuery { status: Some(TaskStatus::Completed), ..Default::default() }).await;
    assert_eq!(completed, ["Translate the invoice into French", "Summarize the quarterly invoice report"]);
    assert_eq!(
        by(TaskQuery { status: Some(TaskStatus::AttemptFailed), ..Default::default() }).await.len(),
        2
    );
    assert_eq!(by(TaskQuery { status: Some(TaskStatus::Cancelled), ..Default::default() }).await.len(), 1);
    assert_eq!(by(TaskQuery { capability: Some("translate".into()), ..Default::default() }).await.len(), 2);
    assert_eq!(by(TaskQuery { agent_id: Some("scribe".into()), ..Default::default() }).await.len(), 2);
    assert_eq!(by(TaskQuery { submitter: Some("alice".into()), ..Default::default() }).await.len(), 2);
    let window = TaskQuery {
        submitted_from_ms: Some(T0 + 1_000),
        submitted_until_ms: Some(T0 + 3_000),
        ..Default::default()
    };
    assert_eq!(by(window).await.len(), 2);

    // Full-text search: every word must appear; case does not matter.
    let search = |text: &str| TaskQuery { search: Some(text.into()), ..Default::default() };
    assert_eq!(
        by(search("INVOICE")).await,
        ["Translate the invoice into French", "Summarize the quarterly invoice report"]
    );
    assert_eq!(by(search("summarize invoice")).await, ["Summarize the quarterly invoice report"]);
    assert!(by(search("nothing-like-this")).await.is_empty());
    // Query syntax in user input is taken literally.
    assert_eq!(by(search("\"quotes\" AND * NEAR")).await.len(), 1);
    assert!(reader.list(&search("  *** ")).await.is_err());
    let both =
        TaskQuery { search: Some("translate".into()), submitter: Some("carol".into()), ..Default::default() };
    assert_eq!(by(both).await, ["Translate a poem"]);

    // Paging.
    let page = |offset| TaskQuery { limit: Some(2), offset, ..Default::default() };
    let pages = [by(page(0)).await, by(page(2)).await, by(page(4)).await];
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert!(reader.list(&TaskQuery { limit: Some(0), ..Default::default() }).await.is_err());
    // Keyset paging: each page continues after the last task of the one before, in the same
    // order as one big page, with nothing repeated or skipped.
    let mut keyset = Vec::new();
    let mut after: Option<TaskCursor> = None;
    loop {
        let query = TaskQuery { limit: Some(2), after: after.clone(), ..Default::default() };
        let page = reader.list(&query).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(TaskCursor::of(last).to_string().parse::<TaskCursor>().unwrap());
        keyset.extend(page.into_iter().map(|t| t.task_id));
    }
    assert_eq!(keyset, all.iter().map(|t| t.task_id.clone()).collect::<Vec<_>>());
    assert!("12_".parse::<TaskCursor>().is_err());
    assert!("x_abc".parse::<TaskCursor>().is_err());
    assert!("nothing".parse::<TaskCursor>().is_err());

    let one = reader.get(&all[0].task_id).await.unwrap().unwrap();
    assert_eq!(one, all[0]);
    assert_eq!(one.end_reason.as_deref(), Some("no longer needed"));

    // Load: the tasks an agent holds now, not the ones it finished or failed.
    assert!(reader.load_by_agent().await.unwrap().is_empty());
    world
        .task("summarize", "Summarize a long report", "alice", "scribe", Outcome::StillRunning, T0 + 9_000)
        .await;
    projections.catch_up(ProjectionName::Tasks).await.unwrap();
    let load = reader.load_by_agent().await.unwrap();
    assert_eq!(load.into_iter().collect::<Vec<_>>(), [("scribe".to_string(), 1)]);
}

async fn applies_exactly_once_and_rebuilds_identically(world: World) {
    seed(&world).await;
    // Two instances racing over the same checkpoints, then restarts: nothing is applied twice.
    let (a, b) = (world.projections(), world.projections());
    let (x, y) = tokio::join!(a.catch_up_all(), b.catch_up_all());
    x.unwrap();
    y.unwrap();
    let digests: Vec<String> = futures_digests(&world).await;
    let reputation = ReputationReader::new(world.db.clone());
    let scribe = reputation.get("scribe", "summarize").await.unwrap().unwrap();
    assert_eq!((scribe.successes, scribe.failures_agent), (1, 1), "{scribe:?}");
    let polyglot = reputation.get("polyglot", "translate").await.unwrap().unwrap();
    assert_eq!((polyglot.successes, polyglot.failures_timeout), (1, 1), "{polyglot:?}");
    assert_eq!(polyglot.latency_ms_ewma, Some(300.0));
    assert!((reputation.score_at("scribe", "summarize", T0 + 10_000).await.unwrap() - 0.5).abs() < 1e-6);
    assert_eq!(reputation.score("newcomer", "summarize").await.unwrap(), 0.5);
    assert_eq!(world.projections().catch_up_all().await.unwrap(), 0, "a restart applies nothing again");
    for name in ProjectionName::ALL {
        let projections = world.projections();
        let before = projections.digest(name).await.unwrap();
        projections.rebuild(name).await.unwrap();
        assert_eq!(projections.digest(name).await.unwrap(), before, "rebuilding {name}");
    }
    assert_eq!(futures_digests(&world).await, digests);

    // More events after a crash-free restart; then status and metrics.
    world
        .task(
            "summarize",
            "One more",
            "erin",
            "scribe",
            Outcome::Failure { cause: FailureCause::Transport, after_ms: 5 },
            T0 + 9_000,
        )
        .await;
    let status = world.projections().status().await.unwrap();
    assert!(
        status.iter().all(|s| s.lag_events == 7 && s.head_position > s.position && !s.lag_capped),
        "{status:?}"
    );
    let metrics = prometheus_metrics(&status);
    assert!(metrics.contains("pantheon_projection_lag_events{projection=\"audit\"} 7"), "{metrics}");
    world.projections().catch_up_all().await.unwrap();
    let status = world.projections().status().await.unwrap();
    assert!(status.iter().all(|s| s.lag_events == 0 && s.head_position == s.position), "{status:?}");
}

async fn futures_digests(world: &World) -> Vec<String> {
    let mut out = Vec::new();
    for name in ProjectionName::ALL {
        out.push(world.projections().digest(name).await.unwrap());
    }
    out
}

async fn running_projections_follow_the_log_and_stop(world: World) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = world.projections().spawn(async move {
        let _ = stopped.await;
    });
    seed(&world).await;
    let reader = TaskReader::new(world.db.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while reader.list(&TaskQuery::default()).await.unwrap().len() < 5 {
        assert!(std::time::Instant::now() < deadline, "the running projection never caught up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Every projection, the ledger too, has applied the whole log (each runs on its own: the
    // task view caught up says nothing of the others on a loaded machine).
    let status = world.projections();
    while status.status().await.unwrap().iter().any(|s| s.lag_events > 0) {
        assert!(std::time::Instant::now() < deadline, "a running projection never caught up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    running.join().await.unwrap();
    // At shutdown the ledger signed a tree head over everything.
    let report = projections::verify_ledger(&world.db, &world.key.public_key()).await.unwrap();
    assert!(report.is_intact());
    assert_eq!(report.latest_tree_head.map(|h| h.tree_size), Some(report.entries));
}

/// The readiness probe's ping answers on both backends (PostgreSQL's `SELECT 1` is an INT4).
async fn ping_answers(world: World) {
    world.db.ping().await.expect("ping");
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

on_both!(
    task_view_filters_and_searches,
    applies_exactly_once_and_rebuilds_identically,
    running_projections_follow_the_log_and_stop,
    ping_answers,
);
