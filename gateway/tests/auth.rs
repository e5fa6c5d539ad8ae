//! Every way a token can be wrong ends as the same 401 JSON; valid HS256, RS256 and EdDSA
//! tokens (PEM keys and a JWKS file) pass; roles map to permissions.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{SECRET, TestGateway, assert_error, fixture, token};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: serde_json::Value, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "roles": ["viewer"], "exp": now() + 600})
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&std::fs::read(fixture("rs256.key.pem")).unwrap()).unwrap()
}

fn ed_key() -> EncodingKey {
    EncodingKey::from_ed_pem(&std::fs::read(fixture("ed25519.key.pem")).unwrap()).unwrap()
}

async fn status_of(gw: &TestGateway, token: &str) -> reqwest::Response {
    gw.get("/tasks", token).await
}

async fn assert_refused(gw: &TestGateway, token: &str) {
    let response = status_of(gw, token).await;
    assert_eq!(response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let body = assert_error(response, 401, "unauthenticated").await;
    // Nothing else revealed: one message for every failure.
    assert_eq!(
        body,
        json!({"error": {"code": "unauthenticated", "message": "a valid bearer token is required"}})
    );
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_pass() {
    let gw = TestGateway::start().await;
    assert_eq!(status_of(&gw, &token("a", &["viewer"])).await.status(), 200);
    assert_eq!(status_of(&gw, &sign(Algorithm::RS256, &rsa_key(), claims("r"), None)).await.status(), 200);
    assert_eq!(status_of(&gw, &sign(Algorithm::EdDSA, &ed_key(), claims("e"), None)).await.status(), 200);
}

#[tokio::test]
async fn bad_tokens_are_401_and_reveal_nothing() {
    let gw = TestGateway::start().await;
    let response = gw.http.get(gw.url("/tasks")).send().await.unwrap();
    assert_error(response, 401, "unauthenticated").await;
    let basic = gw
        .http
        .get(gw.url("/tasks"))
        .header("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
        .send()
        .await
        .unwrap();
    assert_error(basic, 401, "unauthenticated").await;
    // Malformed.
    assert_refused(&gw, "not-a-jwt").await;
    assert_refused(&gw, "a.b.c").await;
    // alg: none, with and without a signature.
    let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = B64.encode(
        serde_json::to_vec(&json!({"sub": "mallory", "roles": ["admin"], "exp": now() + 600})).unwrap(),
    );
    assert_refused(&gw, &format!("{header}.{payload}.")).await;
    assert_refused(&gw, &format!("{header}.{payload}")).await;
    // Bad signature: signed with another secret; and a valid token with its payload swapped.
    let forged = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another secret, not the gateway's"),
        claims("m"),
        None,
    );
    assert_refused(&gw, &forged).await;
    let good = token("alice", &["viewer"]);
    let parts: Vec<&str> = good.split('.').collect();
    assert_refused(&gw, &format!("{}.{}.{}", parts[0], payload, parts[2])).await;
    // Algorithm confusion: HS256 keyed with the RS256 public key the gateway trusts.
    let public_pem = std::fs::read(fixture("rs256.pub.pem")).unwrap();
    assert_refused(&gw, &sign(Algorithm::HS256, &EncodingKey::from_secret(&public_pem), claims("m"), None))
        .await;
    // An algorithm no key is configured for (HS384 with the right secret).
    assert_refused(&gw, &sign(Algorithm::HS384, &EncodingKey::from_secret(SECRET), claims("m"), None)).await;
    // Expired beyond the leeway; not yet valid beyond the leeway; no exp; no sub.
    let expired = json!({"sub": "a", "roles": ["viewer"], "exp": now() - 120});
    assert_refused(&gw, &sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), expired, None)).await;
    let early = json!({"sub": "a", "roles": ["viewer"], "exp": now() + 600, "nbf": now() + 300});
    assert_refused(&gw, &sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), early, None)).await;
    let no_exp = json!({"sub": "a", "roles": ["viewer"]});
    assert_refused(&gw, &sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), no_exp, None)).await;
    let no_sub = json!({"roles": ["viewer"], "exp": now() + 600});
    assert_refused(&gw, &sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), no_sub, None)).await;
    // Within the leeway (30 s) an expired token still passes.
    let fresh = json!({"sub": "a", "roles": ["viewer"], "exp": now() - 5});
    assert_eq!(
        status_of(&gw, &sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), fresh, None))
            .await
            .status(),
        200
    );
    // Oversized token.
    assert_refused(&gw, &"a".repeat(20_000)).await;
}

#[tokio::test]
async fn issuer_audience_and_jwks_are_enforced() {
    let file = gateway::AuthFile {
        issuer: Some("https://id.test/".into()),
        audience: Some("pantheon".into()),
        roles_claim: Some("realm.roles".into()),
        jwks_file: Some(fixture("jwks.json")),
        ..Default::default()
    };
    let mut config = common::config();
    config.auth = gateway::AuthConfig::from_auth_file(file).unwrap();
    let gw = TestGateway::start_with(config).await;
    let good = |extra: serde_json::Value| {
        let mut c = json!({"sub": "s", "realm": {"roles": ["viewer"]}, "exp": now() + 600, "iss": "https://id.test/", "aud": "pantheon"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    assert_eq!(
        status_of(&gw, &sign(Algorithm::RS256, &rsa_key(), good(json!({})), Some("rsa-1"))).await.status(),
        200
    );
    assert_eq!(
        status_of(&gw, &sign(Algorithm::EdDSA, &ed_key(), good(json!({})), Some("ed-1"))).await.status(),
        200
    );
    assert_refused(&gw, &sign(Algorithm::RS256, &rsa_key(), good(json!({"iss": "https://evil/"})), None))
        .await;
    assert_refused(&gw, &sign(Algorithm::RS256, &rsa_key(), good(json!({"aud": "other"})), None)).await;
    // A kid naming another key.
    assert_refused(&gw, &sign(Algorithm::RS256, &rsa_key(), good(json!({})), Some("ed-1"))).await;
    // The nested roles claim grants viewer (read) but not submit.
    let token = sign(Algorithm::EdDSA, &ed_key(), good(json!({})), None);
    let response =
        gw.post_json("/tasks/submit", &token, json!({"capability": "echo", "description": "x"})).await;
    assert_error(response, 403, "forbidden").await;
    // HS256 is not configured in this deployment.
    assert_refused(&gw, &common::token("s", &["admin"])).await;
}

#[tokio::test]
async fn roles_map_to_permissions() {
    let gw = TestGateway::start().await;
    let body = json!({"capability": "echo", "description": "x"});
    assert_error(
        gw.post_json("/tasks/submit", &token("v", &["viewer"]), body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        gw.post_json("/tasks/execute", &token("o", &["operator"]), body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    assert_error(
        gw.post_json("/tasks/submit", &token("n", &["unknown-role"]), body.clone()).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(gw.post_json("/tasks/submit", &token("p", &["producer"]), body.clone()).await.status(), 202);
    // Roles as a space-separated string also work.
    let spaced = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "s", "roles": "viewer producer", "exp": now() + 600}),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(gw.post_json("/tasks/submit", &spaced, body).await.status(), 202);
}

#[test]
fn dev_secret_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway-hs256.secret");
    let first = gateway::auth::load_or_create_secret(&path).unwrap();
    assert_eq!(first.len(), 64);
    assert_eq!(gateway::auth::load_or_create_secret(&path).unwrap(), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

/// The whole matrix: every default role (and a token with no known role) against every
/// endpoint, on its own task and on another principal's.
#[tokio::test]
async fn the_rbac_matrix_holds_for_every_role_and_endpoint() {
    let gw = TestGateway::start().await;
    let body = json!({"capability": "slow", "description": "x"});
    // A task of another principal's, and one of each role's own (where it may submit).
    let other: serde_json::Value = gw
        .post_json("/tasks/submit", &token("someone-else", &["producer"]), body.clone())
        .await
        .json()
        .await
        .unwrap();
    let other = other["task_id"].as_str().unwrap().to_string();
    // (role, may submit, reads own, reads all, cancels, admin)
    let matrix: [(&str, bool, bool, bool, bool, bool); 5] = [
        ("admin", true, true, true, true, true),
        ("operator", false, true, true, true, false),
        ("producer", true, true, false, true, false),
        ("viewer", false, true, false, false, false),
        ("no-such-role", false, false, false, false, false),
    ];
    for (role, submit, read_own, read_all, cancel, admin) in matrix {
        let who = format!("a-{role}");
        let t = token(&who, &[role]);
        let allowed = |ok: bool| if ok { "allowed" } else { "refused" };
        let status = |code: u16| if (200..300).contains(&code) { "allowed" } else { "refused" };
        // Submitting and executing.
        let submitted = gw.post_json("/tasks/submit", &t, body.clone()).await;
        assert_eq!(status(submitted.status().as_u16()), allowed(submit), "{role}: submit");
        let own = if submit {
            let v: serde_json::Value = submitted.json().await.unwrap();
            Some(v["task_id"].as_str().unwrap().to_string())
        } else {
            assert_eq!(submitted.status(), 403, "{role}: submit refused with 403");
            None
        };
        let execute = gw
            .post_json(
                "/tasks/execute",
                &t,
                json!({"capability": "slow", "description": "x", "timeout_ms": 1}),
            )
            .await;
        if !submit {
            assert_eq!(execute.status(), 403, "{role}: execute");
        }
        // Reading: a task of another principal is there only for read_all (else 404: its
        // existence is not revealed); its own, for read_own.
        for path in [format!("/tasks/{other}"), format!("/tasks/{other}/events")] {
            let code = gw.get(&path, &t).await.status().as_u16();
            assert_eq!(status(code), allowed(read_all), "{role}: GET {path}");
            if !read_all {
                assert!(code == 404 || code == 403, "{role}: GET {path} answered {code}");
            }
        }
        if let Some(own) = &own {
            let code = gw.get(&format!("/tasks/{own}"), &t).await.status().as_u16();
            assert_eq!(status(code), allowed(read_own), "{role}: GET its own task");
        }
        let list = gw.get("/tasks", &t).await.status().as_u16();
        assert_eq!(status(list), allowed(read_own || read_all), "{role}: GET /tasks");
        // The agents and the metrics.
        assert_eq!(
            status(gw.get("/agents", &t).await.status().as_u16()),
            allowed(read_all),
            "{role}: GET /agents"
        );
        assert_eq!(
            status(gw.get("/metrics", &t).await.status().as_u16()),
            allowed(admin),
            "{role}: GET /metrics"
        );
        // Managing agents: operators and admins.
        let manages = role == "admin" || role == "operator";
        let registration = json!({
            "agent_id": format!("agent-of-{role}"),
            "capabilities": ["echo"],
            "public_key": "11".repeat(32),
            "transport": {"kind": "http", "url": "http://agents.internal/run"}
        });
        let code = gw.post_json("/agents", &t, registration).await.status().as_u16();
        assert_eq!(status(code), allowed(manages), "{role}: POST /agents answered {code}");
        let code =
            gw.post_json(&format!("/agents/agent-of-{role}/suspend"), &t, json!({})).await.status().as_u16();
        assert!(if manages { code == 200 } else { code == 403 }, "{role}: suspend answered {code}");
        // Dead-lettered webhooks: listed with read_all; redelivered by operators and admins (the
        // other's task asked for no webhook: 409 for them, 403 for everyone else).
        assert_eq!(
            status(gw.get("/webhooks/dead", &t).await.status().as_u16()),
            allowed(read_all),
            "{role}: GET /webhooks/dead"
        );
        let code =
            gw.post_json(&format!("/webhooks/dead/{other}/redeliver"), &t, json!({})).await.status().as_u16();
        assert!(if manages { code == 409 } else { code == 403 }, "{role}: redeliver answered {code}");
        // Cancelling another principal's task takes cancel and read_all; one's own, cancel.
        let code = gw.post_json(&format!("/tasks/{other}/cancel"), &t, json!({})).await.status().as_u16();
        let may_cancel_other = cancel && read_all;
        assert!(
            if may_cancel_other { code == 200 || code == 409 } else { code == 403 || code == 404 },
            "{role}: cancel another's task answered {code}"
        );
        if let Some(own) = &own {
            let code = gw.post_json(&format!("/tasks/{own}/cancel"), &t, json!({})).await.status().as_u16();
            assert_eq!(status(code), allowed(cancel), "{role}: cancel its own task");
        }
    }
}
