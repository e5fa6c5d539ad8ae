//! # testkit
//!
//! Test support for Pantheon's crates (a dev-dependency only): throwaway servers the tests
//! start and clean up themselves, and the one conformance suite every log backend runs.
//!
//! # Layout
//! - [`postgres`]: [`PgServer`], a private PostgreSQL (Debian's `initdb` + `postgres`) on a
//!   free port in a temp dir, and [`postgres::fresh_database_url`], a new empty database per
//!   test (on `PANTHEON_TEST_DATABASE_URL` when set).
//! - [`conformance`]: the log conformance suite, one `pub async fn` per case, parametrised by a
//!   [`conformance::Backend`] that can open the log again on the same storage; the
//!   [`conformance_tests!`] macro expands it into one `#[tokio::test]` per case.
//! - [`faults`]: [`faults::CutLog`], a log that cuts multi-event batches short, as a crash
//!   between two publishes of a non-atomic batch would.
//! - [`Error`]: what can fail while starting test infrastructure.

pub mod conformance;
mod error;
pub mod faults;
pub mod nats_server;
pub mod postgres;

pub use error::{Error, Result};
pub use postgres::PgServer;

/// A TCP port on 127.0.0.1 nobody listens on right now, for a throwaway server.
pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
