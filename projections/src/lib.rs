//! # projections: read models fed by the log (being built).
