//! `pantheon archive`: the PostgreSQL (or SQLite) archive of a JetStream log — `check` compares
//! it with JetStream event for event and reports every divergence; `status` prints the
//! archiver's lag; `retire-sequences` is the recovery after the JetStream stream was deleted
//! and created again (its sequences restarted at 1 while the archive holds the old ones).

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::Cli;

/// `pantheon archive --nats URL --database postgres://… <command>`.
#[derive(Debug, clap::Args)]
pub(crate) struct ArchiveArgs {
    /// Where the log is (JetStream: `--nats`).
    #[command(flatten)]
    pub(crate) backend: super::up::BackendArgs,
    #[command(subcommand)]
    pub(crate) command: ArchiveCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ArchiveCommand {
    /// Compare the archive with JetStream event for event; exit 1 on any divergence (events
    /// missing from the archive, taken positions, gaps), listing them.
    Check {
        /// Print the comparison as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The archiver's progress: JetStream's last sequence, what is archived, what is not yet.
    Status,
    /// After the JetStream stream was deleted and created again: start a new generation of
    /// archived sequences and reset the archiver's consumer, so the archivers copy the new
    /// stream from its first event without losing the archived history.
    RetireSequences,
}

pub(crate) async fn run(cli: &Cli, args: &ArchiveArgs) -> anyhow::Result<()> {
    let backend = super::up::open_backend(cli, &args.backend).await?;
    let Some(nats) = backend.nats.clone() else {
        bail!("the archive is JetStream's: pass --nats URL (and --database for the archive)");
    };
    let Some(sql) = backend.sql.clone() else {
        bail!("no archive: pass --database postgres://… (the archive the `up` processes write)");
    };
    let archive: Arc<dyn nats::Archive> = Arc::new(sql);
    match &args.command {
        ArchiveCommand::Check { json } => {
            let comparison =
                nats::compare(&nats, archive.as_ref()).await.context("cannot compare the archive")?;
            if *json {
                out!(
                    "{}",
                    serde_json::json!({
                        "consistent": comparison.is_consistent(),
                        "jetstream_first": comparison.jetstream_first,
                        "jetstream_last": comparison.jetstream_last,
                        "archived_through": comparison.archived_through,
                        "compared": comparison.compared_count,
                        "matching": comparison.matching_count,
                        "pending": comparison.pending_count,
                        "divergences": comparison.divergence_count,
                        "listed": comparison.divergences.iter().map(|d| format!("{d:?}")).collect::<Vec<_>>(),
                    })
                );
            } else {
                out!(
                    "compared {} JetStream events ({}..={}): {} archived as they are, {} not archived yet, {} divergence(s)",
                    comparison.compared_count,
                    comparison.jetstream_first,
                    comparison.jetstream_last,
                    comparison.matching_count,
                    comparison.pending_count,
                    comparison.divergence_count
                );
                for divergence in &comparison.divergences {
                    out!("  {divergence:?}");
                }
            }
            if comparison.is_consistent() && comparison.pending_count == 0 {
                Ok(())
            } else if comparison.is_consistent() {
                bail!(
                    "the archive is consistent but {} event(s) are not archived yet",
                    comparison.pending_count
                )
            } else {
                bail!("the archive differs from JetStream: {} divergence(s)", comparison.divergence_count)
            }
        }
        ArchiveCommand::Status => {
            let lag = nats::read_archiver_lag(&nats).await.context("cannot read the archiver's consumer")?;
            out!(
                "JetStream last sequence {}, archived through {}, {} event(s) not archived yet",
                lag.jetstream_last,
                lag.archived_through,
                lag.unarchived_count
            );
            Ok(())
        }
        ArchiveCommand::RetireSequences => {
            let retired = nats::retire_archived_sequences(&nats, archive.as_ref())
                .await
                .context("cannot retire the archived sequences")?;
            out!(
                "generation {} started: {} archived event(s) keep their stream and version, their old sequences retired; archiver consumer {}",
                retired.generation,
                retired.retired_count,
                if retired.consumer_reset {
                    "reset (the archivers start from JetStream's first event)"
                } else {
                    "not found"
                }
            );
            Ok(())
        }
    }
}
