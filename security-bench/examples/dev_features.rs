//! Prints, for every sample of the DEV half, its label and the injection rules that match it
//! (at any score), one JSON object per line: the input for fitting rule weights on dev only.
//! `cargo run -p security-bench --release --example dev_features [CORPUS_DIR] > dev.jsonl`

use std::path::PathBuf;

use security::{Category, ScanConfig, Scanner};
use security_bench::{self as bench, Label, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../security/testdata/injection"));
    // A threshold near zero: every rule that matches is reported.
    let scanner = Scanner::new(ScanConfig { injection_threshold: 1e-6, ..ScanConfig::default() })?;
    let samples = bench::labelled_samples(&dir, &bench::benign_tasks(bench::BENIGN_TASK_COUNT))?;
    for sample in samples.iter().filter(|sample| bench::split_of(&sample.text) == Split::Dev) {
        let report = scanner.scan(&sample.text);
        let mut rules: Vec<&str> = report.of(Category::PromptInjection).map(|f| f.rule_id.as_str()).collect();
        rules.sort_unstable();
        rules.dedup();
        let line = serde_json::json!({
            "injection": sample.label == Label::Injection,
            "source": sample.source,
            "rules": rules,
        });
        println!("{line}");
    }
    Ok(())
}
