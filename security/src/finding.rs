//! What a scan finds: the kinds of finding, rule ids, findings and the report.
//!
//! A [`Finding`] holds a kind, a rule id, a byte span of the scanned text and a score — never
//! the matched text. Its rule id is a [`RuleId`], which can only name a rule of the built-in
//! catalogue (deserialising any other string fails), so a recorded finding cannot carry a
//! secret even by mistake.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! named_kinds {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The snake_case name used in placeholders, policy keys and metrics.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named_kinds! {
    /// The kind of secret a finding is.
    SecretKind {
        /// AWS access key id (`AKIA…`, `ASIA…`).
        AwsAccessKey => "aws_access_key",
        /// AWS secret access key next to its name.
        AwsSecretKey => "aws_secret_key",
        /// GitHub personal, OAuth, app or refresh token.
        GithubToken => "github_token",
        /// GitLab personal, deploy or runner token.
        GitlabToken => "gitlab_token",
        /// Slack bot, user or app token.
        SlackToken => "slack_token",
        /// Slack incoming-webhook URL.
        SlackWebhook => "slack_webhook",
        /// Stripe secret or restricted key.
        StripeKey => "stripe_key",
        /// Google API key (`AIza…`).
        GoogleApiKey => "google_api_key",
        /// OpenAI API key.
        OpenaiKey => "openai_key",
        /// Anthropic API key.
        AnthropicKey => "anthropic_key",
        /// npm access token.
        NpmToken => "npm_token",
        /// PyPI upload token.
        PypiToken => "pypi_token",
        /// SendGrid API key.
        SendgridKey => "sendgrid_key",
        /// Telegram bot token.
        TelegramBotToken => "telegram_bot_token",
        /// Discord bot token.
        DiscordToken => "discord_token",
        /// PEM or OpenSSH private key block.
        PrivateKey => "private_key",
        /// JSON Web Token.
        Jwt => "jwt",
        /// Password in a URL's user information: a database or broker connection string, or
        /// any other URL (`https://user:pass@host`, `git://…`, proxy settings).
        ConnectionString => "connection_string",
        /// High-entropy value next to a key-like name (`api_key=…`, `password: …`), or an HTTP
        /// Bearer or Basic credential.
        GenericCredential => "generic_credential",
    }
}

named_kinds! {
    /// The kind of personal data a finding is.
    PiiKind {
        /// E-mail address, in any script (`josé.müller@bücher.de`).
        Email => "email",
        /// Telephone number (E.164 or North American format, or a national format beside its
        /// label: `Tel.: 030 12345678`).
        Phone => "phone",
        /// Payment card number that passes Luhn and has a known issuer prefix.
        PaymentCard => "payment_card",
        /// IBAN with a valid country length and mod-97 checksum.
        Iban => "iban",
        /// US social security number (dashed, or undashed beside its label, with the SSA's
        /// validity rules).
        UsSsn => "us_ssn",
        /// UK national insurance number (format and prefix rules).
        UkNino => "uk_nino",
        /// Spanish DNI or NIE with its mod-23 check letter.
        EsDni => "es_dni",
        /// Italian codice fiscale with its check character.
        ItCodiceFiscale => "it_codice_fiscale",
        /// Brazilian CPF with its two mod-11 check digits.
        BrCpf => "br_cpf",
        /// Indian Aadhaar number with its Verhoeff check digit.
        InAadhaar => "in_aadhaar",
    }
}

/// The category and kind of a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "category", content = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// An attempt to override, extract or subvert the instructions of the agent that reads the text.
    PromptInjection,
    /// Invisible or direction-changing characters (zero-width, bidi controls, Unicode tags).
    InvisibleText,
    /// A credential.
    Secret(SecretKind),
    /// Personal data.
    Pii(PiiKind),
}

/// The three categories of finding the policy and the benchmark speak of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// [`FindingKind::PromptInjection`].
    PromptInjection,
    /// [`FindingKind::InvisibleText`].
    InvisibleText,
    /// [`FindingKind::Secret`].
    Secret,
    /// [`FindingKind::Pii`].
    Pii,
}

impl Category {
    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Category::PromptInjection => "prompt_injection",
            Category::InvisibleText => "invisible_text",
            Category::Secret => "secret",
            Category::Pii => "pii",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FindingKind {
    /// The category of this kind.
    pub fn category(self) -> Category {
        match self {
            FindingKind::PromptInjection => Category::PromptInjection,
            FindingKind::InvisibleText => Category::InvisibleText,
            FindingKind::Secret(_) => Category::Secret,
            FindingKind::Pii(_) => Category::Pii,
        }
    }

    /// The placeholder name: the specific kind for secrets and PII, the category otherwise.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::PromptInjection => "prompt_injection",
            FindingKind::InvisibleText => "invisible_text",
            FindingKind::Secret(kind) => kind.name(),
            FindingKind::Pii(kind) => kind.name(),
        }
    }

    /// The dotted key used in policy overrides and metrics, e.g. `secret.aws_access_key`.
    pub fn key(self) -> String {
        match self {
            FindingKind::PromptInjection | FindingKind::InvisibleText => self.name().to_owned(),
            FindingKind::Secret(kind) => format!("secret.{kind}"),
            FindingKind::Pii(kind) => format!("pii.{kind}"),
        }
    }

    /// Every kind, for policy validation and metrics.
    pub fn all() -> impl Iterator<Item = FindingKind> {
        [FindingKind::PromptInjection, FindingKind::InvisibleText]
            .into_iter()
            .chain(SecretKind::ALL.iter().map(|kind| FindingKind::Secret(*kind)))
            .chain(PiiKind::ALL.iter().map(|kind| FindingKind::Pii(*kind)))
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// The id of a built-in detection rule, e.g. `injection.override.ignore_previous`.
///
/// Only ids of the built-in catalogue exist: [`RuleId::from_name`] and deserialisation refuse any
/// other string, so a value of this type can never hold scanned text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(&'static str);

impl RuleId {
    pub(crate) const fn new(id: &'static str) -> RuleId {
        RuleId(id)
    }

    /// Looks a rule id up in the catalogue.
    pub fn from_name(name: &str) -> Option<RuleId> {
        crate::rules::catalogue().find(|id| *id == name).map(RuleId)
    }

    /// The id as text.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        RuleId::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown rule id {name:?}")))
    }
}

/// One detection: what, by which rule, where (byte offsets in the original text) and how sure.
///
/// It never holds the matched text; record it in events as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// The rule that found it.
    pub rule_id: RuleId,
    /// Byte offsets in the scanned text (always on `char` boundaries).
    pub span: Range<usize>,
    /// Confidence in `0.0..=1.0`; checksum-validated matches score 1.0.
    pub score: f32,
}

/// The most findings a [`Report`] lists. A text made of addresses or numbers (1 MB of
/// `a@b.co ` holds about 150,000) would otherwise yield a list as large as the text itself,
/// and the lists a policy decision carries are recorded and counted. Past the cap, findings are
/// counted in [`Report::findings_dropped`] and their kinds and spans kept apart, so redaction
/// still removes every one of them.
pub const FINDINGS_PER_SCAN_MAX: usize = 1_000;

/// The outcome of one scan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Findings, ordered by span start: all of them, or, past [`FINDINGS_PER_SCAN_MAX`], a
    /// selection that holds every kind found (the first findings of each kind, kinds taking
    /// turns), so one flood cannot hide another kind.
    pub findings: Vec<Finding>,
    /// How many findings were left out of `findings` by [`FINDINGS_PER_SCAN_MAX`]. They are
    /// still redacted: [`Policy::apply`](crate::Policy::apply) and the scrubbing functions
    /// redact them as they redact listed findings.
    #[serde(default)]
    pub findings_dropped: usize,
    /// Aggregate prompt-injection score in `0.0..=1.0`, from every injection signal, including
    /// those below the threshold that yield no finding.
    pub injection_score: f32,
    /// Whether the injection score reached the configured threshold.
    pub injection_detected: bool,
    /// Kind and span of each finding left out of `findings`, for redaction only: never listed
    /// in a decision, so never recorded or counted by kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unlisted: Vec<Unlisted>,
}

/// A finding past the cap, as much of it as redaction needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Unlisted {
    pub(crate) kind: FindingKind,
    pub(crate) span: Range<usize>,
}

impl Report {
    /// Lists at most [`FINDINGS_PER_SCAN_MAX`] of `findings` (ordered by span start), keeps
    /// the rest as [`Unlisted`] and counts them. Kinds take turns, first findings first: the
    /// listed set holds the first finding of every kind, then the second of every kind, and
    /// so on, so a flood of one kind cannot push another out of the list (or out of the
    /// metrics and the block reason, which are built from it).
    pub(crate) fn cap(&mut self) {
        if self.findings.len() <= FINDINGS_PER_SCAN_MAX {
            return;
        }
        let mut seen: Vec<(FindingKind, usize)> = Vec::new();
        let mut order: Vec<(usize, usize)> = Vec::with_capacity(self.findings.len());
        for (index, finding) in self.findings.iter().enumerate() {
            let rank = match seen.iter_mut().find(|(kind, _)| *kind == finding.kind) {
                Some((_, count)) => {
                    *count += 1;
                    *count
                }
                None => {
                    seen.push((finding.kind, 0));
                    0
                }
            };
            order.push((rank, index));
        }
        order.sort_unstable();
        let mut listed = vec![false; self.findings.len()];
        for (_, index) in order.iter().take(FINDINGS_PER_SCAN_MAX) {
            if let Some(slot) = listed.get_mut(*index) {
                *slot = true;
            }
        }
        let findings = std::mem::take(&mut self.findings);
        for (finding, listed) in findings.into_iter().zip(listed) {
            if listed {
                self.findings.push(finding);
            } else {
                self.unlisted.push(Unlisted { kind: finding.kind, span: finding.span });
            }
        }
        self.findings_dropped = self.unlisted.len();
    }

    /// Kind and span of every finding, listed or not: what a redaction must cover.
    pub(crate) fn all_spans(&self) -> impl Iterator<Item = (FindingKind, &Range<usize>)> {
        self.findings
            .iter()
            .map(|finding| (finding.kind, &finding.span))
            .chain(self.unlisted.iter().map(|unlisted| (unlisted.kind, &unlisted.span)))
    }

    /// Whether any finding has this category.
    pub fn has(&self, category: Category) -> bool {
        self.findings.iter().any(|finding| finding.kind.category() == category)
    }

    /// Findings of one category.
    pub fn of(&self, category: Category) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |finding| finding.kind.category() == category)
    }
}
