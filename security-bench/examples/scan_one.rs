//! Scans one generated input, for profilers: `scan_one UNIT [MIB]` scans `UNIT` (or the text of
//! `@FILE`) repeated to `MIB` mebibytes (default 1) as one text and prints the throughput.

use std::time::Instant;

use security::{ScanConfig, Scanner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let unit = args.next().unwrap_or_else(|| "-".to_owned());
    // `@FILE`: the file's text is the unit.
    let unit = match unit.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)?,
        None => unit,
    };
    let mebibytes: usize = args.next().map(|arg| arg.parse()).transpose()?.unwrap_or(1);
    let text = unit.repeat((mebibytes << 20) / unit.len().max(1));
    let scanner = Scanner::new(ScanConfig::default())?;
    // Warm: the lazy automata build their states on first use.
    scanner.scan(&text);
    let started = Instant::now();
    let report = scanner.scan(&text);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{:.1} MB/s ({} findings, injection score {:.2})",
        text.len() as f64 / 1e6 / seconds,
        report.findings.len(),
        report.injection_score
    );
    Ok(())
}
