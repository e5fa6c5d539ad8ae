//! Lists the prompt-injection samples of the DEV half that the scanner misses, and the benign
//! samples (dev half) it flags, to guide rule work without looking at the held-out half:
//! `cargo run -p security-bench --release --example misses [CORPUS_DIR] [PREVIEW_CHARS]`.

use std::path::PathBuf;

use security::{Category, ScanConfig, Scanner};
use security_bench::{self as bench, Label, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../security/testdata/injection"));
    let preview: usize = args.next().map(|arg| arg.parse()).transpose()?.unwrap_or(400);
    let scanner = Scanner::new(ScanConfig::default())?;
    let samples = bench::labelled_samples(&dir, &bench::benign_tasks(bench::BENIGN_TASK_COUNT))?;
    for sample in samples.iter().filter(|sample| bench::split_of(&sample.text) == Split::Dev) {
        let report = scanner.scan(&sample.text);
        let flagged = report.injection_detected;
        let wrong = match sample.label {
            Label::Injection => !flagged,
            Label::Benign => flagged,
        };
        if !wrong {
            continue;
        }
        let rules: Vec<&str> =
            report.of(Category::PromptInjection).map(|finding| finding.rule_id.as_str()).collect();
        let text: String = sample.text.chars().take(preview).collect::<String>().replace('\n', " ⏎ ");
        let what = if sample.label == Label::Injection { "MISS" } else { "FALSE ALARM" };
        println!("{what} [{}] score {:.2} {rules:?}\n  {text}\n", sample.source, report.injection_score);
    }
    Ok(())
}
