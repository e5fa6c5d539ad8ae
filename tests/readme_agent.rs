//! The README's "Write an agent" section, run as written: its Python agent (a second
//! implementation of the agent protocol, with PyNaCl, blake3 and msgpack from the tests' venv)
//! and its shell commands, against a running `pantheon up`. The task must come back shouted:
//! the agent checked the federation's seal, and the federation checked the agent's signature.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Guard, free_port, pantheon};

/// The fenced block of `language` in the README that contains `marker`.
fn readme_block(language: &str, marker: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    readme
        .split(&format!("```{language}\n"))
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no {language} block with {marker:?} in the README"))
        .to_string()
}

#[test]
fn the_readmes_python_agent_answers_a_task() {
    let Some(venv) = testkit::nats_server::test_venv() else {
        eprintln!("\n!!!!!!!! SKIPPED: python3/pip could not make the tests' venv !!!!!!!!\n");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("agent.py"), readme_block("python", "# agent.py")).expect("agent.py");
    let up = pantheon(&dir.path().join(".pantheon"))
        .args(["up", "--http", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pantheon up starts");
    let _up = Guard(up);
    std::thread::sleep(Duration::from_secs(2));
    // The shell commands as written, in the data dir's parent (the default `.pantheon`), with
    // `pantheon` and the venv's `python` first on the PATH and the agent on a free port.
    let script = readme_block("sh", "agents register shouter")
        .replace("PORT=9000", "PORT=$AGENT_PORT")
        .replace("http://127.0.0.1:9000/", "http://127.0.0.1:$AGENT_PORT/")
        + "\nstatus=$?\nkill $AGENT_PID 2>/dev/null\nexit $status\n";
    let script = script.replace("python agent.py &", "python agent.py & AGENT_PID=$!; sleep 1");
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_pantheon"));
    let path = format!(
        "{}:{}:{}",
        binary.parent().expect("the binary's dir").display(),
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env("AGENT_PORT", free_port().to_string())
        .env_remove("PANTHEON_DATABASE_URL")
        .env_remove("PANTHEON_NATS_URL")
        .env_remove("PANTHEON_DATA_DIR")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the README's commands failed:\n{script}\n{stdout}\n{stderr}");
    assert!(stdout.trim_end().ends_with("HELLO!"), "{stdout}\n{stderr}");
}
