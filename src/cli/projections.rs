//! `pantheon projections`: where each read model stands (checkpoint, lag) and rebuilding one
//! from position 0. Also the shared opening of the read models for `tasks` and `audit`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use events::{EventLog, KeyPair};
use projections::{Db, ProjectionName, Projections};

use super::up::{BackendArgs, load_config, open_backend};
use crate::Cli;

/// `pantheon projections [--nats URL] <command>`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProjectionsArgs {
    /// Where the log is: the projections read the same log `pantheon up` runs them on.
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    #[command(subcommand)]
    pub(crate) command: ProjectionsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectionsCommand {
    /// Show each projection's checkpoint and lag behind the log.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Print the Prometheus metrics text instead.
        #[arg(long, conflicts_with = "json")]
        metrics: bool,
    },
    /// Apply everything the log holds to every projection now (what `pantheon up` does
    /// continuously).
    CatchUp,
    /// Empty a projection's read model and apply the whole log again from position 0.
    Rebuild {
        /// `tasks`, `reputation`, `health` or `audit`.
        name: ProjectionName,
    },
}

/// The federation key file in the data dir (signs envelopes and audit tree heads).
pub(crate) fn federation_key_path(cli: &Cli) -> std::path::PathBuf {
    cli.data_dir.join("federation.key")
}

/// The log, the read models and the machinery over them.
pub(crate) struct Opened {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) db: Db,
    pub(crate) projections: Projections,
    pub(crate) key: KeyPair,
}

/// Opens the log as `pantheon up` does with the same flags (JetStream with `--nats`, its
/// positions being the projections' checkpoints), and the read models in the SQL database.
pub(crate) async fn open(cli: &Cli, backend: &BackendArgs) -> anyhow::Result<Opened> {
    let url = cli.database_url()?;
    let log = open_backend(cli, backend).await?.log;
    let db = Db::connect(&url).await.context("cannot open the read models")?;
    std::fs::create_dir_all(&cli.data_dir)
        .with_context(|| format!("cannot create the data dir {}", cli.data_dir.display()))?;
    let key_path = federation_key_path(cli);
    let key = KeyPair::load_or_generate(&key_path)
        .with_context(|| format!("cannot load the federation key {}", key_path.display()))?;
    let cool_down_ms = load_config(cli, backend)?.health.cool_down_ms_i64();
    let projections =
        Projections::new(db.clone(), log.clone(), key.clone()).with_health_cool_down_ms(cool_down_ms);
    Ok(Opened { log, db, projections, key })
}

pub(crate) async fn run(cli: &Cli, args: &ProjectionsArgs) -> anyhow::Result<()> {
    let opened = open(cli, &args.backend).await?;
    let command = &args.command;
    match command {
        ProjectionsCommand::Status { json, metrics } => {
            let status = opened.projections.status().await?;
            if *metrics {
                print!("{}", projections::prometheus_metrics(&status));
            } else if *json {
                out!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                out!("{:<12} {:>12} {:>12} {:>10}", "PROJECTION", "POSITION", "HEAD", "LAG");
                for s in status {
                    let lag =
                        if s.lag_capped { format!(">={}", s.lag_events) } else { s.lag_events.to_string() };
                    out!("{:<12} {:>12} {:>12} {:>10}", s.name, s.position, s.head_position, lag);
                }
            }
        }
        ProjectionsCommand::CatchUp => {
            let started = std::time::Instant::now();
            let applied = opened.projections.catch_up_all().await?;
            opened.projections.seal_audit().await?;
            eprintln!("applied {applied} events in {:.2?}", started.elapsed());
        }
        ProjectionsCommand::Rebuild { name } => {
            let started = std::time::Instant::now();
            let before = opened.projections.digest(*name).await?;
            let applied = opened.projections.rebuild(*name).await?;
            if *name == ProjectionName::Audit {
                opened.projections.seal_audit().await?;
            }
            let after = opened.projections.digest(*name).await?;
            out!(
                "rebuilt {name} from position 0: {applied} events in {:.2?}; digest {after} ({})",
                started.elapsed(),
                if before == after {
                    "unchanged"
                } else {
                    "changed: the read model had drifted or was behind"
                }
            );
        }
    }
    Ok(())
}
