//! `pantheon config check` says what a deployment's configuration holds, or what is wrong and
//! where; `pantheon up` refuses to start on the same mistakes.

mod common;

use common::pantheon;

const CONFIG: &str = r#"
[[agents]]
id = "worker"
builtin = "command"
capabilities = ["work"]
command = { program = "cat" }

[webhooks]
allow = ["hooks.internal", "10.1.0.0/16"]
"#;

const AUTH: &str = r#"{"hs256_secrets": ["a-long-random-secret-of-the-deployment"],
  "rate_limits": {"roles": {"ingest": "unlimited"}}}"#;

#[test]
fn a_good_configuration_is_described() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("pantheon.toml"), CONFIG).unwrap();
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, AUTH).unwrap();
    let out = pantheon(dir.path()).args(["config", "check", "--auth-config"]).arg(&auth).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "config ok",
        "worker (work)",
        "hooks.internal, 10.1.0.0/16",
        "auth ok: 1 key(s)",
        "\"ingest\": Unlimited",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in {stdout}");
    }
}

#[test]
fn mistakes_are_named_and_up_refuses_them_too() {
    for (config, needle) in [
        (CONFIG.replace("10.1.0.0/16", "10.1.0.0/33"), "webhooks.allow"),
        (CONFIG.replace("[webhooks]", "[webhook]"), "webhook"),
        (CONFIG.replace("\"work\"", "\" \""), "worker"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("pantheon.toml"), &config).unwrap();
        let out = pantheon(dir.path()).args(["config", "check"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(needle), "{needle:?}: {stderr}");
        let up = pantheon(dir.path()).args(["up", "--http", "127.0.0.1:0"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&up.stderr);
        assert!(!up.status.success() && stderr.contains(needle), "up, {needle:?}: {stderr}");
    }
    // A rate limit that is not one, in the auth config.
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = dir.path().join("auth.json");
    std::fs::write(&auth, AUTH.replace("\"unlimited\"", "{\"per_s\": 0}")).unwrap();
    let out = pantheon(dir.path()).args(["config", "check", "--auth-config"]).arg(&auth).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("rate_limits.roles.ingest"), "{stderr}");
}
