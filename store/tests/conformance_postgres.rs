//! The log conformance suite on PostgreSQL: a fresh database per test on a private server the
//! harness starts (or on `PANTHEON_TEST_DATABASE_URL`), reopened for restarts.

use std::sync::Arc;

use async_trait::async_trait;
use events::EventLog;
use testkit::conformance::Backend;

struct Postgres {
    url: String,
}

impl Postgres {
    async fn new() -> Self {
        let url = testkit::postgres::fresh_database_url().await.expect("a fresh PostgreSQL database");
        Self { url }
    }
}

#[async_trait]
impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn EventLog> {
        store::open(&self.url).await.expect("open postgres log")
    }
}

testkit::conformance_tests!(Postgres::new());
