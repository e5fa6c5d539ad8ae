//! Secrets and personal data: patterns, validators and overlap resolution.
//!
//! Each rule is a regex over the original text plus a check: a checksum (Luhn, mod-97, mod-23,
//! mod-11, Verhoeff…), an entropy and shape test for generic credentials, a placeholder test
//! for shaped tokens and URL passwords, or the search for the end of a PEM block (and for key
//! material in it). Values too common to find alone (SSNs without dashes, national phone
//! numbers) are found after a label on the same line, which the regex requires. A candidate that fails its check is dropped and the search resumes one
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
    /// A token whose pattern is specific enough, unless it is a placeholder: a long run of one
    /// character (`AKIAXXXXXXXXXXXXXXXX`, `ghp_xxxx…`, `sk_test_XXXX…`).
    Token,
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
    /// The password of a URL's user information: anything but a template or a mask.
    UrlPassword,
    /// The credential of HTTP Basic authentication: after the header name, a token that is not
    /// a placeholder; after the bare word `Basic`, base64 of `user:password`.
    BasicCredential,
    /// An e-mail address standing on its own: not inside a longer word, and not the password
    /// and host of a URL (`https://user:pass@host`, whose password rule covers it).
    Email,
    /// A national phone number after its label: 7 to 15 digits that are not an amount of
    /// money, a date, a version or an IP address.
    LabelledPhone,
}

struct Rule {
    id: &'static str,
    kind: FindingKind,
    pattern: &'static str,
    /// Capture group that holds the value (0: the whole match). Where a pattern has
    /// alternatives with a group each (a label before or after a number), the first group from
    /// this one that took part.
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

/// Personal data found by its label: the value is capture group 1 (or the first later group
/// that took part).
const fn labelled_pii(id: &'static str, kind: PiiKind, pattern: &'static str, check: Check) -> Rule {
    Rule { id, kind: FindingKind::Pii(kind), pattern, group: 1, check }
}

/// A character outside ASCII that can belong to a word of an internationalised address: any but
/// the Latin-1 signs and spaces, general punctuation and symbols, and CJK and full-width
/// punctuation (so `「用户@例子.广告」` and `anna@x.de»` end where the address does). As a plain
/// class it stays small as UTF-8 automata go; `\p{L}\p{M}\p{N}` repeated for every bounded
/// character of an address compiles past the size limit.
macro_rules! non_ascii_word {
    () => {
        r"[^\x00-\x7F\u{80}-\u{BF}\u{D7}\u{F7}\u{2000}-\u{2BFF}\u{3000}-\u{303F}\u{FE30}-\u{FE4F}\u{FF00}-\u{FF0F}\u{FF1A}-\u{FF20}\u{FF3B}-\u{FF40}\u{FF5B}-\u{FF65}]"
    };
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
        Check::Token,
    ),
    secret(
        "secret.aws_secret_key",
        SecretKind::AwsSecretKey,
        r#"(?i:aws)[A-Za-z0-9_.\-]{0,20}(?i:secret|private)[A-Za-z0-9_.\-]{0,20}["']?\s{0,4}(?:=|:|=>|:=)\s{0,4}["']?([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|$)"#,
        1,
        Check::Token,
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
        Check::Token,
    ),
    secret(
        "secret.gitlab_token",
        SecretKind::GitlabToken,
        r"\bgl(?:pat|dt|rt|ptt|cbt|soat|ft|imt|agent)-[A-Za-z0-9_\-]{20,64}",
        0,
        Check::Token,
    ),
    secret(
        "secret.slack_webhook",
        SecretKind::SlackWebhook,
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{8,}/[A-Za-z0-9+/]{8,}(?:/[A-Za-z0-9+/]{8,})?",
        0,
        Check::Token,
    ),
    secret(
        "secret.slack_token",
        SecretKind::SlackToken,
        r"\b(?:xox[abposre]-[0-9A-Za-z\-]{10,250}|xapp-\d-[A-Z0-9]{8,}-\d{8,}-[a-z0-9]{32,})",
        0,
        Check::Token,
    ),
    secret(
        "secret.stripe_key",
        SecretKind::StripeKey,
        r"\b(?:sk|rk)_(?:live|test|prod)_[0-9a-zA-Z]{24,99}",
        0,
        Check::Token,
    ),
    secret("secret.google_api_key", SecretKind::GoogleApiKey, r"\bAIza[0-9A-Za-z_\-]{35}", 0, Check::Token),
    secret(
        "secret.anthropic_key",
        SecretKind::AnthropicKey,
        r"\bsk-ant-(?:api|admin|oat)\d{2}-[A-Za-z0-9_\-]{80,120}",
        0,
        Check::Token,
    ),
    secret(
        "secret.openai_key",
        SecretKind::OpenaiKey,
        r"\bsk-(?:(?:proj|svcacct|admin|None)-)?(?:[A-Za-z0-9_\-]{20,200}T3BlbkFJ[A-Za-z0-9_\-]{20,200}|[A-Za-z0-9_\-]{40,200})",
        0,
        Check::KeyValue,
    ),
    secret("secret.npm_token", SecretKind::NpmToken, r"\bnpm_[A-Za-z0-9]{36}\b", 0, Check::Token),
    secret(
        "secret.pypi_token",
        SecretKind::PypiToken,
        r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,300}",
        0,
        Check::Token,
    ),
    secret(
        "secret.sendgrid_key",
        SecretKind::SendgridKey,
        r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}",
        0,
        Check::Token,
    ),
    secret(
        "secret.telegram_bot_token",
        SecretKind::TelegramBotToken,
        r"\b\d{8,10}:AA[A-Za-z0-9_\-]{33}",
        0,
        Check::Token,
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
        Check::Token,
    ),
    // The password in a URL's user information, whatever the scheme (databases, brokers,
    // http(s), git, ftp, proxy settings): the match starts at `://`, a literal the regex
    // searches for (spelling the scheme out would cost a full pass). The user may be empty
    // (`redis://:pw@host`) or an address (`https://ann@corp.io:pw@host`); the password runs
    // to the last `@` before the host (an unescaped `@`, `#` or `?` in a password is common),
    // so no part of it is left for the e-mail rule to cut.
    secret(
        "secret.connection_string",
        SecretKind::ConnectionString,
        r#"://[^\s:/?#'"<>\\]{0,128}:([^\s/'"<>\\]{1,128})@[^\s/?#@:'"<>\\]"#,
        1,
        Check::UrlPassword,
    ),
    // HTTP Basic authentication: the header in a raw request, a curl `-H` line or a headers
    // map, or the bare scheme word before base64 of `user:password`. The match starts at the
    // scheme word (a literal the regex can search for); the check looks for the header's name
    // before it on the line.
    secret(
        "secret.basic_auth",
        SecretKind::GenericCredential,
        r#"\b(?i:basic)\s{1,4}([A-Za-z0-9+/_\-]{8,1024}={0,2})"#,
        1,
        Check::BasicCredential,
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
    // An SSN without dashes (`123456789`, `123 45 6789`) is only an SSN when named as one on
    // its line: nine digits alone are too common. The label comes first, or right after.
    labelled_pii(
        "pii.us_ssn_labelled",
        PiiKind::UsSsn,
        r"(?:\b|_)(?i:ssns?|ss#|social[ _\-]?security)[^\n0-9]{0,40}\b(\d{3}[ .\-]?\d{2}[ .\-]?\d{4})\b",
        Check::Checksum(checksum::us_ssn),
    ),
    labelled_pii(
        "pii.us_ssn_labelled_after",
        PiiKind::UsSsn,
        r"\b(\d{3}[ .]?\d{2}[ .]?\d{4})\b[^\n0-9A-Za-z]{0,6}(?i:ssn\b|social[ _\-]?security)",
        Check::Checksum(checksum::us_ssn),
    ),
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
    // Internationalised addresses too (`josé.müller@bücher.de`, `用户@例子.广告`): letters of
    // any script in the local part and the domain, and a top-level domain in letters or
    // punycode. Boundaries are checked after the match (`Check::Email`): a Unicode `\b` would
    // keep the regex off its lazy DFA.
    pii(
        "pii.email",
        PiiKind::Email,
        concat!(
            r"(?:[A-Za-z0-9._%+\-]|",
            non_ascii_word!(),
            r"){1,64}@(?:[A-Za-z0-9\-]|",
            non_ascii_word!(),
            r"){1,63}(?:\.(?:[A-Za-z0-9\-]|",
            non_ascii_word!(),
            r"){1,63}){0,8}\.(?:(?:[A-Za-z]|",
            non_ascii_word!(),
            r"){2,24}|(?i:xn)--[A-Za-z0-9\-]{1,59})",
        ),
        Check::Email,
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
    // National formats (`030 12345678`, `01 23 45 67 89`, `020 7946 0958`, `(030) 123-456`)
    // are too like other numbers to find alone; after a label on the same line (`Tel.:`,
    // `Telefon`, `phone`, `mobile`, `Handy`, `tél`, `телефон`, `電話`, …) they are phone
    // numbers (labels in other scripts stand without `\b`, which is ASCII here), once amounts,
    // dates, versions and addresses are ruled out (`Check::LabelledPhone`). One separator at
    // most between digits (or ` / `, as in `089 / 1234567`), so a list of numbers separated
    // by commas or words is not read as one.
    labelled_pii(
        "pii.phone_labelled",
        PiiKind::Phone,
        r"(?:\b(?i:t[eé]l(?:efon(?:nummer|nr)?|efoon(?:nummer)?|[ée]fono|[ée]phone|em[óo]vel)?|phone(?:[ _\-]?(?:number|no))?|ph|mob(?:ile|il|iel)?(?:[ _\-]?(?:nummer|number|nr|no|phone))?|cell(?:ulare|[ _\-]?phone)?|handy(?:nummer|nr)?|rufnummer|festnetz|fax|fon|portable|m[óo]vil|celular|whatsapp)\b|(?i:телефон|тел\.)|電話)[^\n0-9+]{0,32}(\+?\(?\b\d(?:\)?(?:[ \-./]|[ ]/[ ])?\(?\d){5,20})\b",
        Check::LabelledPhone,
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

/// Extends a PEM header to its end marker (or over its base64 body when the end is missing),
/// if the body holds key material: a skeleton (`...`, `<your key>`, `xxxx`) holds none.
fn pem_block(text: &str, header: &Range<usize>) -> Option<Range<usize>> {
    let window_end = floor_boundary(text, header.end.saturating_add(PRIVATE_KEY_BYTES_MAX).min(text.len()));
    let rest = &text[header.end..window_end];
    if let Some(at) = rest.find("-----END ") {
        let after = header.end + at + "-----END ".len();
        if let Some(close) = text[after..window_end].find("-----") {
            return key_material(&rest[..at]).then_some(header.start..after + close + "-----".len());
        }
    }
    let body = rest
        .bytes()
        .take_while(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r' | b' ' | b'\t' | b':' | b',')
        })
        .count();
    key_material(&rest[..body]).then_some(header.start..header.end + body)
}

/// The shortest base64 run that counts as key material (a PEM line is 64; a key cut short
/// in a message still leaks what it shows).
const KEY_MATERIAL_BYTES_MIN: usize = 16;

/// Whether a PEM body holds a base64 run that could be key material: long enough, of two
/// character classes at least, not a run of one character.
fn key_material(body: &str) -> bool {
    body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/'))
        .any(|run| run.len() >= KEY_MATERIAL_BYTES_MIN && classes(run) >= 2 && !placeholder_token(run))
}

/// The longest run of one character (ASCII case folded) a token may hold: a random token of
/// 16 to 100 characters practically never holds eight alike, a placeholder (`XXXX…`,
/// `xxxx…`, `0000…`) does.
const TOKEN_RUN_MAX: usize = 7;

/// Whether a shaped token is a placeholder: a run of one character longer than
/// [`TOKEN_RUN_MAX`].
fn placeholder_token(value: &str) -> bool {
    let mut run = 0;
    let mut previous = None;
    for byte in value.bytes().map(|b| b.to_ascii_lowercase()) {
        run = if previous == Some(byte) { run + 1 } else { 1 };
        previous = Some(byte);
        if run > TOKEN_RUN_MAX {
            return true;
        }
    }
    false
}

/// A URL's password, unless it is a template (`${DB_PASSWORD}`, `$DB_PASS`, `<password>`,
/// `{{pw}}`, `%PASSWORD%`, `[REDACTED:…]`), a mask (`****`, `xxx`) or a port before a query
/// (`https://host:8080?to=a@b.io`). Short and plain ones count: in `mysql://user:pw@host` the
/// structure says what `pw` is.
fn url_password(value: &str) -> bool {
    let bytes = value.as_bytes();
    let first = bytes.first().copied().unwrap_or(b'$');
    let second = bytes.get(1).copied().unwrap_or(b'$');
    let rest = bytes.get(1..).unwrap_or_default();
    let environment = first == b'$'
        && (matches!(second, b'{' | b'(')
            || rest.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_'));
    let template = matches!(first, b'<' | b'{' | b'[') || (first == b'%' && second.is_ascii_alphabetic());
    let mask = value.len() >= 3 && bytes.iter().all(|b| *b == first);
    let port_digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let port_and_query =
        (1..=5).contains(&port_digits) && matches!(bytes.get(port_digits), Some(b'?' | b'#'));
    !(environment || template || mask || port_and_query)
}

/// The credential of an HTTP Basic header. After the header's name, any token that is not a
/// placeholder and looks like one (base64 of `user:password`, or long and mixed); after the
/// bare word `Basic`, only base64 of `user:password`, which prose never is.
fn basic_credential(value: &str, named: bool) -> bool {
    if decodes_to_user_password(value) {
        return true;
    }
    named && value.len() >= 12 && classes(value) >= 2 && !is_placeholder(value) && !placeholder_token(value)
}

/// How far before the word `Basic` the header's name is looked for (`Proxy-Authorization:
/// Basic`, `"Authorization": "Basic`, `authorization => 'Basic`).
const HEADER_NAME_BYTES_MAX: usize = 32;

/// Whether the word at `at` follows an `Authorization` header's name on its line.
fn header_named(text: &str, at: usize) -> bool {
    let from = floor_boundary(text, at.saturating_sub(HEADER_NAME_BYTES_MAX));
    let head = text[from..at].rsplit('\n').next().unwrap_or_default().as_bytes();
    let name = b"authorization";
    head.windows(name.len()).any(|window| window.eq_ignore_ascii_case(name))
}

/// Whether `value` is base64 of printable text holding a `:` (`user:password`).
fn decodes_to_user_password(value: &str) -> bool {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = value.trim_end_matches('=');
    let decoded = STANDARD_NO_PAD.decode(trimmed).or_else(|_| URL_SAFE_NO_PAD.decode(trimmed));
    let Ok(Ok(decoded)) = decoded.map(String::from_utf8) else { return false };
    decoded.len() >= 3 && decoded.contains(':') && !decoded.chars().any(char::is_control)
}

/// An e-mail address (its span, widened over the rest of an over-long local part): not followed
/// by more of a word, and not the user information and host of a URL
/// (`scheme://user:pass@host`, `ssh://git@host`), whose password the password rule covers.
fn email(text: &str, span: &Range<usize>) -> Option<Range<usize>> {
    let after = text.get(span.end..).and_then(|tail| tail.chars().next());
    if after.is_some_and(char::is_alphanumeric) {
        return None;
    }
    // A local part longer than the 64 characters matched: not a valid address, but redacted
    // whole rather than cut.
    let local_char = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
    let head = &text[..span.start];
    let extra: usize = head.chars().rev().take_while(|c| local_char(*c)).map(char::len_utf8).sum();
    let span = span.start - extra..span.end;
    // In a URL's authority (after `://`, before any `/`, `?` or `#`), the last `@` ends the
    // user information, not an address (an address before it, as the user's name, is one).
    let at_sign = span.start + text.get(span.clone())?.find('@')?;
    if in_url_authority(text, at_sign) && !more_at_signs(text, at_sign) {
        return None;
    }
    Some(span)
}

/// Whether the byte at `at_sign` is in a URL's authority: walking back from it, `://` comes
/// before any space, quote, `/`, `?` or `#` (within [`URL_PREFIX_BYTES_MAX`]).
fn in_url_authority(text: &str, at_sign: usize) -> bool {
    let bytes = text.as_bytes();
    let from = at_sign.saturating_sub(URL_PREFIX_BYTES_MAX);
    let mut at = at_sign;
    while at > from {
        at -= 1;
        match bytes[at] {
            b'/' => return at >= 2 && bytes[at - 1] == b'/' && bytes[at - 2] == b':',
            b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b' ' | b'\t' | b'\r' | b'\n' => return false,
            _ => {}
        }
    }
    false
}

/// Whether another `@` follows the one at `at_sign` in the same authority (up to a space,
/// quote, `/`, `?` or `#`, within [`URL_PREFIX_BYTES_MAX`]).
fn more_at_signs(text: &str, at_sign: usize) -> bool {
    let bytes = text.as_bytes();
    let to = at_sign.saturating_add(URL_PREFIX_BYTES_MAX).min(bytes.len());
    for byte in bytes.get(at_sign + 1..to).unwrap_or_default() {
        match byte {
            b'@' => return true,
            b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b' ' | b'\t' | b'\r' | b'\n' => return false,
            _ => {}
        }
    }
    false
}

/// How far back from an address's `@` the `scheme://` of a URL is looked for (further than
/// the user information the URL rule reads, 128 + 1 + 128 bytes), and how far ahead another
/// `@` of the same authority.
const URL_PREFIX_BYTES_MAX: usize = 320;

/// A national phone number found after its label, or a list of them joined by ` / `
/// (`030 1234567 / 0171 2345678`), each checked on its own.
fn labelled_phone(text: &str, span: &Range<usize>) -> bool {
    if phone_number(text, span) {
        return true;
    }
    let Some(value) = text.get(span.clone()) else { return false };
    let mut start = span.start;
    let mut numbers = 0;
    for part in value.split(" / ") {
        let part_span = start..start + part.len();
        if !phone_number(text, &part_span) {
            return false;
        }
        start = part_span.end + " / ".len();
        numbers += 1;
    }
    numbers > 1
}

/// One group of digits in a number: its digits, and the separator before it (`0` for the
/// first group, `b'('` or `b')'` for a parenthesis).
struct DigitGroup<'a> {
    digits: &'a [u8],
    separator: u8,
}

/// The digit groups of a number as matched by the phone rule.
fn digit_groups(value: &str) -> Vec<DigitGroup<'_>> {
    let bytes = value.as_bytes();
    let mut groups = Vec::new();
    let mut at = 0;
    let mut separator = 0;
    while at < bytes.len() {
        if bytes[at].is_ascii_digit() {
            let start = at;
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                at += 1;
            }
            groups.push(DigitGroup { digits: &bytes[start..at], separator });
            separator = 0;
        } else {
            // A parenthesis wins over a space beside it; otherwise the first separator seen.
            if separator == 0 || matches!(bytes[at], b'(' | b')') {
                separator = bytes[at];
            }
            at += 1;
        }
    }
    groups
}

/// The value of a short digit group (`u32::MAX` past nine digits).
fn group_value(digits: &[u8]) -> u32 {
    if digits.len() > 9 {
        return u32::MAX;
    }
    digits.iter().fold(0, |acc, digit| acc * 10 + u32::from(digit - b'0'))
}

/// A national phone number at `span`: 7 to 15 digits, and not an amount of money (a
/// currency beside it, or thousands groups such as `1 234 567`), a date, a version or an IP
/// address.
fn phone_number(text: &str, span: &Range<usize>) -> bool {
    let Some(value) = text.get(span.clone()) else { return false };
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return false;
    }
    let groups = digit_groups(value);
    let rest = groups.get(1..).unwrap_or_default();
    // `1.2.3`, `10.0.19041.1`, `192.168.100.200`: dotted numbers with few groups, or of an
    // address's shape, are versions and addresses; dotted phone numbers have four groups or
    // more of two to four digits (`01.23.45.67.89`).
    let dotted = !rest.is_empty() && rest.iter().all(|group| group.separator == b'.');
    if dotted && (groups.len() < 4 || groups.iter().any(|group| !(2..=4).contains(&group.digits.len()))) {
        return false;
    }
    let address = groups.len() == 4
        && groups.iter().all(|group| group.digits.first() != Some(&b'0') && group_value(group.digits) <= 255);
    if dotted && address {
        return false;
    }
    if has_date(&groups) {
        return false;
    }
    !money(text, span, &groups)
}

/// Whether three groups in a row, joined by the same `-`, `.` or `/` and standing apart from
/// the groups around them, read as a date (year first or last).
fn has_date(groups: &[DigitGroup<'_>]) -> bool {
    groups.windows(3).enumerate().any(|(index, window)| {
        let [a, b, c] = window else { return false };
        let joined = matches!(b.separator, b'-' | b'.' | b'/') && c.separator == b.separator;
        let apart_before = index == 0 || a.separator == b' ';
        let apart_after = groups.get(index + 3).is_none_or(|next| next.separator == b' ');
        if !(joined && apart_before && apart_after) {
            return false;
        }
        let (x, y, z) = (group_value(a.digits), group_value(b.digits), group_value(c.digits));
        let (a, b, c) = (a.digits.len(), b.digits.len(), c.digits.len());
        let year_first = a == 4 && b <= 2 && c <= 2 && y <= 12 && z <= 31;
        let year_last = a <= 2 && b <= 2 && (c == 4 || c == 2) && x <= 31 && y <= 31 && (x <= 12 || y <= 12);
        year_first || year_last
    })
}

/// Currency signs and codes that make a number an amount (compared ignoring ASCII case).
const CURRENCIES: &[&str] = &[
    "$", "€", "£", "¥", "₹", "₽", "₩", "eur", "usd", "gbp", "chf", "jpy", "cny", "rub", "inr", "sek", "nok",
    "dkk", "pln", "czk", "huf", "cad", "aud", "brl", "mxn", "kr", "zł", "euro", "dollar",
];

/// How far around a number a currency is looked for.
const CURRENCY_REACH_BYTES: usize = 8;

/// Whether a number found after a phone label is an amount of money: a currency right
/// before or after it, a decimal part after it, or thousands groups (`1 234 567`) with a
/// short first group.
fn money(text: &str, span: &Range<usize>, groups: &[DigitGroup<'_>]) -> bool {
    let head = text[floor_boundary(text, span.start.saturating_sub(CURRENCY_REACH_BYTES))..span.start]
        .trim_end()
        .as_bytes();
    let tail_end = floor_boundary(text, span.end.saturating_add(CURRENCY_REACH_BYTES)).max(span.end);
    let tail = text[span.end..tail_end].trim_start().as_bytes();
    let currency = CURRENCIES.iter().any(|currency| {
        let currency = currency.as_bytes();
        let n = currency.len();
        (head.len() >= n && head[head.len() - n..].eq_ignore_ascii_case(currency))
            || (tail.len() >= n && tail[..n].eq_ignore_ascii_case(currency))
    });
    if currency {
        return true;
    }
    // A decimal part right after (`1 234 567,89`), or as the last group (`1 234 567.89`).
    let after = &text.as_bytes()[span.end..];
    let decimal_after =
        matches!(after.first(), Some(b',' | b'.')) && after.get(1).is_some_and(u8::is_ascii_digit);
    let (groups, decimal) = match groups.split_last() {
        Some((last, rest))
            if last.digits.len() == 2
                && matches!(last.separator, b'.' | b',')
                && rest.len() >= 2
                && rest[1..].iter().all(|group| group.separator != last.separator) =>
        {
            (rest, true)
        }
        _ => (groups, decimal_after),
    };
    // `612 345 678` is a Spanish mobile number, `1 234 567` an amount: thousands groups are
    // money when the first group is short or a decimal part follows.
    let Some((first, rest)) = groups.split_first() else { return false };
    let separator = rest.first().map_or(0, |group| group.separator);
    let thousands = !rest.is_empty()
        && first.digits.len() <= 3
        && first.digits.first() != Some(&b'0')
        && rest.iter().all(|group| group.digits.len() == 3 && group.separator == separator);
    thousands && (decimal || first.digits.len() < 3)
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
    "pii.us_ssn_labelled",
    "pii.us_ssn_labelled_after",
    "pii.br_cpf",
    "pii.in_aadhaar",
    "pii.it_codice_fiscale",
    "pii.es_dni",
    "pii.uk_nino",
    "pii.payment_card",
    "pii.iban",
    "pii.phone_nanp",
    "pii.phone_labelled",
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
    /// Per byte value: the grouped rules a match can begin with it, in priority order, so
    /// that at a candidate start only those are tried (a digit is no start for a rule led by
    /// a label, and a letter none for a number).
    grouped_by_first_byte: Vec<Vec<usize>>,
}

/// The bytes a match of `pattern` can begin with: from the prefix literals `regex-syntax`
/// extracts, cut to one byte (sound: every match begins with one of them); every byte when
/// they cannot be told (a class too large, a match that may be empty).
fn first_bytes(pattern: &str) -> [bool; 256] {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let any = [true; 256];
    let Ok(hir) = regex_syntax::ParserBuilder::new().build().parse(pattern) else { return any };
    let mut extractor = Extractor::new();
    extractor
        .kind(ExtractKind::Prefix)
        .limit_class(256)
        .limit_repeat(1)
        .limit_literal_len(1)
        .limit_total(256);
    let seq = extractor.extract(&hir);
    let Some(literals) = seq.literals() else { return any };
    let mut table = [false; 256];
    for literal in literals {
        let Some(first) = literal.as_bytes().first() else { return any };
        table[usize::from(*first)] = true;
    }
    table
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
        let mut grouped_by_first_byte = vec![Vec::new(); 256];
        for (index, rule) in RULES.iter().enumerate() {
            if !grouped.get(index).copied().unwrap_or(false) {
                continue;
            }
            let table = first_bytes(&ascii_classes(rule.pattern));
            for (byte, rules) in grouped_by_first_byte.iter_mut().enumerate() {
                if table[byte] {
                    rules.push(index);
                }
            }
        }
        Ok(SensitiveRules { gate, gate_rules, ungated, regexes, grouped, combined, grouped_by_first_byte })
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
                match evaluate(rule, text, &whole, span) {
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
            let first = usize::from(rest.as_bytes().first().copied().unwrap_or(0));
            for &priority in self.grouped_by_first_byte.get(first).into_iter().flatten() {
                let (Some(rule), Some(regex)) = (RULES.get(priority), self.regexes.get(priority)) else {
                    continue;
                };
                if !wanted(rule.kind) {
                    continue;
                }
                let Some((whole, span)) = candidate(rule, regex, rest, 0) else { continue };
                let whole = whole.start + start..whole.end + start;
                if let Some(finding) = evaluate(rule, text, &whole, span.start + start..span.end + start) {
                    found.push((priority, finding));
                }
            }
            at = next_boundary(text, start);
        }
        resolve_overlaps(found)
    }
}

/// The next match of `regex` from `at`: the whole match and the value's span in it.
fn candidate(rule: &Rule, regex: &Regex, text: &str, at: usize) -> Option<(Range<usize>, Range<usize>)> {
    if rule.group == 0 {
        regex.find_at(text, at).map(|m| (m.range(), m.range()))
    } else {
        let caps = regex.captures_at(text, at)?;
        let value = (rule.group..caps.len()).find_map(|group| caps.get(group))?;
        Some((caps.get(0)?.range(), value.range()))
    }
}

/// Checks a candidate (`whole` match, value at `span`); returns the finding (span possibly
/// extended) if it holds.
fn evaluate(rule: &Rule, text: &str, whole: &Range<usize>, span: Range<usize>) -> Option<Finding> {
    let value = text.get(span.clone())?;
    let (accepted, span, score) = match rule.check {
        Check::Shape => (true, span, 0.9),
        Check::Token => (!placeholder_token(value), span, 0.9),
        Check::Checksum(valid) => (valid(value), span, 1.0),
        Check::KeyValue => (key_value(value), span, 0.8),
        Check::PasswordValue => (password_value(value), span, 0.7),
        Check::AwsSecret => (aws_secret(value), span, 0.8),
        Check::PemBlock => {
            let block = pem_block(text, &span)?;
            (true, block, 1.0)
        }
        Check::UrlPassword => (url_password(value), span, 0.9),
        Check::BasicCredential => (basic_credential(value, header_named(text, whole.start)), span, 0.9),
        Check::Email => {
            let address = email(text, &span)?;
            (true, address, 0.9)
        }
        Check::LabelledPhone => (labelled_phone(text, &span), span, 0.8),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_rules_are_tried_only_where_they_can_begin_and_always_there() {
        let rules = SensitiveRules::new().unwrap();
        let starts = |byte: u8| -> Vec<&str> {
            rules.grouped_by_first_byte[usize::from(byte)].iter().map(|index| RULES[*index].id).collect()
        };
        assert!(starts(b'7').contains(&"pii.payment_card") && !starts(b'7').contains(&"pii.phone_labelled"));
        assert!(starts(b'T').contains(&"pii.phone_labelled") && !starts(b'T').contains(&"pii.us_ssn"));
        assert!(starts(b'_').contains(&"pii.us_ssn_labelled"));
        // Sound: wherever a grouped rule matches, its first byte lists it.
        for text in [
            "123-45-6789",
            "SSN: 123456789",
            "_ssn=123456789",
            "123456789 (SSN)",
            "Tel.: 030 12345678",
            "tél : 01 23 45 67 89",
            "Handy 0171 1234567",
            "4111 1111 1111 1111",
            "GB82 WEST 1234 5698 7654 32",
            "password: Hunter2!Hunter2",
            "X1234567L",
            "(212) 555-0123",
        ] {
            for (index, rule) in RULES.iter().enumerate() {
                let anchored = &rules.regexes[index];
                if rules.grouped[index] && anchored.is_match(text) {
                    assert!(starts(text.as_bytes()[0]).contains(&rule.id), "{} at {text:?}", rule.id);
                }
            }
        }
    }
}
