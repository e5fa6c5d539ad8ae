//! An idle federation's log stays still: `pantheon up`'s hosted agents beat into the liveness
//! table, and the log records each agent's liveness once, not a beat every interval.

mod common;

use std::time::Duration;

use common::{pantheon, up_with_gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_federation_records_liveness_once_and_no_beats() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _base, _client) = up_with_gateway(dir.path()).await;
    // Three heartbeat intervals of idleness.
    tokio::time::sleep(Duration::from_millis(3 * 5_000 + 1_000)).await;
    drop(up);

    let out = pantheon(dir.path()).args(["events", "read", "--all", "--limit", "10000"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let of_type = |kind: &str| events.iter().filter(|e| e["type"] == kind).collect::<Vec<_>>();
    assert!(of_type("agent_heartbeat").is_empty(), "no beat on the log");
    let changes = of_type("agent_liveness_changed");
    let registered = of_type("agent_registered");
    assert!(!registered.is_empty(), "the built-in agents are registered");
    // One `live` per hosted agent, however long the federation idles.
    let mut agents_live: Vec<&str> =
        changes.iter().map(|e| e["stream"].as_str().unwrap_or_default()).collect();
    agents_live.sort_unstable();
    let count = agents_live.len();
    agents_live.dedup();
    assert_eq!(agents_live.len(), count, "one change per agent: {changes:#?}");
    assert!(changes.iter().all(|e| e["data"]["liveness"] == "live"), "{changes:#?}");
    assert!(count >= 1, "the hosted agents were recorded live: {events:#?}");
}
