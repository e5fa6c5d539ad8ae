//! The log conformance suite on SQLite: a fresh file per test, reopened for restarts.

use std::sync::Arc;

use async_trait::async_trait;
use events::EventLog;
use tempfile::TempDir;
use testkit::conformance::Backend;

struct Sqlite {
    dir: TempDir,
}

impl Sqlite {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn open(&self) -> Arc<dyn EventLog> {
        let url = format!("sqlite://{}?mode=rwc", self.dir.path().join("log.db").display());
        store::open(&url).await.expect("open sqlite log")
    }
}

testkit::conformance_tests!(async { Sqlite::new() });
