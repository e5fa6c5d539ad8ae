//! `pantheon up`: runs the whole pipeline in this process until SIGINT or SIGTERM, on the
//! embedded default (an SQLite file in the data dir) or on NATS JetStream (`--nats`), with
//! PostgreSQL (`--database postgres://…`) as the archive of every event.
//!
//! Also the shared setup of the commands that run or reach the pipeline: the backend, the
//! federation key (`<data-dir>/federation.key`, 0600) and the config
//! (`<data-dir>/pantheon.toml` or `--config`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actors::{Config, Runtime, RuntimeOptions};
use anyhow::Context as _;
use clap::Args;
use events::{EventLog, KeyPair};
use tokio_util::sync::CancellationToken;

use crate::Cli;

/// Where the pipeline's log lives.
#[derive(Debug, Args, Clone)]
pub(crate) struct BackendArgs {
    /// NATS server URL: use JetStream as the log (with `--database postgres://…` as archive).
    #[arg(long, env = "PANTHEON_NATS_URL")]
    pub(crate) nats: Option<String>,
    /// The config file. Default: `<data-dir>/pantheon.toml` (missing: one `echo` agent).
    #[arg(long, env = "PANTHEON_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// JetStream retention: drop events older than this (e.g. `7d`; default: keep all). The
    /// archive (`--database`) keeps what JetStream drops, and reads fall back to it.
    #[arg(long, env = "PANTHEON_NATS_MAX_AGE", requires = "nats")]
    pub(crate) nats_max_age: Option<humantime::Duration>,
    /// JetStream retention: keep at most this many events (default: no limit).
    #[arg(long, env = "PANTHEON_NATS_MAX_MESSAGES", requires = "nats")]
    pub(crate) nats_max_messages: Option<i64>,
    /// Apply the retention above to an existing stream whose settings differ, instead of
    /// refusing to start.
    #[arg(long, requires = "nats")]
    pub(crate) nats_update_streams: bool,
    /// JetStream replicas of Pantheon's streams (1 to 5, default 1; 3 on a three-node cluster,
    /// so that an acknowledged event is held by a quorum and a node can be lost). Used when the
    /// streams are created; given, an existing stream must match (or `--nats-update-streams`).
    #[arg(long, env = "PANTHEON_NATS_REPLICAS", requires = "nats")]
    pub(crate) nats_replicas: Option<usize>,
    /// How long to keep trying while JetStream cannot set up the streams yet (a server or a
    /// cluster that is still starting or electing its leaders), before giving up.
    #[arg(long, env = "PANTHEON_NATS_WAIT", default_value = "60s", requires = "nats")]
    pub(crate) nats_wait: humantime::Duration,
}

impl BackendArgs {
    /// No server and no config named: for commands that reach no log.
    pub(crate) fn none() -> Self {
        Self {
            nats: None,
            config: None,
            nats_max_age: None,
            nats_max_messages: None,
            nats_update_streams: false,
            nats_replicas: None,
            nats_wait: Duration::from_secs(60).into(),
        }
    }
}

/// An opened backend.
pub(crate) struct Backend {
    pub(crate) log: Arc<dyn EventLog>,
    /// The SQL store (the log itself on the embedded default; the archive in NATS mode).
    pub(crate) sql: Option<store::SqlLog>,
    pub(crate) nats: Option<Arc<nats::NatsLog>>,
    pub(crate) description: String,
}

impl Backend {
    pub(crate) fn is_sqlite(&self) -> bool {
        self.nats.is_none() && matches!(self.sql, Some(store::SqlLog::Sqlite(_)))
    }
}

/// Opens the log: JetStream when `--nats` is given, else the SQL store of `--database` (the
/// SQLite file in the data dir by default).
pub(crate) async fn open_backend(cli: &Cli, backend: &BackendArgs) -> anyhow::Result<Backend> {
    match &backend.nats {
        Some(url) => {
            let mut config = nats::NatsLogConfig::new(url.clone());
            if let Some(max_age) = backend.nats_max_age {
                config.max_age = max_age.into();
            }
            if let Some(max_messages) = backend.nats_max_messages {
                anyhow::ensure!(max_messages > 0, "--nats-max-messages must be at least 1");
                config.max_messages = max_messages;
            }
            config.manage_retention = backend.nats_max_age.is_some() || backend.nats_max_messages.is_some();
            config.update_existing = backend.nats_update_streams;
            if let Some(replicas) = backend.nats_replicas {
                config.replicas = replicas;
                config.manage_replicas = true;
            }
            let nats = connect_waiting(config, backend.nats_wait.into())
                .await
                .with_context(|| format!("cannot reach NATS at {url}"))?;
            let nats = Arc::new(nats);
            let sql = match &cli.database {
                Some(url) => {
                    Some(store::SqlLog::open(url).await.context("cannot open the archive database")?)
                }
                None => None,
            };
            let description = match &cli.database {
                Some(db) => format!("NATS JetStream at {url}, archived to {}", redact_url(db)),
                None => format!("NATS JetStream at {url}"),
            };
            // With an archive, reads fall back to it for what JetStream's retention dropped,
            // and appends continue the versions of streams that live on only there.
            let log: Arc<dyn EventLog> = match &sql {
                Some(sql) => Arc::new(nats::ArchivedLog::new(Arc::clone(&nats), Arc::new(sql.clone()))),
                None => nats.clone(),
            };
            Ok(Backend { log, sql, nats: Some(nats), description })
        }
        None => {
            let url = cli.database_url()?;
            let sql = store::SqlLog::open(&url).await.context("cannot open the event store")?;
            Ok(Backend {
                log: sql.clone().into_dyn(),
                sql: Some(sql),
                nats: None,
                description: redact_url(&url),
            })
        }
    }
}

/// Connects to JetStream and sets up the streams, trying again for up to `wait` while the
/// failure is one that passes (no server yet, a request that timed out while a cluster elects
/// its leaders); a configuration that cannot work fails at once.
async fn connect_waiting(config: nats::NatsLogConfig, wait: Duration) -> Result<nats::NatsLog, nats::Error> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match nats::NatsLog::connect(config.clone()).await {
            Ok(log) => return Ok(log),
            Err(error)
                if matches!(error.kind(), nats::ErrorKind::Connect | nats::ErrorKind::Request)
                    && started.elapsed() + pause < wait =>
            {
                tracing::warn!(%error, "JetStream is not ready yet; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Starts the pipeline. On NATS, a start that fails on a JetStream request (the phases'
/// consumer not created in time while a cluster elects its leaders) is tried again with
/// backoff within `wait`, as the connection is: nothing was started by the failed try (it
/// fails before the phases and the background tasks start), and what it recorded (the
/// agents' registrations) is recorded once however often it runs.
async fn start_waiting(
    backend: &Backend,
    key: &Arc<KeyPair>,
    config: &Config,
    read_model: &projections::Db,
    wait: Duration,
) -> actors::Result<Runtime> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let mut options = runtime_options(backend, Arc::clone(key), config.clone());
        options.read_model = Some(read_model.clone());
        match Runtime::start(options).await {
            Ok(runtime) => return Ok(runtime),
            Err(actors::Error::Log(error))
                if backend.nats.is_some() && !error.is_bad_input() && started.elapsed() + pause < wait =>
            {
                tracing::warn!(%error, "the pipeline did not start (JetStream not ready yet); trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// A URL without its password.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The federation key of the data dir, created (0600) on first use.
pub(crate) fn federation_key(cli: &Cli) -> anyhow::Result<Arc<KeyPair>> {
    std::fs::create_dir_all(&cli.data_dir)
        .with_context(|| format!("cannot create the data dir {}", cli.data_dir.display()))?;
    let path = cli.data_dir.join("federation.key");
    let key =
        KeyPair::load_or_generate(&path).with_context(|| format!("federation key {}", path.display()))?;
    Ok(Arc::new(key))
}

/// The config: `--config`, or `<data-dir>/pantheon.toml`, or the defaults.
pub(crate) fn load_config(cli: &Cli, backend: &BackendArgs) -> anyhow::Result<Config> {
    let path = backend.config.clone().unwrap_or_else(|| cli.data_dir.join("pantheon.toml"));
    if backend.config.is_some() && !path.exists() {
        anyhow::bail!("the config file {} does not exist", path.display());
    }
    Ok(Config::load_or_default(&path)?)
}

/// Runtime options for a backend.
pub(crate) fn runtime_options(backend: &Backend, key: Arc<KeyPair>, config: Config) -> RuntimeOptions {
    let mut options = RuntimeOptions::new(Arc::clone(&backend.log), key);
    options.config = config;
    // Whether a pending read may be dropped, and how often to look for other processes'
    // appends, are the log's own properties (`EventLog::next_is_cancel_safe`,
    // `EventLog::cross_process_poll`).
    options.nats = backend.nats.as_ref().map(|n| n.client().clone());
    options
}

/// Events not yet archived past which `/readyz` calls the process degraded: the archive is
/// the durable record of history, and a backlog this long means it is not keeping up (or is
/// not running).
pub(crate) const ARCHIVE_LAG_READY_MAX: u64 = 10_000;

/// Copies every JetStream event into the SQL archive (the nats crate's archiver, restarted
/// with backoff after any failure) until `stop`; with the probe that reports it.
pub(crate) fn spawn_archiver(
    backend: &Backend,
    stop: CancellationToken,
) -> Option<(tokio::task::JoinHandle<()>, Arc<ArchiverProbe>)> {
    let (Some(nats), Some(sql)) = (backend.nats.clone(), backend.sql.clone()) else { return None };
    let archiver = nats::Archiver::new(nats, Arc::new(sql));
    let probe = Arc::new(ArchiverProbe { status: archiver.status() });
    let task = tokio::spawn(async move {
        let report = archiver.run_supervised(stop.cancelled_owned()).await;
        tracing::info!(?report, "the archiver stopped");
    });
    Some((task, probe))
}

/// Agent management for the gateway: registrations and changes recorded as the agents'
/// events, passports issued with the federation key (the same functions as `pantheon agents`).
#[derive(Debug)]
pub(crate) struct RegistryAdmin {
    log: Arc<dyn EventLog>,
    federation: Arc<KeyPair>,
    /// This process's registry view: taken up at once after a change made here (other
    /// processes see it within their refresh, or when matching confirms the agent).
    registry: Arc<actors::Registry>,
    /// Whether the federation runs on NATS (else a NATS agent could never be reached).
    nats: bool,
}

impl RegistryAdmin {
    async fn take_up(&self) {
        if let Err(error) = self.registry.refresh(self.log.as_ref()).await {
            tracing::warn!(%error, "the registry view did not take the change yet; it will on its next refresh");
        }
    }
}

fn admin_error(error: actors::Error) -> gateway::AgentAdminError {
    match error {
        actors::Error::NotFound(what) => gateway::AgentAdminError::NotFound(what),
        actors::Error::AgentRetired(agent) => gateway::AgentAdminError::Conflict(format!(
            "agent {agent} is retired; register it under another id"
        )),
        actors::Error::AgentUnchanged(what) => gateway::AgentAdminError::Conflict(what),
        other => gateway::AgentAdminError::Failed(events::error_chain(&other)),
    }
}

impl gateway::AgentAdmin for RegistryAdmin {
    fn capabilities(&self) -> Option<Vec<String>> {
        Some(self.registry.capabilities())
    }

    fn register(
        &self,
        request: gateway::routes::agents::RegisterAgent,
        by: String,
    ) -> futures::future::BoxFuture<'_, Result<events::SignedPassport, gateway::AgentAdminError>> {
        Box::pin(async move {
            let agent_id = events::AgentId::new(request.agent_id.as_str())
                .map_err(|e| gateway::AgentAdminError::Failed(e.to_string()))?;
            if matches!(request.transport, events::agent::AgentTransport::Nats { .. }) && !self.nats {
                return Err(gateway::AgentAdminError::Conflict(
                    "this federation runs without NATS: a NATS agent could never be reached; register an HTTP agent"
                        .into(),
                ));
            }
            tracing::info!(agent = %agent_id, %by, "registering an agent");
            let passport = actors::registry::register_agent(
                self.log.as_ref(),
                &self.federation,
                &agent_id,
                &request.public_key,
                request.capabilities,
                request.max_concurrency.unwrap_or(4),
                request.transport,
            )
            .await
            .map_err(admin_error)?;
            self.take_up().await;
            Ok(passport)
        })
    }

    fn change(
        &self,
        agent: events::AgentId,
        change: gateway::AgentChange,
        by: String,
        reason: String,
    ) -> futures::future::BoxFuture<'_, Result<(), gateway::AgentAdminError>> {
        Box::pin(async move {
            let action = match change {
                gateway::AgentChange::Suspend => actors::registry::AgentAction::Suspend,
                gateway::AgentChange::Reinstate => actors::registry::AgentAction::Reinstate,
                gateway::AgentChange::Retire => actors::registry::AgentAction::Retire,
            };
            actors::registry::change_agent(self.log.as_ref(), &agent, action, &by, &reason)
                .await
                .map_err(admin_error)?;
            self.take_up().await;
            Ok(())
        })
    }
}

/// The pipeline's pull board as the gateway's workers see it.
#[derive(Debug)]
pub(crate) struct PullWork(Arc<actors::pull::PullBoard>);

impl gateway::PullWork for PullWork {
    fn take(
        &self,
        agent: events::AgentId,
        wait: Duration,
        lease: Duration,
    ) -> futures::future::BoxFuture<'_, Option<gateway::WorkOffer>> {
        Box::pin(async move {
            self.0.take(&agent, wait, lease).await.map(|claim| gateway::WorkOffer {
                task_id: claim.task_id,
                attempt: claim.attempt,
                envelope: claim.envelope,
                lease_ms: claim.lease_ms,
            })
        })
    }

    fn complete(
        &self,
        agent: events::AgentId,
        task_id: events::TaskId,
        result: events::SignedResult,
    ) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.complete(&agent, task_id, result).await.map_err(|e| e.to_string()) })
    }

    fn fail(
        &self,
        agent: events::AgentId,
        task_id: events::TaskId,
        reason: String,
    ) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.fail(&agent, task_id, reason).await.map_err(|e| e.to_string()) })
    }

    fn progress(
        &self,
        agent: events::AgentId,
        task_id: events::TaskId,
        percent: Option<u8>,
        message: String,
    ) -> futures::future::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0.progress(&agent, task_id, percent, message).await.map_err(|e| e.to_string())
        })
    }

    fn heartbeat(&self, agent: events::AgentId) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move { self.0.heartbeat(&agent).await })
    }
}

/// The pipeline's measurements on `/metrics` (phases, appends, the fold cache, attempts).
#[derive(Debug)]
pub(crate) struct PipelineProbe(Arc<actors::PipelineMetrics>);

impl gateway::Probe for PipelineProbe {
    fn metrics(&self) -> String {
        self.0.render()
    }

    fn degraded(&self) -> Option<String> {
        None
    }
}

/// How often the backlog probe reads the subscriptions and the projections again.
const BACKLOG_REFRESH_MS: u64 = 2_000;

/// The log's durable subscriptions (events pending, redeliveries) and the projections
/// (position, lag) as `/metrics` sees them: read in the background every
/// [`BACKLOG_REFRESH_MS`], so a scrape reads memory and a slow database never slows it.
#[derive(Debug, Default)]
pub(crate) struct BacklogProbe {
    text: std::sync::RwLock<String>,
}

impl BacklogProbe {
    /// Reads both and keeps the text; a part that fails is left out until it answers.
    async fn refresh(&self, log: &dyn EventLog, projections: &projections::Projections) {
        let mut out = String::new();
        match log.subscription_stats().await {
            Ok(stats) => {
                out.push_str("# HELP pantheon_subscription_pending_events Events a durable subscription has yet to acknowledge (SQL logs: after its checkpoint; JetStream: undelivered and unacknowledged).
");
                out.push_str(
                    "# TYPE pantheon_subscription_pending_events gauge
",
                );
                for s in &stats {
                    out.push_str(&format!(
                        "pantheon_subscription_pending_events{{subscription=\"{}\"}} {}\n",
                        s.name, s.pending
                    ));
                }
                out.push_str("# HELP pantheon_subscription_redelivered Deliveries made again after an acknowledgement did not come in time (JetStream).
");
                out.push_str(
                    "# TYPE pantheon_subscription_redelivered gauge
",
                );
                for s in &stats {
                    if let Some(redelivered) = s.redelivered {
                        out.push_str(&format!(
                            "pantheon_subscription_redelivered{{subscription=\"{}\"}} {redelivered}\n",
                            s.name
                        ));
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "subscription stats not read"),
        }
        match projections.status().await {
            Ok(statuses) => out.push_str(&projections::prometheus_metrics(&statuses)),
            Err(error) => tracing::debug!(%error, "projection status not read"),
        }
        if let Ok(mut text) = self.text.write() {
            *text = out;
        }
    }

    /// Refreshes until `stop`.
    fn spawn(
        self: &Arc<Self>,
        log: Arc<dyn EventLog>,
        projections: projections::Projections,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let probe = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                probe.refresh(log.as_ref(), &projections).await;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(BACKLOG_REFRESH_MS)) => {}
                }
            }
        })
    }
}

impl gateway::Probe for BacklogProbe {
    fn metrics(&self) -> String {
        self.text.read().map(|text| text.clone()).unwrap_or_default()
    }

    fn degraded(&self) -> Option<String> {
        None
    }
}

/// The archiver as `/metrics` and `/readyz` see it.
#[derive(Debug)]
pub(crate) struct ArchiverProbe {
    status: Arc<nats::ArchiverStatus>,
}

impl gateway::Probe for ArchiverProbe {
    fn metrics(&self) -> String {
        let now = self.status.snapshot();
        let lag = now.lag.map_or(0, |lag| lag.unarchived_count);
        let mut out = String::new();
        let mut series = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        };
        series(
            "pantheon_archiver_lag_events",
            "gauge",
            "JetStream events not archived yet (all processes' archivers).",
            lag,
        );
        series(
            "pantheon_archiver_running",
            "gauge",
            "Whether this process's archiver runs.",
            u64::from(now.running),
        );
        series(
            "pantheon_archiver_restarts_total",
            "counter",
            "Restarts of this process's archiver after a failure.",
            now.restarts,
        );
        series(
            "pantheon_archiver_imported_events_total",
            "counter",
            "Events this process's archiver wrote to the archive.",
            now.report.imported,
        );
        series(
            "pantheon_archiver_last_archived_sequence",
            "gauge",
            "The highest JetStream sequence this process's archiver archived.",
            now.last_archived_sequence,
        );
        out
    }

    fn degraded(&self) -> Option<String> {
        let now = self.status.snapshot();
        let lag = now.lag?.unarchived_count;
        (lag > ARCHIVE_LAG_READY_MAX).then(|| {
            format!(
                "the archive is {lag} events behind JetStream (more than {ARCHIVE_LAG_READY_MAX}){}",
                now.last_error.map(|e| format!("; last archiver error: {e}")).unwrap_or_default()
            )
        })
    }
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    /// Export traces over OTLP/HTTP (JSON) to this collector (`http://host:4318`; spans go to
    /// `<url>/v1/traces`): one trace per task across the gateway, every phase and the agent
    /// calls. Off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
    /// The service name the exported spans carry.
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "pantheon")]
    pub(crate) otlp_service_name: String,
    /// Where the HTTP gateway listens.
    #[arg(long, env = "PANTHEON_HTTP", default_value = "127.0.0.1:8080")]
    pub(crate) http: std::net::SocketAddr,
    /// The gateway's token keys and roles (JSON: issuer, audience, hs256_secrets,
    /// rs256_public_keys, eddsa_public_keys, jwks_file, roles_claim, roles). Without it, the
    /// embedded default creates a local HS256 secret and prints a dev token.
    #[arg(long, env = "PANTHEON_AUTH_CONFIG")]
    pub(crate) auth_config: Option<PathBuf>,
    /// Refuse dev conveniences (the generated secret and dev token) even on the embedded default.
    #[arg(long)]
    pub(crate) production: bool,
    /// On SIGINT/SIGTERM, how long the attempts running here get to finish before the process
    /// stops anyway (a second signal stops it at once). Attempts not started yet start on the
    /// next start.
    #[arg(long, env = "PANTHEON_DRAIN_TIMEOUT", default_value = "30s")]
    pub(crate) drain_timeout: humantime::Duration,
}

/// How long the printed dev token is valid: 30 days.
const DEV_TOKEN_TTL_S: u64 = 30 * 24 * 60 * 60;

/// The gateway's configuration: its signing key and webhook secret live in the data dir; the
/// token keys come from `--auth-config`, or (embedded default only) from a local secret, with
/// a dev token to print.
fn gateway_config(
    cli: &Cli,
    args: &UpArgs,
    backend: &Backend,
) -> anyhow::Result<(gateway::GatewayConfig, Option<String>)> {
    let dev_mode = backend.is_sqlite() && !args.production;
    let (auth, dev_token) = match &args.auth_config {
        Some(path) => (gateway::AuthConfig::from_file(path)?, None),
        None if dev_mode => {
            let secret = gateway::auth::load_or_create_secret(&cli.data_dir.join("gateway-hs256.secret"))?;
            let token = gateway::auth::issue_hs256_token(&secret, "dev", &["admin"], DEV_TOKEN_TTL_S)?;
            (gateway::AuthConfig::with_keys(vec![gateway::VerifyingKey::hs256(&secret)]), Some(token))
        }
        None => anyhow::bail!(
            "the gateway needs token keys outside the embedded default: pass --auth-config FILE (see `pantheon up --help`)"
        ),
    };
    let key_path = cli.data_dir.join("gateway.key");
    let key = KeyPair::load_or_generate(&key_path)
        .with_context(|| format!("gateway key {}", key_path.display()))?;
    let webhook_secret = gateway::auth::load_or_create_secret(&cli.data_dir.join("webhook.secret"))?;
    let mut config = gateway::GatewayConfig::new(args.http, auth, key, webhook_secret);
    config.data_dir = Some(cli.data_dir.clone());
    config.instance = gateway_instance(&cli.data_dir, args.http);
    Ok((config, dev_token))
}

/// The name of this gateway's own log subscription: the same for every start of `up` on one
/// data dir and listen address, so a process killed without the chance to delete it takes it
/// back when it starts again (on JetStream, a durable consumer per killed process would stay
/// behind for ever, its backlog growing).
fn gateway_instance(data_dir: &std::path::Path, http: std::net::SocketAddr) -> String {
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let seed = format!("{}|{http}", dir.display());
    let hash = events::Hash::of(seed.as_bytes()).to_string();
    format!("gateway-{}", &hash[..hash.len().min(32)])
}

pub(crate) async fn run(cli: &Cli, args: &UpArgs) -> anyhow::Result<()> {
    let backend = open_backend(cli, &args.backend).await?;
    let key = federation_key(cli)?;
    let mut config = load_config(cli, &args.backend)?;
    let (mut gateway_config, dev_token) = gateway_config(cli, args, &backend)?;
    gateway_config.webhooks.allow(&config.webhooks.allow).map_err(anyhow::Error::msg)?;
    if let Some(attempts) = config.webhooks.attempts {
        gateway_config.webhooks.attempts_max = attempts;
    }
    if let Some(ms) = config.webhooks.backoff_initial_ms {
        gateway_config.webhooks.backoff_initial = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = config.webhooks.backoff_max_ms {
        gateway_config.webhooks.backoff_max = std::time::Duration::from_millis(ms);
    }
    // The pipeline trusts what the gateway signs.
    let gateway_producer = actors::config::ProducerConfig {
        name: "gateway".into(),
        public_key: gateway_config.signing_key.public_key(),
    };
    config.producers.push(gateway_producer.clone());
    let agents: Vec<String> =
        config.agents.iter().map(|a| format!("{} ({})", a.id, a.capabilities().join(", "))).collect();
    let context_sources: Vec<String> = config
        .context
        .sources
        .iter()
        .map(|s| format!("{} ({}, {} ms)", s.name, s.url, s.timeout_ms))
        .collect();
    // Read models (task view, reputation, health, audit ledger) in the SQL database; matching
    // reads health and reputation from them, with the same cool-down as the projection.
    let read_model =
        projections::Db::connect(&cli.database_url()?).await.context("cannot open the read models")?;
    let cool_down_ms = config.health.cool_down_ms_i64();
    let mut gateway_config = gateway_config;
    gateway_config.read_model = Some(read_model.clone());
    gateway_config.health_cool_down_ms = cool_down_ms;
    let runtime = start_waiting(&backend, &key, &config, &read_model, args.backend.nats_wait.into())
        .await
        .context("cannot start the pipeline")?;
    gateway_config.agent_admin = Some(Arc::new(RegistryAdmin {
        log: Arc::clone(&backend.log),
        federation: Arc::clone(&key),
        registry: runtime.registry_shared(),
        nats: backend.nats.is_some(),
    }));
    gateway_config.probes.push(Arc::new(PipelineProbe(runtime.metrics())));
    gateway_config.pull = Some(Arc::new(PullWork(runtime.pull_board())));
    let limiters = Arc::new(gateway::limits::Limiters::new(&gateway_config.rate_limits));
    gateway_config.limiters = Some(Arc::clone(&limiters));
    let reload = Arc::new(crate::cli::reload::ConfigReload {
        config_path: args.backend.config.clone().unwrap_or_else(|| cli.data_dir.join("pantheon.toml")),
        config_named: args.backend.config.is_some(),
        auth_path: args.auth_config.clone(),
        added_producers: vec![gateway_producer.clone()],
        limiters,
        pipeline: runtime.reloader(),
        log: Arc::clone(&backend.log),
        running: tokio::sync::Mutex::new(()),
    });
    gateway_config.reload = Some(Arc::clone(&reload) as Arc<dyn gateway::Reload>);
    let hangups = crate::cli::reload::on_sighup(reload);
    let stop = CancellationToken::new();
    let archiver = spawn_archiver(&backend, stop.clone()).map(|(task, probe)| {
        gateway_config.probes.push(probe);
        task
    });
    let backlog = Arc::new(BacklogProbe::default());
    gateway_config.probes.push(Arc::clone(&backlog) as Arc<dyn gateway::Probe>);
    let backlog_task = backlog.spawn(
        Arc::clone(&backend.log),
        projections::Projections::new(read_model.clone(), Arc::clone(&backend.log), (*key).clone())
            .with_health_cool_down_ms(cool_down_ms),
        stop.clone(),
    );
    let read_models = projections::Projections::new(read_model, Arc::clone(&backend.log), (*key).clone())
        .with_health_cool_down_ms(cool_down_ms)
        .spawn(stop.clone().cancelled_owned());
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("the gateway cannot listen on {}", args.http))?;
    // The address really bound (`--http 127.0.0.1:0` picks a free port).
    let http_addr = listener.local_addr().unwrap_or(args.http);
    let http_stop = CancellationToken::new();
    let http = tokio::spawn(gateway::serve_on(
        listener,
        gateway_config,
        Arc::clone(&backend.log),
        http_stop.clone().cancelled_owned(),
    ));
    eprintln!("pantheon is up on {}", backend.description);
    eprintln!("  http: http://{http_addr} (OpenAPI at /openapi.json)");
    if let Some(token) = &dev_token {
        eprintln!(
            "  dev token (admin, 30 days; local secret in {}):",
            cli.data_dir.join("gateway-hs256.secret").display()
        );
        eprintln!("    export PANTHEON_TOKEN={token}");
        eprintln!(
            "    curl -s -H \"authorization: Bearer $PANTHEON_TOKEN\" -H 'content-type: application/json' \\\n      -d '{{\"capability\":\"echo\",\"description\":\"say hi\",\"input\":\"hi\"}}' http://{}/tasks/execute",
            http_addr
        );
    }
    if agents.is_empty() {
        eprintln!("  agents: none here (tasks wait for agents registered by other processes)");
    } else {
        eprintln!("  agents: {}", agents.join("; "));
    }
    if !context_sources.is_empty() {
        eprintln!("  context sources: history; {}", context_sources.join("; "));
    }
    eprintln!(
        "  federation public key {} (agents verify envelopes and passports with it; `pantheon keys federation`)",
        key.public_key()
    );
    eprintln!("  stop with Ctrl-C (running attempts are given {} to finish)", args.drain_timeout);
    shutdown_signal().await;
    eprintln!(
        "stopping: no new attempt starts; waiting up to {} for the running ones (Ctrl-C again to stop now)…",
        args.drain_timeout
    );
    // The gateway stays up while the pipeline drains, so that callers waiting for a task
    // running here get its result.
    tokio::select! {
        left = runtime.drain(Duration::from(args.drain_timeout)) => {
            if left > 0 {
                eprintln!("  {left} task(s) not finished; they resume on the next start");
            }
        }
        () = shutdown_signal() => eprintln!("  stopping now; unfinished tasks resume on the next start"),
    }
    http_stop.cancel();
    match http.await {
        Ok(Err(error)) => tracing::warn!(%error, "the gateway stopped with an error"),
        Err(error) => tracing::warn!(%error, "the gateway task failed"),
        Ok(Ok(())) => {}
    }
    if let Some(hangups) = hangups {
        hangups.abort();
    }
    runtime.shutdown().await;
    stop.cancel();
    if let Some(archiver) = archiver {
        let _ = archiver.await;
    }
    let _ = backlog_task.await;
    if let Err(error) = read_models.join().await {
        tracing::warn!(%error, "a projection stopped with an error");
    }
    eprintln!("stopped");
    Ok(())
}
