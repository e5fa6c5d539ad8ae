//! What every handler shares.

use std::sync::Arc;

use events::EventLog;
use tokio::sync::Semaphore;

use crate::auth::Authenticator;
use crate::config::{GatewayConfig, STREAMS_OPEN_COUNT_MAX};
use crate::error::Result;
use crate::follow::Follower;
use crate::limits::Limiters;
use crate::metrics::Metrics;
use crate::webhooks::TargetPolicy;

/// The gateway's shared state: the log, the configuration, and the bounded resources.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) limits: Arc<Limiters>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) follower: Arc<Follower>,
    pub(crate) streams: Arc<Semaphore>,
    pub(crate) targets: TargetPolicy,
    pub(crate) read: Option<ReadModels>,
}

/// The projections' readers, when the gateway has a read model.
#[derive(Clone, Debug)]
pub(crate) struct ReadModels {
    pub(crate) db: projections::Db,
    pub(crate) tasks: projections::TaskReader,
    pub(crate) runs: projections::RunReader,
}

impl AppState {
    /// Builds the state and starts following the log (needs a Tokio runtime).
    pub fn new(config: GatewayConfig, log: Arc<dyn EventLog>) -> Result<Self> {
        let follower = Follower::start(log.clone(), config.instance.clone());
        let read = config.read_model.clone().map(|db| ReadModels {
            tasks: projections::TaskReader::new(db.clone()),
            runs: projections::RunReader::new(db.clone()),
            db,
        });
        Ok(Self {
            read,
            auth: Arc::new(Authenticator::new(config.auth.clone())),
            limits: config.limiters.clone().unwrap_or_else(|| Arc::new(Limiters::new(&config.rate_limits))),
            metrics: Arc::new(Metrics::default()),
            follower: Arc::new(follower),
            streams: Arc::new(Semaphore::new(STREAMS_OPEN_COUNT_MAX)),
            targets: TargetPolicy::from_config(&config.webhooks),
            config: Arc::new(config),
            log,
        })
    }

    /// The read models, or the 503 that says they are not configured.
    pub(crate) fn read_models(&self, what: &'static str) -> Result<&ReadModels> {
        self.read.as_ref().ok_or(crate::error::Error::Unavailable { what })
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
