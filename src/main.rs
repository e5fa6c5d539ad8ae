//! # pantheon
//!
//! The command line of Pantheon: run the federation (`up`), submit tasks, replay their
//! history, tail the log, and work with the raw event log (`events`).
//!
//! Every command works on the embedded default (an SQLite file under `--data-dir`, no server
//! needed) unless `--database postgres://…` (and, where it applies, `--nats`) names servers.

/// `println!` that returns an error instead of panicking when stdout is gone (a pipe into
/// `head` closed early); `main` ends quietly on that error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod cli;
mod telemetry;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Pantheon runs tasks for a federation of agents; every step is an event in a log.
#[derive(Debug, Parser)]
#[command(name = "pantheon", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// Where the embedded default keeps its files (the SQLite log, keys, config).
    #[arg(long, global = true, env = "PANTHEON_DATA_DIR", default_value = ".pantheon")]
    pub(crate) data_dir: PathBuf,

    /// The event store: `sqlite://FILE` or `postgres://…`. Default: an SQLite file in the data dir.
    #[arg(long, global = true, env = "PANTHEON_DATABASE_URL")]
    pub(crate) database: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Work with the raw event log: append, read and tail events as JSON.
    Events(cli::events::EventsArgs),
    /// The audit ledger: verify it, prove an entry's inclusion, check a proof offline.
    Audit(cli::audit::AuditArgs),
    /// The archive of a JetStream log: compare it with JetStream, the archiver's lag, recovery.
    Archive(cli::archive::ArchiveArgs),
    /// Keys: a new agent key pair, the federation's public key.
    Keys(cli::keys::KeysArgs),
    /// The federation: `federation key` prints the public key agents verify envelopes with.
    Federation(cli::keys::FederationArgs),
    /// A bearer token for the gateway (`--role operator --sub ci --ttl 1h`).
    Token(cli::token::TokenArgs),
    /// Check the configuration `pantheon up` would load (`config check`).
    Config(cli::config::ConfigArgs),
    /// The read models: status and lag, catch up, rebuild one from position 0.
    Projections(cli::projections::ProjectionsArgs),
    /// List and search tasks (status, capability, agent, submitter, time, full text).
    Tasks(cli::tasks::TasksArgs),
    /// Run the whole pipeline in this process until Ctrl-C (SIGINT/SIGTERM drain in-flight work).
    Up(cli::up::UpArgs),
    /// Submit a task (signed with the federation key); `--wait` prints its result.
    Submit(cli::submit::SubmitArgs),
    /// A task's timeline with signature checks, or its state at a version (`--at N`).
    Replay(cli::replay::ReplayArgs),
    /// Live events, filtered by type, task or agent.
    Tail(cli::tail::TailArgs),
    /// Registered agents with load and health; suspend, reinstate or retire one.
    Agents(cli::agents::AgentsArgs),
    /// Throughput and latency of the whole pipeline with the echo agent.
    Bench(cli::bench::BenchArgs),
    /// Dead-lettered webhooks: list them, deliver one again.
    Webhooks(cli::webhooks::WebhooksArgs),
    /// Workflows: register a definition, run it, show a run's step table, list, cancel.
    Workflow(cli::workflow::WorkflowArgs),
}

impl Command {
    /// Where the command's log is.
    fn backend(&self) -> &cli::up::BackendArgs {
        static NONE: std::sync::OnceLock<cli::up::BackendArgs> = std::sync::OnceLock::new();
        match self {
            Self::Keys(_) | Self::Federation(_) | Self::Token(_) | Self::Config(_) => {
                NONE.get_or_init(cli::up::BackendArgs::none)
            }
            Self::Events(args) => &args.backend,
            Self::Audit(args) => &args.backend,
            Self::Archive(args) => &args.backend,
            Self::Projections(args) => &args.backend,
            Self::Tasks(args) => &args.backend,
            Self::Up(args) => &args.backend,
            Self::Submit(args) => &args.backend,
            Self::Replay(args) => &args.backend,
            Self::Tail(args) => &args.backend,
            Self::Agents(args) => &args.backend,
            Self::Bench(args) => &args.backend,
            Self::Webhooks(args) => &args.backend,
            Self::Workflow(args) => &args.backend,
        }
    }

    /// Whether the command only reads what a running or earlier Pantheon wrote, so that an
    /// empty data dir means a wrong `--data-dir` (or directory) rather than a fresh start.
    fn only_reads(&self) -> bool {
        match self {
            Self::Events(args) => !matches!(args.command, cli::events::EventsCommand::Append { .. }),
            Self::Agents(args) => args.action.is_none(),
            Self::Webhooks(_) => true,
            Self::Workflow(args) => matches!(
                args.command,
                cli::workflow::WorkflowCommand::Show { .. } | cli::workflow::WorkflowCommand::List { .. }
            ),
            Self::Replay(_)
            | Self::Tail(_)
            | Self::Tasks(_)
            | Self::Audit(_)
            | Self::Projections(_)
            | Self::Archive(_) => true,
            Self::Up(_)
            | Self::Submit(_)
            | Self::Bench(_)
            | Self::Keys(_)
            | Self::Federation(_)
            | Self::Token(_)
            | Self::Config(_) => false,
        }
    }
}

impl Cli {
    /// The store URL: `--database`, or the embedded SQLite file in the data dir.
    pub(crate) fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create the data dir {}", self.data_dir.display()))?;
        let file = self.data_dir.join("pantheon.db");
        if !file.exists() {
            // Readable by its owner only, like the keys beside it (SQLite gives its WAL the
            // database file's mode).
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(&file) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).with_context(|| format!("cannot create {}", file.display())),
            }
        }
        Ok(format!("sqlite://{}?mode=rwc", file.display()))
    }
}

/// mimalloc: the pipeline allocates many small, short-lived buffers per event, and glibc's
/// malloc was a fifth of its CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`pantheon tasks | head -1`): nothing to say.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line with its causes; no backtrace for a user's mistake.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether `error` comes from writing to a closed pipe.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otlp = match &cli.command {
        Command::Up(args) => args.otlp_endpoint.as_deref(),
        _ => None,
    };
    let service = match &cli.command {
        Command::Up(args) => args.otlp_service_name.as_str(),
        _ => "pantheon",
    };
    let telemetry = telemetry::init(otlp, service)?;
    let outcome = run_command(&cli).await;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    outcome
}

async fn run_command(cli: &Cli) -> anyhow::Result<()> {
    if cli.database.is_none()
        && cli.command.backend().nats.is_none()
        && cli.command.only_reads()
        && !cli.data_dir.join("pantheon.db").exists()
    {
        anyhow::bail!(
            "no Pantheon data in {}: run `pantheon up` (or `pantheon submit`) there first, or pass --data-dir (or --database)",
            cli.data_dir.display()
        );
    }
    match &cli.command {
        Command::Events(command) => cli::events::run(cli, command).await,
        Command::Up(args) => cli::up::run(cli, args).await,
        Command::Submit(args) => cli::submit::run(cli, args).await,
        Command::Replay(args) => cli::replay::run(cli, args).await,
        Command::Tail(args) => cli::tail::run(cli, args).await,
        Command::Agents(args) => cli::agents::run(cli, args).await,
        Command::Bench(args) => cli::bench::run(cli, args).await,
        Command::Webhooks(args) => cli::webhooks::run(cli, args).await,
        Command::Workflow(args) => cli::workflow::run(cli, args).await,
        Command::Audit(args) => cli::audit::run(cli, args).await,
        Command::Archive(args) => cli::archive::run(cli, args).await,
        Command::Keys(args) => cli::keys::run(cli, args),
        Command::Federation(args) => cli::keys::run_federation(cli, args),
        Command::Token(args) => cli::token::run(cli, args),
        Command::Config(args) => cli::config::run(cli, args),
        Command::Projections(args) => cli::projections::run(cli, args).await,
        Command::Tasks(args) => cli::tasks::run(cli, args).await,
    }
}
