//! # gateway: the HTTP and WebSocket API (being built).
