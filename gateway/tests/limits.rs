//! Rate limits per principal and per address: 429 with `Retry-After` and a JSON body; limits by
//! role and by subject, and none for trusted services, from the auth config.

mod common;

use common::{TestGateway, assert_error, token};
use gateway::{Limit, RateLimitsFile};

#[tokio::test]
async fn the_principal_limit_answers_429_with_retry_after() {
    let mut config = common::config();
    config.rate_limits.per_principal = Limit::Rate { per_s: 1, burst: 3 };
    let gw = TestGateway::start_with(config).await;
    let viewer = token("viewer", &["viewer"]);
    for _ in 0..3 {
        assert_eq!(gw.get("/tasks", &viewer).await.status(), 200);
    }
    let refused = gw.get("/tasks", &viewer).await;
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    let body = assert_error(refused, 429, "rate_limited").await;
    assert!(body["error"]["retry_after_s"].as_u64().is_some());
    // Another principal has its own bucket.
    assert_eq!(gw.get("/tasks", &token("another-viewer", &["viewer"])).await.status(), 200);
    // And the bucket refills.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(gw.get("/tasks", &viewer).await.status(), 200);
}

#[tokio::test]
async fn the_address_limit_applies_before_authentication() {
    let mut config = common::config();
    config.rate_limits.per_ip = Limit::Rate { per_s: 1, burst: 2 };
    let gw = TestGateway::start_with(config).await;
    // The start-up probe used some of the burst: let it refill.
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    // Two bad-token requests use the address's burst …
    for _ in 0..2 {
        assert_eq!(gw.get("/tasks", "garbage").await.status(), 401);
    }
    // … so even a valid token from that address now waits.
    let refused = gw.get("/tasks", &token("viewer", &["viewer"])).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_error(refused, 429, "rate_limited").await;
    let health = gw.http.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 429);
}

#[tokio::test]
async fn limits_by_role_and_subject_and_none_for_a_trusted_service() {
    let file: RateLimitsFile = serde_json::from_value(serde_json::json!({
        "per_principal": {"per_s": 1, "burst": 2},
        "roles": {"producer": {"per_s": 1, "burst": 5}, "service": "unlimited"},
        "subjects": {"batch-job": {"per_s": 1, "burst": 3}},
        "per_ip": "unlimited"
    }))
    .unwrap();
    let mut config = common::config();
    config.rate_limits = file.limits().unwrap();
    let gw = TestGateway::start_with(config).await;
    // How many requests in a row each principal gets before a 429.
    let allowed = |token: String| {
        let gw = &gw;
        async move {
            for n in 0..50 {
                if gw.get("/tasks", &token).await.status() == 429 {
                    return n;
                }
            }
            50
        }
    };
    assert_eq!(allowed(token("a-viewer", &["viewer"])).await, 2, "the default");
    assert_eq!(allowed(token("a-producer", &["viewer", "producer"])).await, 5, "the role's");
    // The most generous role wins; a subject's own limit comes before any role's.
    assert_eq!(allowed(token("a-service", &["viewer", "producer", "service"])).await, 50, "unlimited");
    assert_eq!(allowed(token("batch-job", &["viewer", "service"])).await, 3, "the subject's");
}

#[test]
fn a_limit_that_is_not_one_is_refused_with_where_it_is() {
    let bad = |value: serde_json::Value| {
        serde_json::from_value::<RateLimitsFile>(value)
            .map_err(|e| e.to_string())
            .and_then(|f| f.limits())
            .unwrap_err()
    };
    let error = bad(serde_json::json!({"roles": {"producer": {"per_s": 0}}}));
    assert!(error.contains("rate_limits.roles.producer") && error.contains("at least 1"), "{error}");
    let error = bad(serde_json::json!({"per_principal": "lots"}));
    assert!(error.contains("rate_limits.per_principal") && error.contains("unlimited"), "{error}");
    assert!(!bad(serde_json::json!({"per_ip": {"per_s": 5, "extra": 1}})).is_empty());
}

#[test]
fn the_readmes_auth_config_with_rate_limits_loads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let block = readme
        .split("```json")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains("rate_limits"))
        .expect("the README shows an auth config with rate limits");
    let file: gateway::auth::AuthFile = serde_json::from_str(block).unwrap();
    let config = gateway::AuthConfig::from_auth_file(file).unwrap();
    let limits = config.rate_limits.expect("rate limits");
    assert_eq!(limits.for_principal("someone", ["ingest", "producer"]), Limit::Unlimited);
    assert_eq!(limits.for_principal("nightly-report", ["ingest"]), Limit::Rate { per_s: 5, burst: 20 });
    assert_eq!(limits.for_principal("someone", ["viewer"]), Limit::Rate { per_s: 200, burst: 400 });
}
