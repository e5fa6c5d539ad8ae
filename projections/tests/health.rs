//! Health through a real log: an agent that starts failing becomes unhealthy (not selectable),
//! waits out its cool-down, gets one trial task (half-open), fails it, waits again, passes
//! the next trial and is healthy again; heartbeats that stop make it degraded then unhealthy;
//! SLO compliance and burn rates per agent and per capability. On SQLite and PostgreSQL.

mod common;

use common::{World, fail, ok};
use events::agent::Slo;
use projections::health::{COOL_DOWN_MS, FAST_WINDOW_MS};
use projections::{HealthReader, HealthStatus, ProjectionName};

const T0: i64 = 1_700_000_000_000;
const S: i64 = 1_000;

async fn status(world: &World, at: i64) -> HealthStatus {
    world.projections().catch_up(ProjectionName::Health).await.unwrap();
    HealthReader::new(world.db.clone()).report_at("flaky", at).await.unwrap().status
}

async fn an_agent_fails_and_recovers_through_trials(world: World) {
    world.register("flaky", &["summarize"], Some(Slo { success_target: 0.9, latency_ms: 1_000 }), T0).await;
    for i in 0..5 {
        world.heartbeat("flaky", T0 + i * S).await;
        world.task("summarize", "fine", "alice", "flaky", ok(100), T0 + i * S).await;
    }
    assert_eq!(status(&world, T0 + 6 * S).await, HealthStatus::Healthy);

    // It starts failing: three in a row and it is out.
    for i in 10..13 {
        world.heartbeat("flaky", T0 + i * S).await;
        world.task("summarize", "broken", "alice", "flaky", fail(), T0 + i * S).await;
    }
    let failed_at = T0 + 12 * S + 15; // the last failure's event time
    let now = T0 + 13 * S;
    assert_eq!(status(&world, now).await, HealthStatus::Unhealthy);
    assert!(!HealthStatus::Unhealthy.is_selectable());
    world.heartbeat("flaky", T0 + 30 * S).await;
    assert_eq!(status(&world, failed_at + COOL_DOWN_MS - 1).await, HealthStatus::Unhealthy);

    // Cool-down over: half-open, selectable for one trial.
    let trial_at = failed_at + COOL_DOWN_MS + S;
    world.heartbeat("flaky", trial_at).await;
    let half_open = status(&world, trial_at).await;
    assert_eq!(half_open, HealthStatus::HalfOpen);
    assert!(half_open.is_selectable());

    // The trial fails: unhealthy again, a new cool-down.
    world.task("summarize", "trial 1", "alice", "flaky", fail(), trial_at - 3).await;
    assert_eq!(status(&world, trial_at + 5 * S).await, HealthStatus::Unhealthy);
    let second_failure = trial_at - 3 + 15;
    let retry_at = second_failure + COOL_DOWN_MS + S;
    world.heartbeat("flaky", retry_at).await;
    assert_eq!(status(&world, retry_at).await, HealthStatus::HalfOpen);

    // While the second trial runs, the agent is not selected again.
    world
        .task("summarize", "trial 2", "alice", "flaky", common::Outcome::CancelledBeforeMatching, retry_at)
        .await;
    // (a cancelled task before matching is no trial; now a real one that succeeds)
    world.task("summarize", "trial 2", "alice", "flaky", ok(200), retry_at - 3).await;
    let report = HealthReader::new(world.db.clone());
    world.projections().catch_up(ProjectionName::Health).await.unwrap();
    let back = report.report_at("flaky", retry_at + 2 * S).await.unwrap();
    assert_eq!(back.status, HealthStatus::Healthy, "{back:?}");
    assert_eq!(back.record.as_ref().map(|r| r.consecutive_failures), Some(0));

    // Heartbeats stop: degraded after 15 s, unhealthy after 60 s; one heartbeat restores it.
    assert_eq!(status(&world, retry_at + 20 * S).await, HealthStatus::Degraded);
    assert_eq!(status(&world, retry_at + 61 * S).await, HealthStatus::Unhealthy);
    world.heartbeat("flaky", retry_at + 62 * S).await;
    assert_eq!(status(&world, retry_at + 63 * S).await, HealthStatus::Healthy);

    // SLOs: within the slow window everything counts; the fast window only the last minutes.
    let slo = report.agent_slo_at("flaky", retry_at + 2 * S).await.unwrap();
    assert_eq!(slo.success_target, 0.9);
    assert_eq!((slo.slow.good, slo.slow.bad), (6, 4), "{slo:?}");
    let compliance = slo.slow.compliance.unwrap();
    assert!((compliance - 0.6).abs() < 1e-9);
    assert!((slo.slow.burn_rate.unwrap() - 4.0).abs() < 1e-9, "40% bad over a 10% budget burns at 4x");
    assert_eq!((slo.fast.good, slo.fast.bad), (6, 4), "the whole story fits in the fast window");
    let later = report.agent_slo_at("flaky", retry_at + FAST_WINDOW_MS + 2 * 60 * S).await.unwrap();
    assert_eq!((later.fast.good, later.fast.bad, later.fast.compliance), (0, 0, None), "{later:?}");
    assert_eq!((later.slow.good, later.slow.bad), (6, 4));
    let capability = report.capability_slo_at("summarize", retry_at + 2 * S).await.unwrap();
    assert_eq!((capability.slow.good, capability.slow.bad), (6, 4));
    let unknown = report.report_at("nobody", T0).await.unwrap();
    assert_eq!(unknown.status, HealthStatus::Healthy);

    // Rebuilding gives the same health.
    let projections = world.projections();
    let before = projections.digest(ProjectionName::Health).await.unwrap();
    projections.rebuild(ProjectionName::Health).await.unwrap();
    assert_eq!(projections.digest(ProjectionName::Health).await.unwrap(), before);
}

async fn slow_successes_degrade_with_hysteresis(world: World) {
    world.register("flaky", &["summarize"], Some(Slo { success_target: 0.99, latency_ms: 1_000 }), T0).await;
    for i in 0..3 {
        world.task("summarize", "slow", "alice", "flaky", ok(5_000), T0 + i * S).await;
    }
    assert_eq!(status(&world, T0 + 5 * S).await, HealthStatus::Degraded, "slower than the SLO");
    // Fast again: the running latency must fall under 80% of the SLO and the error rate under
    // 0.1 before it is healthy; one fast task is not enough.
    world.task("summarize", "fast", "alice", "flaky", ok(100), T0 + 10 * S).await;
    assert_eq!(status(&world, T0 + 11 * S).await, HealthStatus::Degraded);
    for i in 0..30 {
        world.task("summarize", "fast", "alice", "flaky", ok(100), T0 + (20 + i) * S).await;
    }
    assert_eq!(status(&world, T0 + 60 * S).await, HealthStatus::Healthy);
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

on_both!(an_agent_fails_and_recovers_through_trials, slow_successes_degrade_with_hysteresis);
