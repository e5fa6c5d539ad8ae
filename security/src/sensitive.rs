//! Secrets and personal data: patterns, validators and overlap resolution.
//!
//! Each rule is a regex over the original text plus a check: a checksum (Luhn, mod-97, mod-23,
//! mod-11, Verhoeff…), an entropy and shape test for generic credentials, or the search for the
//! end of a PEM block. A candidate that fails its check is dropped and the search resumes one
//! character after its start, so a failed candidate cannot hide a valid one inside it.
//! Where rules overlap, the earlier rule in [`RULES`] (the more specific one) wins.

use std::ops::Range;

use regex::{Regex, RegexBuilder};

use crate::checksum;
use crate::error::{Error, Result};
use crate::finding::{Finding, FindingKind, PiiKind, RuleId, SecretKind};

/// How far past a `-----BEGIN … PRIVATE KEY-----` header the end marker is looked for. An 8192-bit
/// RSA key in PEM is about 6.5 KiB; 16 KiB leaves room for headers and comments.
pub const PRIVATE_KEY_BYTES_MAX: usize = 16 << 10;

/// What confirms a candidate.
#[derive(Clone, Copy)]
enum Check {
    /// The pattern is specific enough.
    Shape,
    /// A check-digit validator over the matched text.
    Checksum(fn(&str) -> bool),
    /// A key-like value: long, mixed, high entropy.
    KeyValue,
    /// A password-like value: not a placeholder, mixed character classes.
    PasswordValue,
    /// A PEM private key header: extend to the end marker.
    PemBlock,
    /// An AWS secret access key found by its neighbours: key-like, and not a hex digest (a
    /// SHA-1 is 40 characters too).
    AwsSecret,
}

struct Rule {
    id: &'static str,
    kind: FindingKind,
    pattern: &'static str,
    /// Capture group that holds the secret (0: the whole match).
    group: usize,
    check: Check,
}

const fn secret(
    id: &'static str,
    kind: SecretKind,
    pattern: &'static str,
    group: usize,
    check: Check,
) -> Rule {
    Rule { id, kind: FindingKind::Secret(kind), pattern, group, check }
}

const fn pii(id: &'static str, kind: PiiKind, pattern: &'static str, check: Check) -> Rule {
    Rule { id, kind: FindingKind::Pii(kind), pattern, group: 0, check }
}

/// The rules, most specific first (the order decides overlaps).
const RULES: &[Rule] = &[
    secret(
        "secret.private_key",
        SecretKind::PrivateKey,
        r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----",
        0,
        Check::PemBlock,
    ),
    secret(
        "secret.aws_access_key",
        SecretKind::AwsAccessKey,
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z2-7]{16}\b",
        0,
        Check::Shape,
    ),
    secret(
        "secret.aws_secret_key",
        SecretKind::AwsSecretKey,
        r#"(?i:aws)[A-Za-z0-9_.\-]{0,20}(?i:secret|private)[A-Za-z0-9_.\-]{0,20}["']?\s{0,4}(?:=|:|=>|:=)\s{0,4}["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#,
        1,
        Check::Shape,
    ),
    // The secret access key away from a `key = value` form: in a CSV export beside its key id,
    // or in prose after the words that name it, on the same line.
    secret(
        "secret.aws_secret_key_nearby",
        SecretKind::AwsSecretKey,
        r"(?:(?i:aws|secret)|\bA[KS]IA[A-Z2-7]{16}\b)[^\n]{0,160}?(?:[^A-Za-z0-9/+=]|^)([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)",
        1,
        Check::AwsSecret,
    ),
    secret(
        "secret.github_token",
        SecretKind::GithubToken,
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
        0,
        Check::Shape,
    ),
    secret(
        "secret.gitlab_token",
        SecretKind::GitlabToken,
        r"\bgl(?:pat|dt|rt|ptt|cbt|soat|ft|imt|agent)-[A-Za-z0-9_\-]{20,64}",
        0,
        Check::Shape,
    ),
    secret(
        "secret.slack_webhook",
        SecretKind::SlackWebhook,
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{8,}/[A-Za-z0-9+/]{8,}(?:/[A-Za-z0-9+/]{8,})?",
        0,
        Check::Shape,
    ),
    secret(
        "secret.slack_token",
        SecretKind::SlackToken,
        r"\b(?:xox[abposre]-[0-9A-Za-z\-]{10,250}|xapp-\d-[A-Z0-9]{8,}-\d{8,}-[a-z0-9]{32,})",
        0,
        Check::Shape,
    ),
    secret(
        "secret.stripe_key",
        SecretKind::StripeKey,
        r"\b(?:sk|rk)_(?:live|test|prod)_[0-9a-zA-Z]{24,99}",
        0,
        Check::Shape,
    ),
    secret("secret.google_api_key", SecretKind::GoogleApiKey, r"\bAIza[0-9A-Za-z_\-]{35}", 0, Check::Shape),
    secret(
        "secret.anthropic_key",
        SecretKind::AnthropicKey,
        r"\bsk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_\-]{80,120}",
        0,
        Check::Shape,
    ),
    secret(
        "secret.openai_key",
        SecretKind::OpenaiKey,
        r"\bsk-(?:(?:proj|svcacct|admin|None)-)?(?:[A-Za-z0-9_\-]{20,200}T3BlbkFJ[A-Za-z0-9_\-]{20,200}|[A-Za-z0-9_\-]{40,200})",
        0,
        Check::KeyValue,
    ),
    secret("secret.npm_token", SecretKind::NpmToken, r"\bnpm_[A-Za-z0-9]{36}\b", 0, Check::Shape),
    secret(
        "secret.pypi_token",
        SecretKind::PypiToken,
        r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,300}",
        0,
        Check::Shape,
    ),
    secret(
        "secret.sendgrid_key",
        SecretKind::SendgridKey,
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        0,
        Check::Shape,
    ),
    secret(
        "secret.telegram_bot_token",
        SecretKind::TelegramBotToken,
        r"\b\d{8,10}:AA[A-Za-z0-9_\-]{33}",
        0,
        Check::Shape,
    ),
    secret(
        "secret.discord_token",
        SecretKind::DiscordToken,
        r"\b[MNO][A-Za-z0-9_\-]{23,25}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,38}",
        0,
        Check::KeyValue,
    ),
    secret(
        "secret.jwt",
        SecretKind::Jwt,
        r"\beyJ[A-Za-z0-9_\-]{8,2048}\.eyJ[A-Za-z0-9_\-]{8,8192}\.[A-Za-z0-9_\-]{0,2048}",
        0,
        Check::Shape,
    ),
    secret(
        "secret.connection_string",
        SecretKind::ConnectionString,
        r#"\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|jdbc:[a-z]+|ftps?|sftp|smtps?|ldaps?|nats|kafka|clickhouse|cockroachdb|oracle)://[^\s:/@'"]{1,128}:([^\s@/'"]{1,128})@"#,
        1,
        Check::PasswordValue,
    ),
    secret(
        "secret.bearer_token",
        SecretKind::GenericCredential,
        r"(?i:authorization:\s{0,4}bearer|bearer)\s{1,4}([A-Za-z0-9_\-.=+/~]{20,2048})",
        1,
        Check::KeyValue,
    ),
    secret(
        "secret.generic_key",
        SecretKind::GenericCredential,
        r#"(?i:api[_\-.]?key|apikey|api[_\-.]?token|access[_\-.]?key(?:[_\-.]?id)?|secret[_\-.]?key|client[_\-.]?secret|access[_\-.]?token|auth[_\-.]?token|refresh[_\-.]?token|private[_\-.]?key|signing[_\-.]?key|encryption[_\-.]?key|webhook[_\-.]?secret|app[_\-.]?secret|secret|token)["']?\s{0,3}(?:=|:|=>|:=)\s{0,3}["']?([A-Za-z0-9_\-+/=.~]{16,512})"#,
        1,
        Check::KeyValue,
    ),
    secret(
        "secret.generic_password",
        SecretKind::GenericCredential,
        r#"(?i:password|passwd|passphrase|pwd|db[_\-.]?pass|pass)["']?\s{0,3}(?:=|:|=>|:=|\bis\b)\s{0,3}["']?([A-Za-z0-9_\-+/=.~!@#$%^&*?]{8,128})"#,
        1,
        Check::PasswordValue,
    ),
    pii("pii.us_ssn", PiiKind::UsSsn, r"\b\d{3}-\d{2}-\d{4}\b", Check::Checksum(checksum::us_ssn)),
    pii("pii.br_cpf", PiiKind::BrCpf, r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b", Check::Checksum(checksum::br_cpf)),
    pii(
        "pii.in_aadhaar",
        PiiKind::InAadhaar,
        r"\b[2-9]\d{3}[ \-]\d{4}[ \-]\d{4}\b",
        Check::Checksum(checksum::in_aadhaar),
    ),
    pii(
        "pii.it_codice_fiscale",
        PiiKind::ItCodiceFiscale,
        r"\b[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b",
        Check::Checksum(checksum::it_codice_fiscale),
    ),
    pii("pii.es_dni", PiiKind::EsDni, r"\b(?:\d{8}|[XYZ]\d{7})-?[A-Z]\b", Check::Checksum(checksum::es_dni)),
    pii(
        "pii.uk_nino",
        PiiKind::UkNino,
        r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
        Check::Checksum(checksum::uk_nino),
    ),
    pii(
        "pii.payment_card",
        PiiKind::PaymentCard,
        r"\b(?:\d[ \-]?){11,18}\d\b",
        Check::Checksum(checksum::payment_card),
    ),
    pii(
        "pii.iban",
        PiiKind::Iban,
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        Check::Checksum(checksum::iban),
    ),
    pii(
        "pii.email",
        PiiKind::Email,
        r"\b[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
        Check::Shape,
    ),
    pii(
        "pii.phone_nanp",
        PiiKind::Phone,
        r"(?:\+1[ .\-]?)?(?:\([2-9]\d{2}\) ?|\b[2-9]\d{2}[ .\-])[2-9]\d{2}[ .\-]\d{4}\b",
        Check::Shape,
    ),
    pii(
        "pii.phone_e164",
        PiiKind::Phone,
        r"\+[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,5}\)?){2,6}\b",
        Check::Checksum(phone_digits),
    ),
];

/// An international number has 8 to 15 digits (E.164).
fn phone_digits(text: &str) -> bool {
    (8..=15).contains(&text.bytes().filter(u8::is_ascii_digit).count())
}

/// Values that stand for a secret rather than being one.
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    let first = value.as_bytes().first().copied().unwrap_or(b'x');
    matches!(first, b'$' | b'<' | b'{' | b'%' | b'[')
        || value.bytes().all(|b| b == value.as_bytes()[0])
        || [
            "password",
            "passw0rd",
            "changeme",
            "change_me",
            "secret",
            "example",
            "placeholder",
            "your_",
            "your-",
            "xxxx",
            "****",
            "redacted",
            "dummy",
            "sample",
            "<",
            "todo",
            "null",
            "none",
            "undefined",
            "environ",
            "process.env",
            "getenv",
            "config.",
        ]
        .iter()
        .any(|word| lower.contains(word))
}

fn classes(value: &str) -> usize {
    let mut lower = false;
    let mut upper = false;
    let mut digit = false;
    let mut other = false;
    for byte in value.bytes() {
        match byte {
            b'a'..=b'z' => lower = true,
            b'A'..=b'Z' => upper = true,
            b'0'..=b'9' => digit = true,
            _ => other = true,
        }
    }
    usize::from(lower) + usize::from(upper) + usize::from(digit) + usize::from(other)
}

/// Minimum entropy of a key-like value, in bits per character. Random base64 of 20+ characters
/// is above 4; English words and identifiers are usually below 3.5.
const KEY_ENTROPY_BITS_MIN: f32 = 3.5;

fn key_value(value: &str) -> bool {
    let value = value.trim_end_matches(['.', '=']);
    value.len() >= 16
        && !is_placeholder(value)
        && value.bytes().any(|b| b.is_ascii_digit())
        && value.bytes().any(|b| b.is_ascii_alphabetic())
        && classes(value) >= 2
        && checksum::entropy_bits(value) >= KEY_ENTROPY_BITS_MIN
}

fn aws_secret(value: &str) -> bool {
    let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    !hex && value.bytes().any(|b| b.is_ascii_uppercase())
        && value.bytes().any(|b| b.is_ascii_lowercase())
        && key_value(value)
}

fn password_value(value: &str) -> bool {
    let dotted_identifier =
        value.contains('.') && value.bytes().all(|b| b.is_ascii_alphabetic() || b == b'.' || b == b'_');
    !is_placeholder(value)
        && !dotted_identifier
        && (classes(value) >= 3 || (classes(value) >= 2 && value.len() >= 12))
}

/// Extends a PEM header to its end marker (or over its base64 body when the end is missing).
fn pem_block(text: &str, header: &Range<usize>) -> Range<usize> {
    let window_end = floor_boundary(text, header.end.saturating_add(PRIVATE_KEY_BYTES_MAX).min(text.len()));
    let rest = &text[header.end..window_end];
    if let Some(at) = rest.find("-----END ") {
        let after = header.end + at + "-----END ".len();
        if let Some(close) = text[after..window_end].find("-----") {
            return header.start..after + close + "-----".len();
        }
    }
    let body = rest
        .bytes()
        .take_while(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r' | b' ' | b'\t' | b':' | b',')
        })
        .count();
    header.start..header.end + body
}

/// The largest char boundary not after `at`.
pub(crate) fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// The next char boundary strictly after `at` (or the end).
fn next_boundary(text: &str, at: usize) -> usize {
    let mut next = at + 1;
    while next < text.len() && !text.is_char_boundary(next) {
        next += 1;
    }
    next.min(text.len())
}

/// ASCII word boundaries, digits and spaces: Unicode `\b` sends the regex engine off its lazy
/// DFA on non-ASCII text (ten times slower), and the formats matched here are ASCII anyway.
fn ascii_classes(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)").replace(r"\d", "[0-9]").replace(r"\s", r"[ \t\r\n]")
}

/// Rules without a literal to search for (digit- or letter-class led, or case-insensitive
/// names). Searched one by one, each costs a full lazy-DFA pass; together, one pass finds where
/// any of them may start, and each is then tried anchored there.
const GROUPED: &[&str] = &[
    "secret.generic_key",
    "secret.generic_password",
    "pii.us_ssn",
    "pii.br_cpf",
    "pii.in_aadhaar",
    "pii.it_codice_fiscale",
    "pii.es_dni",
    "pii.uk_nino",
    "pii.payment_card",
    "pii.iban",
    "pii.phone_nanp",
];

/// Texts up to this length are first checked for the literal prefixes of the rules searched
/// one by one, and only rules whose prefix occurs are searched: on a short text each search
/// costs more in set-up than in scanning. Longer texts skip the check (each rule's own literal
/// prefilter then does the same work as it scans).
pub const SHORT_TEXT_BYTES_MAX: usize = 4 << 10;

/// Compiled secret and PII rules.
pub(crate) struct SensitiveRules {
    /// Literal prefixes of the ungrouped rules (ASCII case-insensitive), and per literal the
    /// rules it starts.
    gate: aho_corasick::AhoCorasick,
    gate_rules: Vec<Vec<usize>>,
    /// Per rule: whether it is searched on short texts whatever the gate says (no prefix).
    ungated: Vec<bool>,
    /// Per rule: the unanchored regex (ungrouped rules) or the regex anchored at its start.
    regexes: Vec<Regex>,
    /// Per rule: whether it is searched through `combined`.
    grouped: Vec<bool>,
    /// Any grouped rule, to find candidate starts.
    combined: Regex,
}

/// Size limit of one compiled rule (the bounded repetitions of JWT and key values need room).
const RULE_SIZE_BYTES_MAX: usize = 32 << 20;

fn compile(id: &'static str, pattern: &str) -> Result<Regex> {
    RegexBuilder::new(pattern)
        .size_limit(RULE_SIZE_BYTES_MAX)
        .dfa_size_limit(RULE_SIZE_BYTES_MAX)
        .build()
        .map_err(|source| Error::Rule { rule_id: id, source: Box::new(source) })
}

impl SensitiveRules {
    pub(crate) fn new() -> Result<SensitiveRules> {
        let mut regexes = Vec::with_capacity(RULES.len());
        let mut grouped = Vec::with_capacity(RULES.len());
        let mut alternatives = Vec::new();
        for rule in RULES {
            let pattern = ascii_classes(rule.pattern);
            let is_grouped = GROUPED.contains(&rule.id);
            if is_grouped {
                regexes.push(compile(rule.id, &format!("^(?:{pattern})"))?);
                alternatives.push(format!("(?:{pattern})"));
            } else {
                regexes.push(compile(rule.id, &pattern)?);
            }
            grouped.push(is_grouped);
        }
        let combined = compile("sensitive.*", &alternatives.join("|"))?;
        let mut by_literal: std::collections::BTreeMap<Vec<u8>, Vec<usize>> =
            std::collections::BTreeMap::new();
        let mut ungated = vec![false; RULES.len()];
        for (index, rule) in RULES.iter().enumerate() {
            if grouped.get(index).copied().unwrap_or(true) {
                continue;
            }
            match crate::prefilter::prefix_literals(&ascii_classes(rule.pattern), 2) {
                Some(literals) => {
                    for literal in literals {
                        by_literal.entry(literal).or_default().push(index);
                    }
                }
                None => {
                    if let Some(slot) = ungated.get_mut(index) {
                        *slot = true;
                    }
                }
            }
        }
        let gate = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(by_literal.keys())
            .map_err(|error| Error::Config { field: "sensitive rules", reason: error.to_string() })?;
        let gate_rules = by_literal.into_values().collect();
        Ok(SensitiveRules { gate, gate_rules, ungated, regexes, grouped, combined })
    }

    /// Every validated finding in `text` whose kind passes `wanted`, overlaps resolved.
    pub(crate) fn scan(&self, text: &str, wanted: impl Fn(FindingKind) -> bool) -> Vec<Finding> {
        let mut found: Vec<(usize, Finding)> = Vec::new();
        // On a short text, only the rules whose literal prefix occurs can match.
        let possible: Option<Vec<bool>> = (text.len() <= SHORT_TEXT_BYTES_MAX).then(|| {
            let mut possible = self.ungated.clone();
            for hit in self.gate.find_overlapping_iter(text) {
                for rule in self.gate_rules.get(hit.pattern().as_usize()).into_iter().flatten() {
                    if let Some(slot) = possible.get_mut(*rule) {
                        *slot = true;
                    }
                }
            }
            possible
        });
        for (priority, ((rule, regex), grouped)) in
            RULES.iter().zip(&self.regexes).zip(&self.grouped).enumerate()
        {
            let ruled_out =
                possible.as_ref().is_some_and(|possible| !possible.get(priority).copied().unwrap_or(true));
            if *grouped || ruled_out || !wanted(rule.kind) {
                continue;
            }
            let mut at = 0;
            while at < text.len() {
                let Some((whole, span)) = candidate(rule, regex, text, at) else { break };
                match evaluate(rule, text, span) {
                    Some(finding) => {
                        at = finding.span.end.max(next_boundary(text, whole.start));
                        found.push((priority, finding));
                    }
                    None => at = next_boundary(text, whole.start),
                }
            }
        }
        let mut at = 0;
        while at < text.len() {
            let Some(start) = self.combined.find_at(text, at).map(|m| m.start()) else { break };
            let rest = &text[start..];
            for (priority, ((rule, regex), grouped)) in
                RULES.iter().zip(&self.regexes).zip(&self.grouped).enumerate()
            {
                if !*grouped || !wanted(rule.kind) {
                    continue;
                }
                let Some((_, span)) = candidate(rule, regex, rest, 0) else { continue };
                if let Some(finding) = evaluate(rule, text, span.start + start..span.end + start) {
                    found.push((priority, finding));
                }
            }
            at = next_boundary(text, start);
        }
        resolve_overlaps(found)
    }
}

/// The next match of `regex` from `at`: the whole match and the secret's span in it.
fn candidate(rule: &Rule, regex: &Regex, text: &str, at: usize) -> Option<(Range<usize>, Range<usize>)> {
    if rule.group == 0 {
        regex.find_at(text, at).map(|m| (m.range(), m.range()))
    } else {
        let caps = regex.captures_at(text, at)?;
        Some((caps.get(0)?.range(), caps.get(rule.group)?.range()))
    }
}

/// Checks a candidate; returns the finding (span possibly extended) if it holds.
fn evaluate(rule: &Rule, text: &str, span: Range<usize>) -> Option<Finding> {
    let value = text.get(span.clone())?;
    let (accepted, span, score) = match rule.check {
        Check::Shape => (true, span, 0.9),
        Check::Checksum(valid) => (valid(value), span, 1.0),
        Check::KeyValue => (key_value(value), span, 0.8),
        Check::PasswordValue => (password_value(value), span, 0.7),
        Check::AwsSecret => (aws_secret(value), span, 0.8),
        Check::PemBlock => {
            let block = pem_block(text, &span);
            (true, block, 1.0)
        }
    };
    let standalone = !matches!(rule.kind, FindingKind::Pii(_)) || !continues_number(text, &span);
    (accepted && standalone).then(|| Finding { kind: rule.kind, rule_id: RuleId::new(rule.id), span, score })
}

/// Whether a matched number is only part of a longer grouped number (`1234 5678 9012` inside
/// a card number `1234 5678 9012 3456`): a separator and a digit right before or after it.
fn continues_number(text: &str, span: &Range<usize>) -> bool {
    let bytes = text.as_bytes();
    let separator = |b: u8| matches!(b, b' ' | b'-' | b'.');
    let after =
        span.end + 1 < bytes.len() && separator(bytes[span.end]) && bytes[span.end + 1].is_ascii_digit();
    let before =
        span.start >= 2 && separator(bytes[span.start - 1]) && bytes[span.start - 2].is_ascii_digit();
    let first_digit = bytes.get(span.start).is_some_and(u8::is_ascii_digit);
    let last_digit = span.end > 0 && bytes.get(span.end - 1).is_some_and(u8::is_ascii_digit);
    (after && last_digit) || (before && first_digit)
}

/// Keeps, of findings that overlap, the one of the earliest rule.
fn resolve_overlaps(mut found: Vec<(usize, Finding)>) -> Vec<Finding> {
    found.sort_by_key(|(priority, finding)| (finding.span.start, *priority));
    let mut kept: Vec<(usize, Finding)> = Vec::with_capacity(found.len());
    for (priority, finding) in found {
        match kept.last_mut() {
            Some((last_priority, last)) if finding.span.start < last.span.end => {
                // The union is redacted, so no byte of either candidate survives; the kind is
                // the more specific rule's.
                let union = last.span.start.min(finding.span.start)..last.span.end.max(finding.span.end);
                if priority < *last_priority {
                    *last_priority = priority;
                    *last = finding;
                }
                last.span = union;
            }
            _ => kept.push((priority, finding)),
        }
    }
    kept.into_iter().map(|(_, finding)| finding).collect()
}

/// The rule ids, for the catalogue.
pub(crate) fn rule_ids() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|rule| rule.id)
}
