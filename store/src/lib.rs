//! # store (placeholder until the SQL log lands)
