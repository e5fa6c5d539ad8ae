//! Benchmark (being built).
