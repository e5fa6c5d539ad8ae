//! Trains the learned injection model and reports on the held-out set:
//! `cargo run --release -p security-bench --example train_injection [-- --write]`.
//!
//! Training data (never the held-out set, never the vendored corpora's test half):
//! - every `security/training/corpora/*.jsonl` (provenance and licences in
//!   `security/training/SOURCES.md`);
//! - the dev half of `security/testdata/injection/*.jsonl` and of the generated benign tasks
//!   (`security_bench::split_of`), the half the rules were tuned on;
//! - the generated texts with secrets and personal data (`security_bench::sensitive_set`), as
//!   benign: a credential in a text is no attack.
//!
//! Each sample is cut into passages as the scanner cuts text (`security::training_passages`);
//! a logistic regression over the hashed features is fitted by AdaGrad (deterministic order).
//! A tenth of the training texts (by hash) is kept aside to set the thresholds: the detection
//! threshold where the benign texts there are flagged at most [`VALIDATION_FPR`] (a text
//! scores as its worst passage), and never below [`THRESHOLD_MIN`]; the hint threshold at
//! [`HINT_FPR`] of the validation texts. The held-out set's dev half (FNV-1a of the text even)
//! was looked at while choosing the model's design (its curve is printed); the test half is the
//! figure.
//!
//! Then the report: on `security/testdata/heldout/heldout.jsonl`, recall and false-positive
//! rate per language and per tactic, for the rules alone, the model alone, and the scanner
//! (both). `--write` writes `security/model/injection.bin`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use security::{InjectionModel, MODEL_BUCKETS, ScanConfig, Scanner, evidence_scale, training_passages};
use security_bench::{Label, Split, benign_tasks, load_corpora, sensitive_set, split_of};
use serde::Deserialize;

/// Passages one text contributes to training at most (evenly spread over a long text).
const PASSAGES_PER_TEXT_MAX: usize = 12;
/// Passes over the training passages.
const EPOCHS: usize = 8;
/// Reads a tuning knob from the environment (`TRAIN_<NAME>`), else its default.
fn knob(name: &str, default: f32) -> f32 {
    std::env::var(format!("TRAIN_{name}")).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
/// AdaGrad's step.
const LEARNING_RATE: f32 = 0.4;
/// L2 penalty per step, on the weights a step touches.
const L2: f32 = 1e-5;
/// Benign passages weigh this much more than attacks: false positives cost more.
const BENIGN_WEIGHT: f32 = 2.0;
/// The detection threshold's false-positive rate on the validation texts, at least.
const VALIDATION_FPR: f64 = 0.01;
/// The detection threshold, at least. The model is sure of itself on short texts that carry an
/// address, a URL or a single attack word in an ordinary sense (`mail anna@example.com`,
/// `Ignore the flaky test`), and its thresholds from the validation texts (0.3–0.5) let it
/// block such tasks; the detection threshold is kept high until the training data teaches it
/// better.
const THRESHOLD_MIN: f32 = 0.9;
/// The hint threshold's false-positive rate on the validation texts. 0: no hints (the hint
/// threshold is the detection threshold). Hints that joined the rules' weak signals raised the
/// false alarms on long benign documents (`long_benign`) more than they caught attacks.
const HINT_FPR: f64 = 0.0;

#[derive(Deserialize)]
struct Row {
    text: String,
    label: Label,
    source: String,
    #[serde(default)]
    lang: Option<String>,
    #[serde(default)]
    tactic: Option<String>,
}

fn rows(path: &Path) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Row =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), index + 1))?;
        rows.push(row);
    }
    Ok(rows)
}

fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    files.sort();
    files
}

/// A deterministic generator (SplitMix64) for the training order.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

struct Example {
    features: Vec<u32>,
    positive: bool,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

struct Fit {
    weights: Vec<f32>,
    bias: f32,
}

impl Fit {
    fn logit(&self, features: &[u32]) -> f32 {
        if features.is_empty() {
            return self.bias;
        }
        let scale = evidence_scale(features.len());
        self.bias + features.iter().map(|f| self.weights[*f as usize]).sum::<f32>() * scale
    }

    /// A text's score: its worst passage, lowered in log-odds by `ln(passages / 2)` (the
    /// scanner's correction for length, `InjectionModel::threshold_for`, applied to the score
    /// instead of the threshold).
    fn text_score(&self, text: &str) -> f32 {
        let passages = training_passages(text);
        let worst = passages.iter().map(|p| self.logit(p)).fold(f32::NEG_INFINITY, f32::max);
        sigmoid(worst - ((passages.len() as f32) / 2.0).max(1.0).ln())
    }
}

fn train(examples: &[Example]) -> Fit {
    let mut fit = Fit { weights: vec![0.0; MODEL_BUCKETS], bias: 0.0 };
    let mut squares = vec![1e-6f32; MODEL_BUCKETS];
    let mut bias_square = 1e-6f32;
    let positives = examples.iter().filter(|e| e.positive).count().max(1) as f32;
    let negatives = examples.iter().filter(|e| !e.positive).count().max(1) as f32;
    // Balanced classes, then benign weighted up.
    let positive_weight = 1.0;
    let negative_weight = knob("BENIGN", BENIGN_WEIGHT) * positives / negatives;
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut mix = Mix(0x5eed_2026_1208);
    let epochs = knob("EPOCHS", EPOCHS as f32) as usize;
    let (rate, l2) = (knob("RATE", LEARNING_RATE), knob("L2", L2));
    for epoch in 0..epochs {
        for i in (1..order.len()).rev() {
            let j = (mix.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let mut loss = 0.0f64;
        for &index in &order {
            let example = &examples[index];
            if example.features.is_empty() {
                continue;
            }
            let scale = evidence_scale(example.features.len());
            let p = sigmoid(fit.logit(&example.features));
            let (target, weight) =
                if example.positive { (1.0, positive_weight) } else { (0.0, negative_weight) };
            loss -= f64::from(weight)
                * f64::from(if example.positive { p.max(1e-7).ln() } else { (1.0 - p).max(1e-7).ln() });
            let gradient = (p - target) * weight;
            for &feature in &example.features {
                let f = feature as usize;
                let g = gradient * scale + l2 * fit.weights[f];
                squares[f] += g * g;
                fit.weights[f] -= rate * g / squares[f].sqrt();
            }
            bias_square += gradient * gradient;
            fit.bias -= rate * gradient / bias_square.sqrt();
        }
        eprintln!("epoch {}: weighted loss {:.4}", epoch + 1, loss / examples.len() as f64);
    }
    fit
}

/// The threshold under which all but `rate` of `benign` scores lie.
fn threshold_at(benign: &mut [f32], rate: f64) -> f32 {
    benign.sort_by(|a, b| a.total_cmp(b));
    if benign.is_empty() {
        return 0.5;
    }
    let keep = ((benign.len() as f64) * (1.0 - rate)).floor() as usize;
    let index = keep.min(benign.len() - 1);
    // Just above the score of the last benign text allowed under it.
    (benign[index] + 1e-4).min(0.999)
}

#[derive(Default)]
struct Tally {
    positives: usize,
    caught: usize,
    negatives: usize,
    flagged: usize,
}

impl Tally {
    fn add(&mut self, positive: bool, detected: bool) {
        if positive {
            self.positives += 1;
            self.caught += usize::from(detected);
        } else {
            self.negatives += 1;
            self.flagged += usize::from(detected);
        }
    }
    fn line(&self) -> String {
        let rate = |a: usize, b: usize| {
            if b == 0 { "    -".to_string() } else { format!("{:.3}", a as f64 / b as f64) }
        };
        format!(
            "recall {} ({}/{})  FPR {} ({}/{})",
            rate(self.caught, self.positives),
            self.caught,
            self.positives,
            rate(self.flagged, self.negatives),
            self.flagged,
            self.negatives
        )
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let write = std::env::args().any(|a| a == "--write");
    // `--score TEXT…`: the compiled-in model's worst passage of each text, and nothing else.
    if std::env::args().nth(1).as_deref() == Some("--score") {
        let model = InjectionModel::builtin()?;
        for text in std::env::args().skip(2) {
            let normalized = text.to_lowercase();
            let worst = model.worst_passage(&normalized);
            println!(
                "{:.3} (threshold {:.3}) {text}",
                worst.map_or(0.0, |w| w.probability),
                model.threshold()
            );
        }
        return Ok(());
    }
    // Training texts.
    let mut texts: Vec<(String, bool)> = Vec::new();
    for path in jsonl_files(&root.join("security/training/corpora")) {
        for row in rows(&path)? {
            texts.push((row.text, row.label == Label::Injection));
        }
    }
    for sample in load_corpora(&root.join("security/testdata/injection"))? {
        if split_of(&sample.text) == Split::Dev {
            texts.push((sample.text, sample.label == Label::Injection));
        }
    }
    // Texts carrying secrets and personal data (connection strings, keys, headers, addresses)
    // are no injections: the model must not learn that a credential means an attack.
    for labelled in sensitive_set(300) {
        texts.push((labelled.text, false));
    }
    for task in benign_tasks(2_000) {
        if split_of(&task) == Split::Dev {
            texts.push((task, false));
        }
    }
    let (mut fitting, mut validation) = (Vec::new(), Vec::new());
    for (text, positive) in texts {
        if fnv(&text) % 10 == 3 { validation.push((text, positive)) } else { fitting.push((text, positive)) }
    }
    let mut examples = Vec::new();
    for (text, positive) in &fitting {
        let passages = training_passages(text);
        let step = passages.len().div_ceil(PASSAGES_PER_TEXT_MAX).max(1);
        for features in passages.into_iter().step_by(step) {
            examples.push(Example { features, positive: *positive });
        }
    }
    eprintln!(
        "training: {} texts ({} attacks), {} passages; validation: {} texts",
        fitting.len(),
        fitting.iter().filter(|t| t.1).count(),
        examples.len(),
        validation.len()
    );
    let fit = train(&examples);
    let mut benign_scores: Vec<f32> =
        validation.iter().filter(|t| !t.1).map(|(text, _)| fit.text_score(text)).collect();
    let mut threshold =
        threshold_at(&mut benign_scores.clone(), f64::from(knob("FPR", VALIDATION_FPR as f32)));
    threshold = threshold.max(knob("THRESHOLD_MIN", THRESHOLD_MIN));
    let hint = threshold_at(&mut benign_scores, f64::from(knob("HINT", HINT_FPR as f32))).min(threshold);
    let mut tally = Tally::default();
    for (text, positive) in &validation {
        tally.add(*positive, fit.text_score(text) >= threshold);
    }
    println!(
        "thresholds: detection {threshold:.4}, hint {hint:.4}; validation (model alone): {}",
        tally.line()
    );
    let bytes = InjectionModel::to_bytes(&fit.weights, fit.bias, threshold, hint);
    let model = InjectionModel::from_bytes(&bytes)?;
    if write {
        let path = root.join("security/model/injection.bin");
        std::fs::write(&path, &bytes)?;
        println!("wrote {} ({} bytes)", path.display(), bytes.len());
    }
    report(&root, model, fit, threshold)
}

/// The held-out set (empty when absent).
fn held_out(root: &Path) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let path = root.join("security/testdata/heldout/heldout.jsonl");
    if path.exists() { rows(&path) } else { Ok(Vec::new()) }
}

/// Recall and FPR on the held-out set per language and tactic: rules alone, model alone, both.
fn report(
    root: &Path,
    model: InjectionModel,
    fit: Fit,
    threshold: f32,
) -> Result<(), Box<dyn std::error::Error>> {
    let held: Vec<Row> = held_out(root)?;
    if held.is_empty() {
        println!("no held-out set");
        return Ok(());
    }
    // The held-out set's dev half may be looked at while choosing how to train; its test half
    // is the figure to report.
    let (looked, held): (Vec<Row>, Vec<Row>) =
        held.into_iter().partition(|r| split_of(&r.text) == Split::Dev);
    let curve: Vec<String> = [0.05f32, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9]
        .iter()
        .map(|t| {
            let mut tally = Tally::default();
            for row in &looked {
                tally.add(row.label == Label::Injection, fit.text_score(&row.text) >= *t);
            }
            format!("  model at {t}: {}", tally.line())
        })
        .collect();
    println!("held-out dev half ({} texts), model alone by threshold:\n{}", looked.len(), curve.join("\n"));
    let combined = Scanner::new(ScanConfig::default())?.with_injection_model(model);
    let silent =
        InjectionModel::from_bytes(&InjectionModel::to_bytes(&vec![0.0; MODEL_BUCKETS], -20.0, 2.0, 2.0))?;
    let rules = Scanner::new(ScanConfig::default())?.with_injection_model(silent);
    let threshold_score = ScanConfig::default().injection_threshold;
    let mut by: BTreeMap<(String, String), [Tally; 3]> = BTreeMap::new();
    let mut misses: Vec<String> = Vec::new();
    for row in &held {
        let positive = row.label == Label::Injection;
        let verdicts = [
            rules.injection_score(&row.text) >= threshold_score,
            fit.text_score(&row.text) >= threshold,
            combined.injection_score(&row.text) >= threshold_score,
        ];
        if positive != verdicts[2] && misses.len() < 40 {
            let cut: String = row.text.chars().take(110).collect();
            misses.push(format!(
                "{} {} [{}] {}",
                if positive { "MISS" } else { "FP  " },
                row.lang.as_deref().unwrap_or("?"),
                row.tactic.as_deref().unwrap_or("?"),
                cut.replace('\n', " ")
            ));
        }
        let lang = row.lang.clone().unwrap_or_else(|| "?".into());
        let tactic = row.tactic.clone().unwrap_or_else(|| "?".into());
        for key in [
            ("all".to_string(), String::new()),
            (format!("lang {lang}"), String::new()),
            (format!("tactic {tactic}"), String::new()),
            (format!("source {}", row.source.split('/').next().unwrap_or("")), String::new()),
        ] {
            let tallies = by.entry(key).or_default();
            for (tally, verdict) in tallies.iter_mut().zip(verdicts) {
                tally.add(positive, verdict);
            }
        }
    }
    println!("\nheld-out test half ({} texts): rules | model | scanner (rules + model)", held.len());
    for ((key, _), [r, m, c]) in &by {
        println!(
            "{key:<26} rules {}\n{:<26} model {}\n{:<26} both  {}",
            r.line(),
            "",
            m.line(),
            "",
            c.line()
        );
    }
    println!("\nerrors of the scanner (first {}):", misses.len());
    for miss in misses {
        println!("  {miss}");
    }
    Ok(())
}
