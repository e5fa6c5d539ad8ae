//! # security: prompt-injection and sensitive-data screening (being built).
