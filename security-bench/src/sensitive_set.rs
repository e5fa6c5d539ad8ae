//! The generated labelled set of secrets and personal data.
//!
//! Positives: every kind of secret and PII the scanner knows, with valid check digits, in a
//! variety of sentences and formats (spaces, dashes, compact; passwords in URLs of any scheme,
//! HTTP Basic headers, labelled SSNs without dashes and national phone numbers, addresses in
//! other scripts). Negatives: the same numbers with a broken check digit or a rule-breaking
//! prefix, amounts after a phone label, unlabelled nine-digit numbers, and look-alikes that are
//! not sensitive (UUIDs, hashes, order and tracking numbers, versions, timestamps,
//! placeholders and key skeletons). Deterministic.

use std::ops::Range;

use super::Rng;
use security::checksum;
use security::{FindingKind, PiiKind, SecretKind};

/// One labelled text: what a scanner should find in it, and where.
#[derive(Clone, Debug)]
pub struct LabelledText {
    /// The text.
    pub text: String,
    /// Expected findings (empty for negatives).
    pub expected: Vec<(FindingKind, Range<usize>)>,
    /// What the sample is, for error listings (e.g. `negative:uuid`).
    pub label: String,
}

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const DIGITS: &[u8] = b"0123456789";

impl Rng {
    fn string(&mut self, alphabet: &[u8], length: usize) -> String {
        (0..length).map(|_| char::from(alphabet[self.below(alphabet.len())])).collect()
    }

    fn digits(&mut self, length: usize) -> String {
        self.string(DIGITS, length)
    }
}

/// Sentences a sensitive value is placed in; `{}` is the value.
const SECRET_CONTEXTS: &[&str] = &[
    "Here is the config for the deploy job:\n{}\nplease check it.",
    "The build fails with the credential {} — can you see why?",
    "Use {} to authenticate against the staging API.",
    "export TOKEN_VALUE={}\n./run.sh",
    "In settings.py we currently have `{}` hard-coded.",
    "log line: 2024-05-01T10:00:00Z auth ok key={} user=42",
];

const PII_CONTEXTS: &[&str] = &[
    "Please update the customer record: {}. Thanks!",
    "The form was submitted with {} in the second field.",
    "Contact details on file: {}",
    "Can you check why the payment for {} was declined?",
    "Row 17 of the CSV has {} in the notes column.",
    "Forwarding the request from the client ({}) to the billing team.",
];

fn place(template: &str, value: &str) -> (String, Range<usize>) {
    let at = template.find("{}").unwrap_or(template.len());
    let text = format!("{}{}{}", &template[..at], value, template.get(at + 2..).unwrap_or(""));
    (text, at..at + value.len())
}

/// Fixes the last character from `alphabet` so that `valid` holds (or returns None).
fn complete(prefix: &str, alphabet: &[u8], valid: fn(&str) -> bool) -> Option<String> {
    alphabet.iter().map(|c| format!("{prefix}{}", char::from(*c))).find(|candidate| valid(candidate))
}

fn with_bad_last(valid_value: &str, alphabet: &[u8], valid: fn(&str) -> bool) -> Option<String> {
    let (head, _) = valid_value.split_at(valid_value.len() - 1);
    alphabet.iter().map(|c| format!("{head}{}", char::from(*c))).find(|candidate| !valid(candidate))
}

fn group(digits: &str, sizes: &[usize], separator: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for size in sizes {
        let end = (at + size).min(digits.len());
        out.push(&digits[at..end]);
        at = end;
    }
    if at < digits.len() {
        out.push(&digits[at..]);
    }
    out.join(separator)
}

fn secret_value(kind: SecretKind, rng: &mut Rng) -> String {
    match kind {
        SecretKind::AwsAccessKey => format!("AKIA{}", rng.string(BASE32, 16)),
        SecretKind::AwsSecretKey => format!("aws_secret_access_key = {}", rng.string(B64, 40)),
        SecretKind::GithubToken => {
            if rng.below(2) == 0 {
                format!("ghp_{}", rng.string(ALNUM, 36))
            } else {
                format!("github_pat_{}_{}", rng.string(ALNUM, 22), rng.string(ALNUM, 59))
            }
        }
        SecretKind::GitlabToken => format!("glpat-{}", rng.string(ALNUM, 20)),
        SecretKind::SlackToken => {
            format!("xoxb-{}-{}-{}", rng.digits(12), rng.digits(13), rng.string(ALNUM, 24))
        }
        SecretKind::SlackWebhook => format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            rng.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 8),
            rng.string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 10),
            rng.string(ALNUM, 24)
        ),
        SecretKind::StripeKey => {
            let length = 24 + rng.below(76);
            format!("sk_live_{}", rng.string(ALNUM, length))
        }
        SecretKind::GoogleApiKey => format!("AIza{}", rng.string(B64URL, 35)),
        SecretKind::OpenaiKey => {
            format!("sk-proj-{}T3BlbkFJ{}", rng.string(B64URL, 64), rng.string(B64URL, 64))
        }
        SecretKind::AnthropicKey => format!("sk-ant-api03-{}AA", rng.string(B64URL, 93)),
        SecretKind::NpmToken => format!("npm_{}", rng.string(ALNUM, 36)),
        SecretKind::PypiToken => format!("pypi-AgEIcHlwaS5vcmc{}", rng.string(B64URL, 70)),
        SecretKind::SendgridKey => format!("SG.{}.{}", rng.string(B64URL, 22), rng.string(B64URL, 43)),
        SecretKind::TelegramBotToken => format!("{}:AA{}", rng.digits(10), rng.string(B64URL, 33)),
        SecretKind::DiscordToken => {
            format!("M{}.{}.{}", rng.string(ALNUM, 25), rng.string(B64URL, 6), rng.string(B64URL, 38))
        }
        SecretKind::PrivateKey => {
            let label = *rng.pick(&["RSA ", "EC ", "OPENSSH ", ""]);
            let lines: Vec<String> = (0..4 + rng.below(8)).map(|_| rng.string(B64, 64)).collect();
            format!(
                "-----BEGIN {label}PRIVATE KEY-----\n{}\n-----END {label}PRIVATE KEY-----",
                lines.join("\n")
            )
        }
        SecretKind::Jwt => {
            let length = 40 + rng.below(60);
            format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
                rng.string(B64URL, length),
                rng.string(B64URL, 43)
            )
        }
        SecretKind::ConnectionString => password(rng),
        _ => format!("api_key = \"{}\"", rng.string(ALNUM, 32)),
    }
}

fn password(rng: &mut Rng) -> String {
    format!("{}{}!{}{}", rng.string(UPPER, 2), rng.string(ALNUM, 8), rng.digits(3), rng.string(b"#%&*+", 1))
}

fn secret_positive(kind: SecretKind, rng: &mut Rng) -> LabelledText {
    let context = *rng.pick(SECRET_CONTEXTS);
    let value = secret_value(kind, rng);
    let (text, span) = match kind {
        SecretKind::ConnectionString => {
            let scheme =
                *rng.pick(&["postgres", "mysql", "mongodb+srv", "redis", "amqp", "https", "git", "ftp"]);
            // Short plain passwords too: the URL's structure says what they are.
            let value = if rng.below(4) == 0 {
                let length = 2 + rng.below(4);
                rng.string(LOWER, length)
            } else {
                value
            };
            let user = *rng.pick(&["app_user", "deploy", ""]);
            let head = format!("{scheme}://{user}:");
            let url = format!("{head}{value}@db-{}.internal:5432/main", rng.below(9));
            let (text, url_span) = place(context, &url);
            let at = url_span.start + head.len();
            (text, at..at + value.len())
        }
        SecretKind::AwsSecretKey => {
            let (text, whole) = place(context, &value);
            (text, whole.end - 40..whole.end)
        }
        SecretKind::GenericCredential if rng.below(3) == 0 => {
            use base64::Engine;
            let pair = format!("{}:{}", rng.pick(&["svc", "admin", "ci-bot"]), password(rng));
            let value = base64::engine::general_purpose::STANDARD.encode(pair);
            let scheme =
                *rng.pick(&["Authorization: Basic ", "authorization: basic ", "-H 'Authorization: Basic "]);
            let (text, whole) = place(context, &format!("{scheme}{value}"));
            (text, whole.start + scheme.len()..whole.end)
        }
        SecretKind::GenericCredential => {
            let (name, value) = if rng.below(2) == 0 {
                (*rng.pick(&["api_key", "client_secret", "auth_token", "SECRET_KEY"]), rng.string(ALNUM, 32))
            } else {
                (*rng.pick(&["password", "db_pass", "PASSWORD"]), password(rng))
            };
            let line = format!("{name}: \"{value}\"");
            let (text, whole) = place(context, &line);
            let at = whole.start + name.len() + 3;
            (text, at..at + value.len())
        }
        _ => place(context, &value),
    };
    LabelledText { text, expected: vec![(FindingKind::Secret(kind), span)], label: format!("secret:{kind}") }
}

fn pii_value(kind: PiiKind, rng: &mut Rng) -> Option<(String, String)> {
    // (valid, invalid look-alike)
    Some(match kind {
        PiiKind::Email => {
            let (names, domains): (&[&str], &[&str]) = if rng.below(4) == 0 {
                (
                    &["josé", "zoë", "müller", "用户", "δοκιμή"],
                    &["bücher.de", "例子.广告", "пример.рф", "société.fr"],
                )
            } else {
                (
                    &["anna", "li", "omar", "jo", "priya", "marc"],
                    &["example.com", "mail.example.org", "company.co.uk", "uni.edu"],
                )
            };
            let user = format!("{}.{}", rng.pick(names), rng.digits(2));
            let domain = *rng.pick(domains);
            (format!("{user}@{domain}"), format!("{user} at {domain}"))
        }
        PiiKind::Phone if rng.below(3) == 0 => {
            // National formats, found by their label; the look-alike is an amount after one.
            let valid = match rng.below(3) {
                0 => format!("Tel.: 0{}{} {}", 2 + rng.below(8), rng.digits(1), rng.digits(7)),
                1 => format!(
                    "tél. 0{} {} {} {} {}",
                    1 + rng.below(9),
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2),
                    rng.digits(2)
                ),
                _ => format!("phone 020 {} {}", rng.digits(4), rng.digits(4)),
            };
            let amount = format!("phone bill {} {} {} EUR", 1 + rng.below(9), rng.digits(3), rng.digits(3));
            (valid, amount)
        }
        PiiKind::Phone => {
            let valid = match rng.below(4) {
                0 => format!(
                    "({}{}) {}{}-{}",
                    2 + rng.below(8),
                    rng.digits(2),
                    2 + rng.below(8),
                    rng.digits(2),
                    rng.digits(4)
                ),
                1 => format!(
                    "+1 {}{}-{}{}-{}",
                    2 + rng.below(8),
                    rng.digits(2),
                    2 + rng.below(8),
                    rng.digits(2),
                    rng.digits(4)
                ),
                2 => format!("+44 20 {} {}", rng.digits(4), rng.digits(4)),
                _ => format!("+49 30 {} {}", rng.digits(4), rng.digits(3)),
            };
            (valid, format!("ext. {}", rng.digits(4)))
        }
        PiiKind::PaymentCard => {
            let (prefix, length, sizes): (String, usize, &[usize]) = match rng.below(4) {
                0 => ("4".into(), 16, &[4, 4, 4, 4]),
                1 => (format!("5{}", 1 + rng.below(5)), 16, &[4, 4, 4, 4]),
                2 => (format!("3{}", rng.pick(&["4", "7"])), 15, &[4, 6, 5]),
                _ => ("6011".into(), 16, &[4, 4, 4, 4]),
            };
            let body = format!("{prefix}{}", rng.digits(length - prefix.len() - 1));
            let digits = complete(&body, DIGITS, checksum::payment_card)?;
            let bad = with_bad_last(&digits, DIGITS, checksum::payment_card)?;
            let separator = *rng.pick(&[" ", "-", ""]);
            (group(&digits, sizes, separator), group(&bad, sizes, separator))
        }
        PiiKind::Iban => {
            let (country, body) = match rng.below(5) {
                0 => ("DE", rng.digits(18)),
                1 => ("GB", format!("{}{}", rng.string(UPPER, 4), rng.digits(14))),
                2 => ("FR", rng.digits(23)),
                3 => ("ES", rng.digits(20)),
                _ => ("NL", format!("{}{}", rng.string(UPPER, 4), rng.digits(10))),
            };
            let valid =
                (0..100).map(|check| format!("{country}{check:02}{body}")).find(|c| checksum::iban(c))?;
            let invalid =
                (0..100).map(|check| format!("{country}{check:02}{body}")).find(|c| !checksum::iban(c))?;
            if rng.below(2) == 0 {
                let spaced = |s: &str| {
                    s.as_bytes()
                        .chunks(4)
                        .map(|c| String::from_utf8_lossy(c).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                (spaced(&valid), spaced(&invalid))
            } else {
                (valid, invalid)
            }
        }
        PiiKind::UsSsn if rng.below(3) == 0 => {
            // Without dashes, an SSN is one only where it is named as one.
            let digits =
                format!("{:03}{:02}{:04}", 1 + rng.below(665), 1 + rng.below(99), 1 + rng.below(9999));
            let label = *rng.pick(&["SSN", "SSN#:", "social security number"]);
            (format!("{label} {digits}"), format!("ref {digits}"))
        }
        PiiKind::UsSsn => {
            let area = 1 + rng.below(665);
            let valid = format!("{area:03}-{:02}-{:04}", 1 + rng.below(99), 1 + rng.below(9999));
            let invalid = format!(
                "{}-{:02}-{:04}",
                rng.pick(&["000", "666", "912"]),
                1 + rng.below(99),
                1 + rng.below(9999)
            );
            (valid, invalid)
        }
        PiiKind::UkNino => {
            let first = *rng.pick(b"ABCEHJKLMPRSW");
            let second = *rng.pick(b"ABCEHJLMPRSTW");
            let digits = rng.digits(6);
            let suffix = *rng.pick(&["A", "B", "C", "D"]);
            let valid = format!("{}{}{digits}{suffix}", char::from(first), char::from(second));
            let invalid = format!("{}{digits}{suffix}", rng.pick(&["GB", "NK", "TN", "ZZ", "QQ"]));
            (valid, invalid)
        }
        PiiKind::EsDni => {
            let body = if rng.below(3) == 0 {
                format!("{}{}", rng.pick(&["X", "Y", "Z"]), rng.digits(7))
            } else {
                rng.digits(8)
            };
            let valid = complete(&body, UPPER, checksum::es_dni)?;
            let invalid = with_bad_last(&valid, UPPER, checksum::es_dni)?;
            (valid, invalid)
        }
        PiiKind::ItCodiceFiscale => {
            let body = format!(
                "{}{}{}{:02}{}{}",
                rng.string(UPPER, 6),
                rng.digits(2),
                rng.pick(&["A", "B", "C", "D", "E", "H", "L", "M", "P", "R", "S", "T"]),
                1 + rng.below(71),
                rng.string(UPPER, 1),
                rng.digits(3)
            );
            let valid = complete(&body, UPPER, checksum::it_codice_fiscale)?;
            let invalid = with_bad_last(&valid, UPPER, checksum::it_codice_fiscale)?;
            (valid, invalid)
        }
        PiiKind::BrCpf => {
            let body = rng.digits(9);
            let valid_digits =
                (0..100).map(|check| format!("{body}{check:02}")).find(|c| checksum::br_cpf(c))?;
            let invalid_digits = with_bad_last(&valid_digits, DIGITS, checksum::br_cpf)?;
            let format = |d: &str| format!("{}.{}.{}-{}", &d[..3], &d[3..6], &d[6..9], &d[9..]);
            (format(&valid_digits), format(&invalid_digits))
        }
        PiiKind::InAadhaar => {
            let body = format!("{}{}", 2 + rng.below(8), rng.digits(10));
            let valid = complete(&body, DIGITS, checksum::in_aadhaar)?;
            let invalid = with_bad_last(&valid, DIGITS, checksum::in_aadhaar)?;
            (group(&valid, &[4, 4, 4], " "), group(&invalid, &[4, 4, 4], " "))
        }
        // A kind added to the scanner after this generator: no samples for it yet.
        _ => return None,
    })
}

/// Look-alikes that are neither secrets nor personal data.
fn near_miss(rng: &mut Rng) -> (String, &'static str) {
    match rng.below(18) {
        0 => (
            format!(
                "{}-{}-4{}-a{}-{}",
                rng.string(HEX, 8),
                rng.string(HEX, 4),
                rng.string(HEX, 3),
                rng.string(HEX, 3),
                rng.string(HEX, 12)
            ),
            "uuid",
        ),
        1 => (rng.string(HEX, 64), "sha256"),
        2 => (rng.string(HEX, 40), "git_sha"),
        3 => (format!("ORD-{}-{}", 2018 + rng.below(8), rng.digits(8)), "order_number"),
        4 => (
            format!("1Z{}{}", rng.string(b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789", 6), rng.digits(10)),
            "tracking_number",
        ),
        5 => (format!("v{}.{}.{}", rng.below(10), rng.below(30), rng.below(100)), "version"),
        6 => (
            format!(
                "20{:02}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                18 + rng.below(8),
                1 + rng.below(12),
                1 + rng.below(28),
                rng.below(24),
                rng.below(60),
                rng.below(60)
            ),
            "timestamp",
        ),
        7 => (format!("10.{}.{}.{}", rng.below(255), rng.below(255), rng.below(255)), "ip_address"),
        8 => (format!("INV {} {}", 2018 + rng.below(8), rng.digits(6)), "invoice_number"),
        9 => ("api_key = os.environ[\"API_KEY\"]".into(), "env_reference"),
        10 => ("password: <your-password-here>".into(), "placeholder"),
        11 => (format!("token = \"{}\"", "abcdef".repeat(4)), "low_entropy"),
        12 => (format!("AKIA{}", rng.string(BASE32, 10)), "short_key"),
        13 => (format!("AKIA{}", "X".repeat(16)), "placeholder_key"),
        14 => (format!("{}{}", rng.pick(&["ghp_", "sk_test_", "npm_"]), "x".repeat(36)), "placeholder_token"),
        15 => ("-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----".into(), "key_skeleton"),
        16 => (format!("order {}", rng.digits(9)), "nine_digits"),
        _ => (
            format!("ISBN 978-{}-{}-{}-{}", rng.digits(1), rng.digits(3), rng.digits(5), rng.digits(1)),
            "isbn",
        ),
    }
}

/// The generated set: `per_kind` positives and invalid look-alikes per kind, plus near misses.
pub fn sensitive_set(per_kind: usize) -> Vec<LabelledText> {
    let mut rng = Rng::new(0x5EC0_0002);
    let mut out = Vec::new();
    for kind in SecretKind::ALL {
        for _ in 0..per_kind {
            out.push(secret_positive(*kind, &mut rng));
        }
    }
    for kind in PiiKind::ALL {
        for _ in 0..per_kind {
            let Some((valid, invalid)) = pii_value(*kind, &mut rng) else { continue };
            let context = *rng.pick(PII_CONTEXTS);
            let (text, span) = place(context, &valid);
            out.push(LabelledText {
                text,
                expected: vec![(FindingKind::Pii(*kind), span)],
                label: format!("pii:{kind}"),
            });
            let (text, _) = place(context, &invalid);
            out.push(LabelledText { text, expected: Vec::new(), label: format!("negative:invalid_{kind}") });
        }
    }
    for _ in 0..per_kind * 10 {
        let (value, what) = near_miss(&mut rng);
        let contexts = if rng.below(2) == 0 { SECRET_CONTEXTS } else { PII_CONTEXTS };
        let context = *rng.pick(contexts);
        let (text, _) = place(context, &value);
        out.push(LabelledText { text, expected: Vec::new(), label: format!("negative:{what}") });
    }
    out
}
