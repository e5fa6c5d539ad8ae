//! `pantheon keys`: an agent's key pair (the seed readable by its owner only, never
//! overwritten, the printed public key its own) and the federation's public key.

mod common;

use common::*;

use events::KeyPair;

#[test]
fn a_new_agent_key_and_the_federation_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.key");
    let out = pantheon(dir.path()).args(["keys", "new"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(printed.len(), 64, "{printed}");
    assert_eq!(
        KeyPair::load(&file).unwrap().public_key().to_string(),
        printed,
        "the printed key is the file's"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = pantheon(dir.path()).args(["keys", "new"]).arg(&file).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwritten"));
    assert_eq!(KeyPair::load(&file).unwrap().public_key().to_string(), printed, "left as it was");

    let data = dir.path().join("data");
    let missing = pantheon(&data).args(["keys", "federation"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no federation key"));
    std::fs::create_dir_all(&data).unwrap();
    let federation = KeyPair::generate();
    federation.save(&data.join("federation.key")).unwrap();
    let out = pantheon(&data).args(["keys", "federation", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["public_key"], federation.public_key().to_string());
    assert_eq!(answer["key_id"], federation.public_key().key_id());
    // The same by the name `pantheon federation key`.
    let out = pantheon(&data).args(["federation", "key"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), federation.public_key().to_string());
}
