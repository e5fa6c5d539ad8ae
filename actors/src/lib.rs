//! # actors: the pipeline (being built).
