//! (being built)
use async_trait::async_trait;
use events::RecordedEvent;

use crate::Result;
use crate::db::Tx;
use crate::runner::Projection;

pub(crate) struct HealthProjection;

#[async_trait]
impl Projection for HealthProjection {
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }
    fn digest_queries(&self, _postgres: bool) -> &'static [&'static str] {
        &[]
    }
    async fn apply(&mut self, _tx: &mut Tx, _events: &[RecordedEvent]) -> Result<()> {
        Ok(())
    }
}
