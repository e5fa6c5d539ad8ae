//! # nats: the event log on NATS JetStream (docs being written).

mod archive;
mod config;
mod error;
pub mod layout;
mod log;
mod setup;
mod subscription;

pub use archive::{
    ARCHIVE_RETRY_DELAY, ARCHIVER_SUBSCRIPTION, Archive, ArchivedLog, Archiver, ArchiverReport,
    REPLAY_PAGE_COUNT_MAX,
};
pub use config::{FETCH_BATCH_COUNT_MAX, NatsLogConfig, REPLAY_BATCH_COUNT_MAX};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use log::{
    APPEND_ANY_RETRY_COUNT_MAX, DIRECT_READ_VERSION_COUNT_MAX, NatsLog, STREAM_HEAD_CACHE_COUNT_MAX,
};
pub use setup::MESSAGE_BYTES_MAX;
pub use subscription::{DROP_RELEASE_WAIT, IDLE_WAIT, NatsSubscription, RETRY_DELAY_MAX};
