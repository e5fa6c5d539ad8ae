//! `pantheon workflow`: register a definition (`register FILE`, YAML or JSON), start a run
//! (`run NAME|FILE --input @in.json --wait`), show a run's step table (`show RUN`), list runs
//! (`list --status running`), cancel one (`cancel RUN`). Through the log, as the gateway's
//! `/workflows` and `/runs` endpoints; a running `pantheon up` runs the steps.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use events::WorkflowId;
use workflow::{Start, StartRun};

use super::up::{BackendArgs, open_backend};
use crate::Cli;

#[derive(Debug, Args)]
pub(crate) struct WorkflowArgs {
    #[command(subcommand)]
    pub(crate) command: WorkflowCommand,
    /// Where the log is.
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WorkflowCommand {
    /// Register a definition (YAML or JSON): a new version when it differs from every
    /// registered one.
    Register {
        /// The definition file.
        file: std::path::PathBuf,
    },
    /// Start a run of a registered workflow (its latest version) or of a definition file
    /// (registered first).
    Run {
        /// A registered name, or a definition file.
        workflow: String,
        /// The run's input as JSON; `@FILE` reads it from a file.
        #[arg(long)]
        input: Option<String>,
        /// Wait for the run's end and print its step table and output.
        #[arg(long)]
        wait: bool,
        /// The most to wait, with `--wait`.
        #[arg(long, default_value = "10m")]
        timeout: humantime::Duration,
        /// A key that makes a repeated start answer the first run.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A run's status, output and step table (status, attempts, tasks, times).
    Show {
        /// The run.
        run: WorkflowId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Runs, oldest first.
    List {
        /// Only runs of this workflow.
        #[arg(long)]
        name: Option<String>,
        /// Only runs in this status (running, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
    },
    /// Approve a run's approval step: sends the signal it waits for, with `--payload` as the
    /// step's output.
    Approve {
        /// The run.
        run: WorkflowId,
        /// The approval step.
        step: String,
        /// The step's output, as JSON (default `{"approved": true}`).
        #[arg(long)]
        payload: Option<String>,
    },
    /// Send a signal to a run.
    Signal {
        /// The run.
        run: WorkflowId,
        /// The signal's name.
        name: String,
        /// What it carries, as JSON.
        #[arg(long)]
        payload: Option<String>,
    },
    /// Cancel a run: nothing starts after it, its running step tasks are cancelled.
    Cancel {
        /// The run.
        run: WorkflowId,
        /// Why.
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
    },
}

fn read_definition(path: &std::path::Path) -> anyhow::Result<events::workflow::Definition> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    workflow::parse(&text).map_err(|e| {
        if e.field.is_empty() {
            anyhow::anyhow!("{}: {}", path.display(), e.message)
        } else {
            anyhow::anyhow!("{}: {}: {}", path.display(), e.field, e.message)
        }
    })
}

fn refused(error: workflow::WorkflowError) -> anyhow::Error {
    match error {
        workflow::WorkflowError::Invalid { field, message } => anyhow::anyhow!("{field}: {message}"),
        other => other.into(),
    }
}

pub(crate) async fn run(cli: &Cli, args: &WorkflowArgs) -> anyhow::Result<()> {
    let backend = open_backend(cli, &args.backend).await?;
    let log = backend.log.as_ref();
    match &args.command {
        WorkflowCommand::Register { file } => {
            let registered = workflow::register(log, read_definition(file)?, "cli").await.map_err(refused)?;
            let what = if registered.created { "registered" } else { "already registered" };
            out!("{} version {} {what} (hash {})", registered.name, registered.version, registered.hash);
        }
        WorkflowCommand::Run { workflow: name, input, wait, timeout, idempotency_key, json } => {
            let what = if std::path::Path::new(name).is_file() {
                Start::Definition(Box::new(read_definition(std::path::Path::new(name))?))
            } else {
                Start::Named(name.clone(), None)
            };
            let input = match input.as_deref() {
                None => serde_json::Value::Null,
                Some(file) if file.starts_with('@') => {
                    let text = std::fs::read_to_string(&file[1..])
                        .with_context(|| format!("cannot read the input file {}", &file[1..]))?;
                    serde_json::from_str(&text).context("--input must be JSON")?
                }
                Some(text) => serde_json::from_str(text).context("--input must be JSON")?,
            };
            // A `pantheon up` just started may still be registering its agents: a capability
            // missing is looked for again for a few seconds before the run is refused.
            let registry = actors::Registry::new();
            let patience = tokio::time::Instant::now() + Duration::from_secs(5);
            let (run_id, _) = loop {
                registry.refresh(log).await?;
                let offered = Some(registry.capabilities().into_iter().collect());
                let request = StartRun {
                    what: what.clone(),
                    input: input.clone(),
                    submitter: "cli".into(),
                    idempotency_key: idempotency_key.clone(),
                    offered,
                    run_id: None,
                    parent: None,
                    webhook_url: None,
                };
                match workflow::start(log, request).await {
                    Err(workflow::WorkflowError::Invalid { field, .. })
                        if field == "steps" && tokio::time::Instant::now() < patience =>
                    {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    started => break started.map_err(refused)?,
                }
            };
            if !wait {
                if *json {
                    out!("{}", serde_json::json!({ "run_id": run_id }));
                } else {
                    out!("{run_id}");
                }
                return Ok(());
            }
            let run = workflow::wait(log, run_id, Duration::from(*timeout)).await?;
            print_run(log, &run, *json).await?;
            if !run.state.status.is_final() {
                bail!(
                    "run {run_id} did not end within {timeout} (is `pantheon up` running on this data dir?)"
                );
            }
            if run.state.status != events::WorkflowStatus::Completed {
                std::process::exit(1);
            }
        }
        WorkflowCommand::Show { run, json } => {
            let loaded = workflow::load_run(log, *run).await?;
            if loaded.version == 0 {
                bail!("no run {run}");
            }
            print_run(log, &loaded, *json).await?;
        }
        WorkflowCommand::List { name, status } => {
            const STATUSES: [&str; 4] = ["running", "completed", "failed", "cancelled"];
            if let Some(status) = status
                && !STATUSES.contains(&status.as_str())
            {
                bail!("--status must be one of {}, not {status:?}", STATUSES.join(", "));
            }
            // The runs view, brought up to the log first.
            let opened = crate::cli::projections::open(cli, &args.backend).await?;
            opened.projections.catch_up(projections::ProjectionName::Runs).await?;
            let reader = projections::RunReader::new(opened.db.clone());
            out!("{:<36}  {:<20}  {:<10}  {:<5}  STARTED", "RUN", "WORKFLOW", "STATUS", "STEPS");
            let mut from = 0;
            loop {
                let query = projections::RunQuery {
                    name: name.clone(),
                    status: status.clone(),
                    submitter: None,
                    from_position: from,
                    limit: projections::RUN_QUERY_LIMIT_MAX,
                };
                let page = reader.list(&query).await?;
                for run in &page {
                    out!(
                        "{:<36}  {:<20}  {:<10}  {:<5}  {}",
                        run.run_id,
                        run.name,
                        run.status,
                        format!("{}/{}", run.steps_done, run.steps),
                        humantime::format_rfc3339_millis(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_millis(
                                    u64::try_from(run.started_at_ms).unwrap_or(0)
                                )
                        )
                    );
                }
                match page.last() {
                    Some(last) if page.len() == projections::RUN_QUERY_LIMIT_MAX as usize => {
                        from = last.started_position + 1
                    }
                    _ => break,
                }
            }
        }
        WorkflowCommand::Approve { run, step, payload } => {
            let loaded = workflow::load_run(log, *run).await?;
            let Some(started) = &loaded.state.started else { bail!("no run {run}") };
            let Some(approval) = started.definition.step(step).and_then(|s| s.approval.clone()) else {
                bail!("run {run} has no approval step {step}");
            };
            let payload = match payload {
                Some(text) => serde_json::from_str(text).context("--payload must be JSON")?,
                None => serde_json::json!({ "approved": true }),
            };
            workflow::signal(log, *run, &approval.signal, Some(step), payload, "cli")
                .await
                .map_err(refused)?;
            out!("step {step} of run {run} approved");
        }
        WorkflowCommand::Signal { run, name, payload } => {
            let payload = match payload {
                Some(text) => serde_json::from_str(text).context("--payload must be JSON")?,
                None => serde_json::Value::Null,
            };
            workflow::signal(log, *run, name, None, payload, "cli").await.map_err(refused)?;
            out!("signal {name} sent to run {run}");
        }
        WorkflowCommand::Cancel { run, reason } => {
            workflow::cancel(log, *run, "cli", reason).await.map_err(refused)?;
            out!("cancel of run {run} recorded; a running `pantheon up` cancels its steps");
        }
    }
    Ok(())
}

/// Prints a run: JSON, or its status and a step table (with the agents its tasks ran on).
async fn print_run(log: &dyn events::EventLog, run: &workflow::LoadedRun, json: bool) -> anyhow::Result<()> {
    let Some(view) = gateway::routes::workflows::run_view(run) else { bail!("the run has no start") };
    if json {
        out!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    out!("run {}  {} v{}  {}", view.run_id, view.name, view.version, view.status);
    out!(
        "{:<20}  {:<10}  {:>8}  {:>6}  {:>10}  AGENT / REASON",
        "STEP",
        "STATUS",
        "ATTEMPTS",
        "ITEMS",
        "TOOK"
    );
    for step in &view.steps {
        let mut agents = std::collections::BTreeSet::new();
        for task in &step.tasks {
            if let Some(task_id) = task["task_id"].as_str().and_then(|t| t.parse::<events::TaskId>().ok())
                && let Some(agent) = actors::client::task_state(log, task_id).await?.agent_id
            {
                agents.insert(agent.to_string());
            }
        }
        let agents = agents.into_iter().collect::<Vec<_>>().join(",");
        let took = match (step.started_at_ms, step.ended_at_ms) {
            (Some(a), Some(b)) => format!("{} ms", b - a),
            _ => "-".into(),
        };
        let items = step.items.map_or_else(|| "-".to_string(), |n| n.to_string());
        out!(
            "{:<20}  {:<10}  {:>8}  {:>6}  {:>10}  {}",
            step.name,
            step.status,
            step.attempts,
            items,
            took,
            [agents, step.reason.clone().unwrap_or_default()].join(" ").trim()
        );
    }
    if let Some(output) = &view.output {
        out!("output: {output}");
    }
    if let Some(error) = &view.error {
        out!("error: {error}");
    }
    Ok(())
}
