//! The catalogue of rule ids: every id a [`crate::RuleId`] can hold.

/// Every built-in rule id.
pub(crate) fn catalogue() -> impl Iterator<Item = &'static str> {
    crate::injection::rule_ids().chain(crate::sensitive::rule_ids()).chain(crate::scanner::rule_ids())
}
