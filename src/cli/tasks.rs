//! `pantheon tasks`: list tasks from the task view — filter by status, capability, agent,
//! submitter and time, search descriptions — as a table or JSON.

use clap::Args;
use events::TaskStatus;
use projections::{ProjectionName, TaskQuery, TaskReader};

use crate::Cli;

#[derive(Debug, Args)]
pub(crate) struct TasksArgs {
    /// Only tasks in this status (`submitted`, `running`, `completed`, `failed`, …).
    #[arg(long, value_parser = parse_status)]
    status: Option<TaskStatus>,
    /// Only tasks for this capability.
    #[arg(long)]
    capability: Option<String>,
    /// Only tasks whose latest attempt went to this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Only tasks from this submitter.
    #[arg(long)]
    submitter: Option<String>,
    /// Only tasks submitted within this long ago (e.g. `1h`, `30m`).
    #[arg(long)]
    since: Option<humantime::Duration>,
    /// Only tasks whose description holds every word of this text.
    #[arg(long)]
    search: Option<String>,
    /// The most tasks to print.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Tasks to skip (the next page).
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Read the view as it is, without applying the log's newest events first.
    #[arg(long)]
    no_catch_up: bool,
    /// Where the log is (the task view catches up from it first).
    #[command(flatten)]
    pub(crate) backend: super::up::BackendArgs,
}

fn parse_status(text: &str) -> Result<TaskStatus, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("unknown status {text:?}"))
}

pub(crate) async fn run(cli: &Cli, args: &TasksArgs) -> anyhow::Result<()> {
    let opened = crate::cli::projections::open(cli, &args.backend).await?;
    if !args.no_catch_up {
        opened.projections.catch_up(ProjectionName::Tasks).await?;
    }
    let since_ms = args.since.map(|d| {
        let ago = i64::try_from(std::time::Duration::from(d).as_millis()).unwrap_or(i64::MAX);
        events::now_ms().saturating_sub(ago)
    });
    let query = TaskQuery {
        status: args.status,
        capability: args.capability.clone(),
        agent_id: args.agent.clone(),
        submitter: args.submitter.clone(),
        submitted_from_ms: since_ms,
        submitted_until_ms: None,
        search: args.search.clone(),
        limit: Some(args.limit),
        offset: args.offset,
        after: None,
    };
    let tasks = TaskReader::new(opened.db.clone()).list(&query).await?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&tasks)?);
        return Ok(());
    }
    out!(
        "{:<36}  {:<16} {:<14} {:<14} {:<10} DESCRIPTION",
        "TASK",
        "STATUS",
        "CAPABILITY",
        "AGENT",
        "SUBMITTER"
    );
    for t in &tasks {
        let mut description: String = t.description.chars().take(60).collect();
        if description.len() < t.description.len() {
            description.push('…');
        }
        out!(
            "{:<36}  {:<16} {:<14} {:<14} {:<10} {}",
            t.task_id,
            t.status,
            t.capability,
            t.agent_id.as_deref().unwrap_or("-"),
            t.submitter,
            description.replace('\n', " ")
        );
    }
    eprintln!("{} task(s)", tasks.len());
    Ok(())
}
