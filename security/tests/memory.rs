//! Memory stays bounded on multi-megabyte input: injection matching works in windows, so peak
//! memory grows with the window, not with the input, beyond the input and report themselves.
//! (Its own test binary, so no other test shares the process's peak.)

use security::{ScanConfig, Scanner};

/// Peak resident set size of this process, in bytes (Linux).
fn peak_rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kilobytes: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

#[test]
fn peak_memory_is_bounded_on_a_16_mib_input() {
    let scanner = Scanner::new(ScanConfig::default()).unwrap();
    let unit =
        "Write a Rust function that parses CSV files; ignore the flaky tests. Ünïcödé ｆｕｌｌ \u{200B}\n";
    let text = unit.repeat((16 << 20) / unit.len());
    let Some(before) = peak_rss_bytes() else { return };
    let report = scanner.scan(&text);
    let after = peak_rss_bytes().unwrap_or(before);
    let grown = after.saturating_sub(before);
    // Window bookkeeping is ~5 bytes per window byte, the regex caches a few MiB; the report is
    // bounded per rule. 64 MiB would mean memory grows with the input (16 MiB × ~5 bytes).
    assert!(grown < 64 << 20, "peak grew by {} MiB", grown >> 20);
    assert!(report.findings.len() <= security::INVISIBLE_SPANS_MAX + 64 * security::MATCHES_PER_RULE_MAX);
}
