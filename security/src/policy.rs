//! The policy: per kind of finding, block, redact or flag; and the decision it makes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::finding::{Category, Finding, FindingKind, Report};

/// What to do with a kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the text: the task is rejected (ingress) or the result withheld (egress).
    Block,
    /// Replace the finding's span with a typed placeholder such as `[REDACTED:aws_access_key]`.
    Redact,
    /// Let the text through unchanged; record and count the finding.
    Flag,
}

/// What a policy does with each kind of finding.
///
/// Defaults, and why:
/// - `prompt-injection = "block"`: an instruction aimed at the agent must not reach it.
/// - `secret = "redact"`: the task can usually go on without the credential, and the event log
///   is append-only, so a secret that lands there can never be erased.
/// - `pii = "redact"`: for the same reason (erasure requests cannot be honoured in an immutable
///   log); set `pii = "flag"` or override single kinds where the data is the point of the task.
/// - `invisible-text = "flag"`: zero-width characters also come from copy-paste; they already
///   feed the injection score.
///
/// ```toml
/// prompt-injection = "block"
/// secret = "redact"
/// pii = "redact"
/// invisible-text = "flag"
///
/// [overrides]
/// "pii.email" = "flag"
/// "secret.private_key" = "block"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
pub struct Policy {
    /// Action for prompt injection. Default: block.
    pub prompt_injection: Action,
    /// Action for secrets. Default: redact.
    pub secret: Action,
    /// Action for personal data. Default: redact.
    pub pii: Action,
    /// Action for invisible characters. Default: flag.
    pub invisible_text: Action,
    /// Actions for single kinds, keyed like `secret.aws_access_key` or `pii.email`
    /// (see [`FindingKind::key`]); they win over the category's action. Default: none.
    pub overrides: BTreeMap<String, Action>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            prompt_injection: Action::Block,
            secret: Action::Redact,
            pii: Action::Redact,
            invisible_text: Action::Flag,
            overrides: BTreeMap::new(),
        }
    }
}

/// The outcome of applying a policy to a text and its report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// The text goes through unchanged.
    Allow {
        /// Findings whose action is flag.
        flagged: Vec<Finding>,
    },
    /// The text goes through with spans replaced by placeholders.
    Redacted {
        /// The redacted text: store and forward this, never the original.
        text: String,
        /// Findings whose spans were replaced (offsets in the original text).
        redacted: Vec<Finding>,
        /// Findings whose action is flag.
        flagged: Vec<Finding>,
    },
    /// The text is refused.
    Blocked {
        /// Why, for the task's submitter and the log: kinds and rule ids, never matched text.
        reason: String,
        /// Every finding.
        findings: Vec<Finding>,
    },
}

impl Decision {
    /// Whether the text was refused.
    pub fn is_blocked(&self) -> bool {
        matches!(self, Decision::Blocked { .. })
    }
}

impl Policy {
    /// Checks that every override names a kind that exists.
    pub fn validate(&self) -> Result<()> {
        for name in self.overrides.keys() {
            if !FindingKind::all().any(|kind| kind.key() == *name) {
                return Err(Error::UnknownKind { name: name.clone() });
            }
        }
        Ok(())
    }

    /// The action for one kind.
    pub fn action(&self, kind: FindingKind) -> Action {
        if !self.overrides.is_empty()
            && let Some(action) = self.overrides.get(&kind.key())
        {
            return *action;
        }
        match kind.category() {
            Category::PromptInjection => self.prompt_injection,
            Category::InvisibleText => self.invisible_text,
            Category::Secret => self.secret,
            Category::Pii => self.pii,
        }
    }

    /// Decides what happens to `text`, given the `report` of scanning it.
    ///
    /// Block wins over redact, which wins over flag. Redaction replaces each merged group of
    /// overlapping spans with one placeholder named after its first finding's kind, so no byte
    /// of a detected span survives. Spans outside the text or off char boundaries are widened
    /// to the nearest boundaries (never narrowed).
    ///
    /// # Examples
    ///
    /// ```
    /// use security::{Decision, Policy, ScanConfig, Scanner};
    ///
    /// let scanner = Scanner::new(ScanConfig::default())?;
    /// let text = "deploy with AKIAIOSFODNN7EXAMPLE please";
    /// let decision = Policy::default().apply(text, &scanner.scan(text));
    /// let Decision::Redacted { text, .. } = decision else { panic!("expected redaction") };
    /// assert_eq!(text, "deploy with [REDACTED:aws_access_key] please");
    /// # Ok::<(), security::Error>(())
    /// ```
    ///
    /// A report that lists only part of its findings ([`Report::findings_dropped`]) is
    /// redacted whole: the decision lists the findings the report lists, and its text has every
    /// finding's span replaced, listed or not.
    pub fn apply(&self, text: &str, report: &Report) -> Decision {
        let mut redacted = Vec::new();
        let mut flagged = Vec::new();
        for finding in &report.findings {
            match self.action(finding.kind) {
                Action::Block => {}
                Action::Redact => redacted.push(finding.clone()),
                Action::Flag => flagged.push(finding.clone()),
            }
        }
        // Unlisted findings count too, so no cap can turn a block into a pass (the report
        // lists every kind it found anyway).
        let blocked: Vec<FindingKind> = report
            .all_spans()
            .map(|(kind, _)| kind)
            .filter(|kind| self.action(*kind) == Action::Block)
            .collect();
        if !blocked.is_empty() {
            let rules = report
                .findings
                .iter()
                .filter(|finding| self.action(finding.kind) == Action::Block)
                .map(|finding| finding.rule_id.as_str());
            return Decision::Blocked {
                reason: block_reason(blocked, rules, report),
                findings: report.findings.clone(),
            };
        }
        let spans = self.redaction_spans(report);
        if spans.is_empty() {
            return Decision::Allow { flagged };
        }
        Decision::Redacted { text: redact_spans(text, spans), redacted, flagged }
    }

    /// The spans of `report` this policy redacts, listed findings and unlisted ones, with
    /// their placeholder names.
    pub(crate) fn redaction_spans(&self, report: &Report) -> Vec<(Range<usize>, &'static str)> {
        report
            .all_spans()
            .filter(|(kind, _)| self.action(*kind) == Action::Redact)
            .map(|(kind, span)| (span.clone(), kind.name()))
            .collect()
    }
}

fn block_reason<'a>(
    mut kinds: Vec<FindingKind>,
    rules: impl Iterator<Item = &'a str>,
    report: &Report,
) -> String {
    kinds.sort();
    kinds.dedup();
    let mut rules: Vec<&str> = rules.collect();
    rules.sort_unstable();
    rules.dedup();
    let mut reason = String::from("blocked by policy: ");
    for (index, kind) in kinds.iter().enumerate() {
        if index > 0 {
            reason.push_str(", ");
        }
        reason.push_str(&kind.key());
        if *kind == FindingKind::PromptInjection {
            let _ = write!(reason, " (score {:.2})", report.injection_score);
        }
    }
    let _ = write!(reason, "; rules: {}", rules.join(", "));
    reason
}

/// Replaces every span (merged where they overlap) with a typed placeholder.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    redact_spans(text, findings.iter().map(|finding| (finding.span.clone(), finding.kind.name())).collect())
}

/// [`redact`] over spans and placeholder names.
pub(crate) fn redact_spans(text: &str, spans: Vec<(Range<usize>, &'static str)>) -> String {
    let mut spans: Vec<(Range<usize>, &'static str)> = spans
        .into_iter()
        .map(|(span, name)| (widen(text, &span), name))
        .filter(|(span, _)| !span.is_empty())
        .collect();
    spans.sort_by(|a, b| a.0.start.cmp(&b.0.start).then(b.0.end.cmp(&a.0.end)));
    let mut merged: Vec<(Range<usize>, &'static str)> = Vec::with_capacity(spans.len());
    for (span, name) in spans {
        match merged.last_mut() {
            Some((last, _)) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push((span, name)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (span, name) in merged {
        out.push_str(&text[at..span.start]);
        let _ = write!(out, "[REDACTED:{name}]");
        at = span.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Clamps a span to the text and widens it to char boundaries.
fn widen(text: &str, span: &Range<usize>) -> Range<usize> {
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = span.end.min(text.len()).max(start);
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}
