//! Counts of screening findings for the Prometheus endpoint: by finding kind, rule id, phase
//! (ingress or egress) and the action the policy took.
//!
//! Screening runs in the pipeline's actors while `GET /metrics` is served by the gateway; both
//! run in one process (`pantheon up`), so the counts live in one process-wide table,
//! [`finding_counts`], like a Prometheus client's default registry. The label values come
//! from closed sets (the rule catalogue, the finding kinds, two phases, three actions), so the
//! number of series is bounded whatever the input. A count never holds matched text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use crate::finding::Finding;
use crate::policy::Action;

/// Where in the pipeline a text was screened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// A submitted task's description and input.
    Ingress,
    /// An agent's output.
    Egress,
}

impl Phase {
    /// The label value: `ingress` or `egress`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Ingress => "ingress",
            Phase::Egress => "egress",
        }
    }
}

impl Action {
    /// The label value: `block`, `redact` or `flag`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Redact => "redact",
            Action::Flag => "flag",
        }
    }
}

/// The labels of one series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FindingLabels {
    /// The finding kind's key, e.g. `secret.aws_access_key` or `prompt_injection`.
    pub kind: String,
    /// The rule id, e.g. `injection.override.ignore_previous`.
    pub rule_id: String,
    /// Ingress or egress.
    pub phase: Phase,
    /// What the policy did.
    pub action: Action,
}

/// Finding counts per label set.
#[derive(Debug, Default)]
pub struct FindingCounts {
    counts: Mutex<BTreeMap<FindingLabels, u64>>,
}

/// The Prometheus series the counts are exported as.
pub const FINDINGS_METRIC: &str = "pantheon_screening_findings_total";

impl FindingCounts {
    /// Counts each of `findings`, found in `phase` and handled with `action`.
    pub fn record(&self, phase: Phase, action: Action, findings: &[Finding]) {
        if findings.is_empty() {
            return;
        }
        // A poisoned lock only means another thread panicked mid-increment; the counts are
        // still usable.
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for finding in findings {
            let labels = FindingLabels {
                kind: finding.kind.key(),
                rule_id: finding.rule_id.as_str().to_owned(),
                phase,
                action,
            };
            *counts.entry(labels).or_insert(0) += 1;
        }
    }

    /// The count of one label set (0 if never seen).
    pub fn get(&self, labels: &FindingLabels) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.get(labels).copied().unwrap_or(0)
    }

    /// Every label set and its count, in label order.
    pub fn snapshot(&self) -> Vec<(FindingLabels, u64)> {
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.iter().map(|(labels, count)| (labels.clone(), *count)).collect()
    }

    /// The counts in the Prometheus text exposition format (`HELP`, `TYPE`, one line per
    /// label set; only the header when nothing was found yet).
    pub fn render(&self) -> String {
        let mut out = format!(
            "# HELP {FINDINGS_METRIC} Screening findings by kind, rule, phase and policy action.\n# TYPE {FINDINGS_METRIC} counter\n"
        );
        for (labels, count) in self.snapshot() {
            let _ = writeln!(
                out,
                "{FINDINGS_METRIC}{{kind=\"{}\",rule_id=\"{}\",phase=\"{}\",action=\"{}\"}} {count}",
                escape(&labels.kind),
                escape(&labels.rule_id),
                labels.phase.name(),
                labels.action.name()
            );
        }
        out
    }
}

/// Escapes a label value for the text format (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// The process-wide finding counts: recorded by the screening phases, rendered by the gateway.
pub fn finding_counts() -> &'static FindingCounts {
    static COUNTS: OnceLock<FindingCounts> = OnceLock::new();
    COUNTS.get_or_init(FindingCounts::default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ScanConfig, Scanner};

    #[test]
    fn findings_are_counted_by_kind_rule_phase_and_action() {
        let scanner = Scanner::new(ScanConfig::default()).expect("scanner builds");
        let report = scanner.scan("deploy with AKIAIOSFODNN7EXAMPLE now");
        let counts = FindingCounts::default();
        counts.record(Phase::Egress, Action::Redact, &report.findings);
        counts.record(Phase::Egress, Action::Redact, &report.findings);
        let snapshot = counts.snapshot();
        assert_eq!(snapshot.len(), 1, "{snapshot:?}");
        let (labels, count) = &snapshot[0];
        assert_eq!(labels.kind, "secret.aws_access_key");
        assert_eq!((labels.phase, labels.action, *count), (Phase::Egress, Action::Redact, 2));
        let text = counts.render();
        assert!(text.contains("# TYPE pantheon_screening_findings_total counter"));
        assert!(
            text.contains(&format!(
                "pantheon_screening_findings_total{{kind=\"secret.aws_access_key\",rule_id=\"{}\",phase=\"egress\",action=\"redact\"}} 2",
                labels.rule_id
            )),
            "{text}"
        );
        assert!(!text.contains("AKIAIOSFODNN7EXAMPLE"), "a count never holds the secret");
    }
}
