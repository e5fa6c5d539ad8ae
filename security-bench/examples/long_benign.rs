//! False positives of the injection detector on real benign documents by length: READMEs,
//! licences and source files found under a directory (default: the cargo registry's sources
//! on this machine), cut into documents of 1, 4, 16 and 64 KiB, each scanned whole:
//! `cargo run -p security-bench --release --example long_benign [DIR] [DOCS_PER_LENGTH]`.
//! Under the cargo registry, only the crates outside the injection model's training half are
//! read (see `in_training_half`).
//! A detector whose score grows with length blocks more of the longer ones.

use std::path::{Path, PathBuf};

use security::{ScanConfig, Scanner};

/// FNV-1a of a crate's name (its directory's name without the version): even names are in
/// the injection model's training half (`security/training/benign_docs.py`), so only odd ones
/// are measured here.
fn in_training_half(crate_dir: &Path) -> bool {
    let name = crate_dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = name.rsplit_once('-').map_or(name, |(name, _)| name);
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    hash % 2 == 0
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>, limit: usize) {
    collect_at(dir, 0, out, limit)
}

fn collect_at(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, limit: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if out.len() >= limit {
            return;
        }
        if path.is_dir() {
            // The registry's layout: src/<index>/<crate>-<version>/…
            if depth == 1 && in_training_half(&path) {
                continue;
            }
            collect_at(&path, depth + 1, out, limit);
        } else {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_ascii_lowercase();
            if name.starts_with("readme")
                || name.starts_with("license")
                || name.starts_with("licence")
                || name.ends_with(".rs")
                || name.ends_with(".md")
            {
                out.push(path);
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".cargo/registry/src"));
    let per_length: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(300);
    let mut files = Vec::new();
    collect(&dir, &mut files, 200_000);
    // One long stream of real text, files one after another, cut into documents.
    let mut text = String::new();
    for path in &files {
        if let Ok(content) = std::fs::read_to_string(path) {
            text.push_str(&content);
            text.push('\n');
        }
        if text.len() > 64 * 1024 * per_length * 2 {
            break;
        }
    }
    let mut scanner = Scanner::new(ScanConfig::default())?;
    // `LONG_BENIGN_MODEL=FILE`: measure a weights file other than the one compiled in.
    if let Some(path) = std::env::var_os("LONG_BENIGN_MODEL") {
        scanner = scanner.with_injection_model(security::InjectionModel::from_bytes(&std::fs::read(path)?)?);
    }
    println!("{} files, {} MB of benign text from {}", files.len(), text.len() >> 20, dir.display());
    println!("{:>8} {:>6} {:>6} {:>8}", "length", "docs", "FP", "FPR");
    for kib in [1usize, 4, 16, 64] {
        let size = kib * 1024;
        let (mut docs, mut flagged, mut at) = (0, 0, 0);
        while docs < per_length && at + size <= text.len() {
            let mut end = at + size;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let mut start = at;
            while !text.is_char_boundary(start) {
                start += 1;
            }
            let report = scanner.scan(&text[start..end]);
            if report.injection_detected {
                flagged += 1;
                if std::env::var_os("LONG_BENIGN_SHOW").is_some() {
                    let rules: Vec<String> = report
                        .findings
                        .iter()
                        .filter(|f| f.kind == security::FindingKind::PromptInjection)
                        .map(|f| {
                            format!(
                                "{} {:?}",
                                f.rule_id.as_str(),
                                &text[start + f.span.start..start + f.span.end]
                            )
                        })
                        .collect();
                    println!("  {kib} KiB, score {:.2}: {}", report.injection_score, rules.join("; "));
                }
            }
            docs += 1;
            // Spread the documents over the whole text.
            at += (text.len() / per_length).max(size);
        }
        println!("{:>6}Ki {docs:>6} {flagged:>6} {:>8.3}", kib, flagged as f64 / docs.max(1) as f64);
    }
    Ok(())
}
