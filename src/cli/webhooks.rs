//! `pantheon webhooks`: the dead-lettered webhooks (`dead`, from the task view) and a
//! redelivery (`redeliver TASK`), recorded on the task as `webhook_redelivery_requested`
//! for a running `pantheon up` to deliver — the same as `GET /webhooks/dead` and
//! `POST /webhooks/dead/{id}/redeliver`.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use events::commands::RedeliverError;
use events::{ExpectedVersion, LogError, StreamId, TaskId};
use gateway::task::TrackedTask;
use projections::{ProjectionName, TaskReader};

use crate::Cli;

/// Conflicting appends a redelivery re-reads and re-decides for, at most.
const REDELIVER_ATTEMPT_COUNT_MAX: usize = 8;

#[derive(Debug, Args)]
pub(crate) struct WebhooksArgs {
    #[command(subcommand)]
    pub(crate) command: WebhooksCommand,
    /// Where the log is.
    #[command(flatten)]
    pub(crate) backend: super::up::BackendArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksCommand {
    /// The webhooks given up after their attempts and not asked for again, newest first.
    Dead {
        /// The most to print.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deliver a task's dead-lettered webhook again (a running `pantheon up` sends it: a new
    /// round of attempts, the same webhook-id).
    Redeliver {
        /// The task.
        task: TaskId,
        /// Who asks, as recorded.
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

pub(crate) async fn run(cli: &Cli, args: &WebhooksArgs) -> anyhow::Result<()> {
    let opened = crate::cli::projections::open(cli, &args.backend).await?;
    match &args.command {
        WebhooksCommand::Dead { limit, json } => {
            opened.projections.catch_up(ProjectionName::Tasks).await?;
            let dead = TaskReader::new(opened.db.clone()).dead_webhooks(*limit).await?;
            if *json {
                out!("{}", serde_json::to_string_pretty(&dead)?);
                return Ok(());
            }
            out!("{:<36}  {:<24}  REASON", "TASK", "DEAD-LETTERED");
            for row in dead {
                let at = std::time::UNIX_EPOCH
                    + std::time::Duration::from_millis(u64::try_from(row.dead_lettered_at_ms).unwrap_or(0));
                out!(
                    "{:<36}  {:<24}  {}",
                    row.task_id,
                    humantime::format_rfc3339_millis(at).to_string(),
                    row.reason
                );
            }
            Ok(())
        }
        WebhooksCommand::Redeliver { task, by } => {
            for _ in 0..REDELIVER_ATTEMPT_COUNT_MAX {
                let Some(tracked) = TrackedTask::load(opened.log.as_ref(), *task).await? else {
                    anyhow::bail!("no task {task}");
                };
                let decided = events::commands::redeliver_webhook(
                    &tracked.state,
                    tracked.read_version,
                    tracked.correlation_id,
                    by,
                    "cli",
                    events::now_ms(),
                );
                let event = match decided {
                    Ok(event) => event,
                    Err(RedeliverError::Event(error)) => return Err(error.into()),
                    Err(error) => anyhow::bail!("task {task}: {error}"),
                };
                let webhook_id = tracked.state.webhook_dead.clone().unwrap_or_default();
                let appended = opened
                    .log
                    .append(&StreamId::task(*task), ExpectedVersion::Exact(tracked.read_version), vec![event])
                    .await;
                match appended {
                    Ok(_) => {
                        out!(
                            "redelivery of webhook {webhook_id} of task {task} recorded; a running `pantheon up` sends it"
                        );
                        return Ok(());
                    }
                    Err(LogError::Conflict { .. }) => continue,
                    Err(error) => return Err(error).context("cannot record the redelivery"),
                }
            }
            anyhow::bail!("task {task} kept changing; try again")
        }
    }
}
