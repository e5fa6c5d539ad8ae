//! Rate limits per principal and per address: 429 with `Retry-After` and a JSON body.

mod common;

use common::{TestGateway, assert_error, token};

#[tokio::test]
async fn the_principal_limit_answers_429_with_retry_after() {
    let mut config = common::config();
    config.rate_limits.per_principal_per_s = 1;
    config.rate_limits.per_principal_burst = 3;
    let gw = TestGateway::start_with(config).await;
    let alice = token("alice", &["viewer"]);
    for _ in 0..3 {
        assert_eq!(gw.get("/tasks", &alice).await.status(), 200);
    }
    let refused = gw.get("/tasks", &alice).await;
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    let body = assert_error(refused, 429, "rate_limited").await;
    assert!(body["error"]["retry_after_s"].as_u64().is_some());
    // Another principal has its own bucket.
    assert_eq!(gw.get("/tasks", &token("bob", &["viewer"])).await.status(), 200);
    // And the bucket refills.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(gw.get("/tasks", &alice).await.status(), 200);
}

#[tokio::test]
async fn the_address_limit_applies_before_authentication() {
    let mut config = common::config();
    config.rate_limits.per_ip_per_s = 1;
    config.rate_limits.per_ip_burst = 2;
    let gw = TestGateway::start_with(config).await;
    // The start-up probe used some of the burst: let it refill.
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    // Two bad-token requests use the address's burst …
    for _ in 0..2 {
        assert_eq!(gw.get("/tasks", "garbage").await.status(), 401);
    }
    // … so even a valid token from that address now waits.
    let refused = gw.get("/tasks", &token("alice", &["viewer"])).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 429, "rate_limited").await;
    let health = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 429);
}
