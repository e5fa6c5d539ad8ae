//! The shared log conformance suite against a real nats-server with JetStream, one private
//! server per case (started on a free port, killed and removed on drop).

use std::sync::Arc;
use std::time::Duration;

use events::EventLog;
use nats::{NatsLog, NatsLogConfig};
use testkit::nats_server::NatsServer;

struct JetStream {
    server: NatsServer,
}

impl JetStream {
    async fn start() -> Self {
        Self { server: NatsServer::start().expect("start nats-server") }
    }

    fn config(&self) -> NatsLogConfig {
        NatsLogConfig {
            ack_wait: Duration::from_secs(2),
            redelivery_backoff: vec![Duration::from_secs(2), Duration::from_secs(4)],
            // The suite's payloads are plain text, not MessagePack.
            require_msgpack_payload: false,
            ..NatsLogConfig::new(self.server.url())
        }
    }
}

#[async_trait::async_trait]
impl testkit::conformance::Backend for JetStream {
    async fn open(&self) -> Arc<dyn EventLog> {
        Arc::new(NatsLog::connect(self.config()).await.expect("open the JetStream log"))
    }

    /// nats-server 2.9 has no atomic batch publish (see the crate docs).
    fn atomic_batches(&self) -> bool {
        false
    }
}

testkit::conformance_tests!(JetStream::start());
