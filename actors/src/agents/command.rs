//! The `command` agent: runs a configured program — never through a shell, the program and
//! its arguments passed as they are — with the task as JSON on stdin, and answers with its
//! stdout (as JSON when it parses, else as a string). A timeout kills it; output beyond the
//! limit, or a non-zero exit (with an excerpt of stderr), fails the attempt.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use events::TaskEnvelope;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{AgentFailure, Progress, Worker};
use crate::config::CommandConfig;

/// How much of stderr a failure quotes.
pub const STDERR_EXCERPT_BYTES_MAX: usize = 512;

/// The command worker.
#[derive(Clone, Debug)]
pub struct CommandAgent {
    config: CommandConfig,
}

impl CommandAgent {
    /// A worker running `config.program`.
    pub fn new(config: CommandConfig) -> Self {
        Self { config }
    }
}

/// How much of stderr is read for the excerpt.
const STDERR_READ_BYTES_MAX: usize = STDERR_EXCERPT_BYTES_MAX * 4;

/// The start of stderr for a failure reason that is recorded: secrets and personal data
/// redacted (see [`crate::scrubbed_excerpt`]).
fn excerpt(bytes: &[u8]) -> String {
    crate::scrubbed_excerpt(bytes, STDERR_EXCERPT_BYTES_MAX, bytes.len() >= STDERR_READ_BYTES_MAX)
}

#[async_trait]
impl Worker for CommandAgent {
    async fn work(
        &self,
        envelope: &TaskEnvelope,
        progress: &mpsc::Sender<Progress>,
    ) -> Result<serde_json::Value, AgentFailure> {
        let task = serde_json::json!({
            "task_id": envelope.task_id,
            "attempt": envelope.attempt,
            "capability": envelope.capability,
            "description": envelope.description,
            "input": envelope.input,
            "context": envelope.context,
        });
        let program = &self.config.program;
        let mut command = tokio::process::Command::new(program);
        command
            .args(&self.config.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so that what it starts (`sh -c "…"`'s children) is stopped
        // with it when it times out or the attempt is abandoned.
        #[cfg(unix)]
        command.process_group(0);
        let mut child =
            command.spawn().map_err(|e| AgentFailure::agent(format!("cannot start {program:?}: {e}")))?;
        let mut group = GroupGuard { leader: child.id() };
        let _ = progress.try_send(Progress { percent: None, message: format!("started {program}") });
        let limit = self.config.output_bytes_max;
        let mut stdin = child.stdin.take();
        let mut stdout = child.stdout.take().ok_or_else(|| AgentFailure::agent("no stdout pipe"))?;
        let mut stderr = child.stderr.take().ok_or_else(|| AgentFailure::agent("no stderr pipe"))?;
        let input = serde_json::to_vec(&task).unwrap_or_default();
        let run = async {
            let feed = async {
                if let Some(mut stdin) = stdin.take() {
                    // A program that does not read its stdin closes the pipe: not an error.
                    let _ = stdin.write_all(&input).await;
                    let _ = stdin.shutdown().await;
                }
            };
            let mut out = Vec::new();
            let read_out = async {
                let mut limited = (&mut stdout).take(u64::try_from(limit).unwrap_or(u64::MAX) + 1);
                limited.read_to_end(&mut out).await
            };
            let mut err = Vec::new();
            let read_err = async {
                let mut limited = (&mut stderr).take(STDERR_READ_BYTES_MAX as u64);
                limited.read_to_end(&mut err).await
            };
            let ((), out_result, _) = tokio::join!(feed, read_out, read_err);
            out_result.map_err(|e| AgentFailure::agent(format!("reading {program:?}'s output: {e}")))?;
            if out.len() > limit {
                return Err(AgentFailure::agent(format!(
                    "{program:?} wrote more than {limit} bytes to stdout"
                )));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| AgentFailure::agent(format!("waiting for {program:?}: {e}")))?;
            // Reaped: its id may be reused from now on, so the group is left alone.
            group.leader = None;
            if !status.success() {
                return Err(AgentFailure::agent(format!(
                    "{program:?} exited with {status}: {}",
                    excerpt(&err)
                )));
            }
            Ok(out)
        };
        let out = match tokio::time::timeout(Duration::from_millis(self.config.timeout_ms), run).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(AgentFailure::agent(format!(
                    "{program:?} did not finish within {} ms and was killed",
                    self.config.timeout_ms
                )));
            }
        };
        let text = String::from_utf8_lossy(&out);
        Ok(serde_json::from_str(&text)
            .unwrap_or_else(|_| serde_json::Value::String(text.trim_end().to_string())))
    }
}

/// Kills the process group of a program that did not finish (timed out, or its attempt was
/// dropped) — the program and whatever it started — when dropped while still armed.
struct GroupGuard {
    /// The group's leader (the program), until it is reaped.
    leader: Option<u32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(leader) = self.leader.take() {
            // `kill -KILL -- -<pgid>`: the group, not just the leader (which `kill_on_drop`
            // stops). The workspace forbids `unsafe`, so no direct `killpg`.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{leader}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> TaskEnvelope {
        TaskEnvelope {
            task_id: events::TaskId::new(),
            attempt: 1,
            agent_id: events::AgentId::new("cmd").unwrap(),
            capability: "cmd".into(),
            description: "count".into(),
            input: serde_json::json!({"a": 1}),
            context: serde_json::json!({}),
            issued_at_ms: 0,
            expires_at_ms: i64::MAX,
        }
    }

    fn agent(program: &str, args: &[&str]) -> CommandAgent {
        CommandAgent::new(CommandConfig {
            program: program.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            timeout_ms: 2_000,
            output_bytes_max: 1_000,
        })
    }

    #[tokio::test]
    async fn runs_without_a_shell_and_reports_failures() {
        let (tx, _rx) = mpsc::channel(16);
        // stdin reaches the program; stdout comes back as JSON when it parses.
        let out = agent("cat", &[]).work(&envelope(), &tx).await.unwrap();
        assert_eq!(out["input"]["a"], 1);
        // Arguments are not interpolated by a shell.
        let out = agent("echo", &["$HOME", ";", "ls"]).work(&envelope(), &tx).await.unwrap();
        assert_eq!(out, serde_json::json!("$HOME ; ls"));
        // Non-zero exit quotes stderr.
        let failure = agent("sh", &["-c", "echo boom >&2; exit 3"]).work(&envelope(), &tx).await.unwrap_err();
        assert!(failure.reason.contains("boom") && failure.reason.contains('3'), "{}", failure.reason);
        // Output limit.
        let failure = agent("head", &["-c", "5000", "/dev/zero"]).work(&envelope(), &tx).await.unwrap_err();
        assert!(failure.reason.contains("more than 1000 bytes"), "{}", failure.reason);
        // Timeout.
        let mut slow = agent("sleep", &["5"]);
        slow.config.timeout_ms = 100;
        let failure = slow.work(&envelope(), &tx).await.unwrap_err();
        assert!(failure.reason.contains("did not finish"), "{}", failure.reason);
        // A missing program.
        let failure = agent("/nonexistent/program", &[]).work(&envelope(), &tx).await.unwrap_err();
        assert!(failure.reason.contains("cannot start"), "{}", failure.reason);
    }

    /// A program that times out is stopped with what it started: `sh -c` leaves no
    /// background `sleep` running.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_timed_out_program_is_stopped_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let mut slow = agent("sh", &["-c", &script]);
        slow.config.timeout_ms = 500;
        let (tx, _rx) = mpsc::channel(16);
        let failure = slow.work(&envelope(), &tx).await.unwrap_err();
        assert!(failure.reason.contains("was killed"), "{}", failure.reason);
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
        // Gone, or a zombie waiting for its new parent to reap it: not sleeping on.
        let started = std::time::Instant::now();
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            let running = state.as_deref().is_some_and(|stat| {
                stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
            });
            if !running {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the child {pid} still runs: {state:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
