//! # nats: the event log on NATS JetStream (being built).
