//! Placeholder so the workspace manifest parses while the scan benchmark is written.
fn main() {}
