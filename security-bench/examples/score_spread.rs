//! Prints how the injection scores of the DEV half spread, per label, to calibrate the
//! threshold without looking at the held-out half:
//! `cargo run -p security-bench --release --example score_spread [CORPUS_DIR]`.

use std::path::PathBuf;

use security::{ScanConfig, Scanner};
use security_bench::{self as bench, Label, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../security/testdata/injection"));
    let scanner = Scanner::new(ScanConfig::default())?;
    let samples = bench::labelled_samples(&dir, &bench::benign_tasks(bench::BENIGN_TASK_COUNT))?;
    let (mut injection, mut benign) = (Vec::new(), Vec::new());
    for sample in samples.iter().filter(|sample| bench::split_of(&sample.text) == Split::Dev) {
        let score = scanner.scan(&sample.text).injection_score;
        match sample.label {
            Label::Injection => injection.push(score),
            Label::Benign => benign.push(score),
        }
    }
    println!("dev: {} injections, {} benign", injection.len(), benign.len());
    println!("threshold  recall  fpr");
    for step in (20..=50).step_by(1) {
        let threshold = step as f32 / 100.0;
        let caught = injection.iter().filter(|score| **score >= threshold).count();
        let flagged = benign.iter().filter(|score| **score >= threshold).count();
        println!(
            "{threshold:9.2}  {:.3}  {:.3}",
            caught as f64 / injection.len().max(1) as f64,
            flagged as f64 / benign.len().max(1) as f64
        );
    }
    benign.sort_by(|a, b| b.total_cmp(a));
    println!("highest benign scores: {:?}", benign.iter().take(12).collect::<Vec<_>>());
    Ok(())
}
