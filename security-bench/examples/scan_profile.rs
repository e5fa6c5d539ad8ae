//! A fixed workload for instruction-count comparisons (`valgrind --tool=callgrind`) and
//! profilers: `cargo run -p security-bench --release --example scan_profile -- [bulk|short] [MIB]`.
//!
//! `bulk` scans the generated benign tasks joined into one text of `MIB` mebibytes (default 2);
//! `short` scans each benign task on its own until `MIB` mebibytes were scanned. It prints the
//! bytes scanned and the wall time, so it is also a quick throughput probe.

use std::time::Instant;

use security::{ScanConfig, Scanner};
use security_bench as bench;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "bulk".to_owned());
    let mebibytes: usize = args.next().map(|arg| arg.parse()).transpose()?.unwrap_or(2);
    let bytes = mebibytes << 20;
    let scanner = Scanner::new(ScanConfig::default())?;
    let tasks = bench::benign_tasks(bench::BENIGN_TASK_COUNT);
    let started = Instant::now();
    let mut scanned = 0;
    match mode.as_str() {
        "bulk" => {
            let mut text = String::with_capacity(bytes + 1024);
            while text.len() < bytes {
                for task in &tasks {
                    text.push_str(task);
                    text.push('\n');
                }
            }
            let started = Instant::now();
            std::hint::black_box(scanner.scan(&text));
            scanned = text.len();
            report(scanned, started.elapsed().as_secs_f64());
            return Ok(());
        }
        "short" => {
            while scanned < bytes {
                for task in &tasks {
                    std::hint::black_box(scanner.scan(task));
                    scanned += task.len();
                }
            }
        }
        other => return Err(format!("unknown mode {other:?}: bulk or short").into()),
    }
    report(scanned, started.elapsed().as_secs_f64());
    Ok(())
}

fn report(bytes: usize, seconds: f64) {
    println!("{bytes} bytes in {seconds:.3} s = {:.1} MB/s", bytes as f64 / 1e6 / seconds.max(1e-9));
}
