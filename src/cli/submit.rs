//! `pantheon submit <capability> <description>`: appends a task signed with the federation key
//! (channel `local`), and with `--wait` follows it until it ends and prints the result.
//!
//! On the embedded default `submit` and `up` are two processes sharing the SQLite file: `up`
//! looks for new submissions every 50 ms. When nothing picks the task up within
//! [`PICKUP_WARN_MS`], `--wait` says so (is `pantheon up` running on this data dir?) and keeps
//! waiting: the task stays queued and runs when `up` starts.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use events::task::{Channel, TaskStatus};
use events::{TaskSpec, TaskState};

use super::up::{BackendArgs, federation_key, open_backend};
use crate::Cli;

/// How long `--wait` waits for the pipeline to take a task before warning that nothing seems
/// to be processing.
pub(crate) const PICKUP_WARN_MS: u64 = 5_000;

/// How often `--wait` reads the task.
const WAIT_POLL_MS: u64 = 20;

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// The capability needed, e.g. `echo`.
    pub(crate) capability: String,
    /// What to do, in words; `-` reads it from standard input.
    pub(crate) description: String,
    /// Input data for the agent, as JSON; `@FILE` reads it from a file, `-` from standard
    /// input (for more than a command line holds).
    #[arg(long)]
    pub(crate) input: Option<String>,
    /// The task's deadline from submission, e.g. `30s`, `2m`. Default: 30s.
    #[arg(long)]
    pub(crate) timeout: Option<humantime::Duration>,
    /// Attempts at most (the first plus retries). Default: 3.
    #[arg(long)]
    pub(crate) max_attempts: Option<u32>,
    /// Wait until the task ends and print its result.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Print JSON (for scripts).
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

fn spinner_frame(tick: usize) -> char {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    FRAMES[tick % FRAMES.len()]
}

pub(crate) async fn run(cli: &Cli, args: &SubmitArgs) -> anyhow::Result<()> {
    if args.description == "-" && args.input.as_deref() == Some("-") {
        bail!("only one of the description and --input can come from standard input");
    }
    let read_stdin = || -> anyhow::Result<String> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read standard input")?;
        Ok(text)
    };
    let description = if args.description == "-" {
        read_stdin()?.trim_end_matches(['\n', '\r']).to_string()
    } else {
        args.description.clone()
    };
    let mut spec = TaskSpec::new(args.capability.clone(), description);
    if let Some(input) = &args.input {
        let text = match input.as_str() {
            "-" => read_stdin()?,
            file if file.starts_with('@') => std::fs::read_to_string(&file[1..])
                .with_context(|| format!("cannot read the input file {}", &file[1..]))?,
            json => json.to_string(),
        };
        spec.input = serde_json::from_str(&text).context("--input must be JSON")?;
    }
    if let Some(timeout) = args.timeout {
        spec.timeout_ms = u64::try_from(Duration::from(timeout).as_millis()).unwrap_or(u64::MAX);
    }
    if let Some(max_attempts) = args.max_attempts {
        spec.max_attempts = max_attempts;
    }
    spec.submitter = "cli".into();
    let timeout_ms = spec.timeout_ms;
    let backend = open_backend(cli, &args.backend).await?;
    let key = federation_key(cli)?;
    let task_id = actors::client::submit(backend.log.as_ref(), &key, spec, Channel::Local, "cli").await?;
    if !args.wait {
        if args.json {
            out!("{}", serde_json::json!({ "task_id": task_id }));
        } else {
            out!("{task_id}");
        }
        return Ok(());
    }

    let terminal = std::io::stdout().is_terminal() && !args.json;
    let started = tokio::time::Instant::now();
    let mut warned = false;
    let mut tick = 0usize;
    // Wait a little past the deadline: the pipeline records the failure at the deadline.
    let wait_for = Duration::from_millis(timeout_ms.saturating_add(10_000));
    let state: TaskState = loop {
        let state = actors::client::task_state(backend.log.as_ref(), task_id).await?;
        if state.status.is_final() {
            break state;
        }
        let elapsed = started.elapsed();
        if !warned && state.status == TaskStatus::Submitted && elapsed > Duration::from_millis(PICKUP_WARN_MS)
        {
            warned = true;
            if terminal {
                eprint!("\r\x1b[2K");
            }
            eprintln!(
                "nothing has picked up task {task_id} after {} s: is `pantheon up` running on {}? \
                 The task stays queued and runs when it starts.",
                PICKUP_WARN_MS / 1_000,
                backend.description
            );
        }
        if elapsed > wait_for {
            bail!("gave up waiting for task {task_id}: still {} after {} s", state.status, elapsed.as_secs());
        }
        if terminal {
            tick += 1;
            eprint!("\r\x1b[2K{} {task_id} {}", spinner_frame(tick), state.status);
            let _ = std::io::stderr().flush();
        }
        tokio::time::sleep(Duration::from_millis(WAIT_POLL_MS)).await;
    };
    if terminal {
        eprint!("\r\x1b[2K");
    }
    let elapsed_ms = started.elapsed().as_millis();
    if args.json {
        out!(
            "{}",
            serde_json::json!({
                "task_id": task_id,
                "status": state.status,
                "output": state.output,
                "reason": state.end_reason,
                "agent_id": state.agent_id,
                "events": state.version,
                "elapsed_ms": elapsed_ms,
            })
        );
        if state.status != TaskStatus::Completed {
            std::process::exit(1);
        }
        return Ok(());
    }
    match state.status {
        TaskStatus::Completed => {
            match &state.output {
                Some(serde_json::Value::String(text)) => out!("{text}"),
                Some(value) => out!("{}", serde_json::to_string_pretty(value)?),
                None => out!("null"),
            }
            Ok(())
        }
        status => bail!(
            "task {task_id} {status}: {}\n(see `pantheon replay {task_id}`)",
            state.end_reason.unwrap_or_else(|| "no reason recorded".into())
        ),
    }
}
