//! The screening crate's error type.

/// Errors from building a scanner or reading a policy.
///
/// Scanning itself never fails: any text, however large or malformed, yields a [`crate::Report`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of its documented range.
    #[error("invalid scan configuration: {field} {reason}")]
    Config {
        /// The field at fault.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A built-in detection rule failed to compile (a programmer error caught at start-up).
    #[error("rule {rule_id} does not compile: {source}")]
    Rule {
        /// The rule.
        rule_id: &'static str,
        /// The regex compiler's error.
        #[source]
        source: Box<regex::Error>,
    },
    /// A built-in rule failed to compile for anchored matching (a programmer error caught at
    /// start-up).
    #[error("rule {rule_id} does not compile for anchored matching: {source}")]
    RuleAutomaton {
        /// The rule.
        rule_id: &'static str,
        /// The automaton builder's error.
        #[source]
        source: Box<regex_automata::meta::BuildError>,
    },
    /// A policy names a finding kind that does not exist.
    #[error("unknown finding kind {name:?} in policy overrides")]
    UnknownKind {
        /// The name given.
        name: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
