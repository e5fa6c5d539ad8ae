//! Prints precision, recall, false-positive rate and throughput of the scanner on the labelled
//! corpora: `cargo run -p security-bench --release --example scan_bench [CORPUS_DIR]`.

use std::path::PathBuf;

use security::{ScanConfig, Scanner};
use security_bench as bench;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../security/testdata/injection"));
    let scanner = Scanner::new(ScanConfig::default())?;
    let report = bench::run(&scanner, &dir)?;
    print!("{report}");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    print!("\n{}", bench::throughput_table(&bench::text_throughput(&scanner, &root)));
    Ok(())
}
