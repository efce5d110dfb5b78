//! Detection quality on the labelled public corpus in `testdata/attacks`
//! (see its README): per category, the share of attack samples blocked at
//! each sensitivity level, and the share of benign values flagged or
//! blocked. The floors and ceilings below are the measured figures rounded
//! down (or up) a little, so a change that loses detection or adds false
//! positives fails here.
//!
//! Each sample is inspected as a query-string value, still encoded, as the
//! corpus gives it. Run with `--nocapture` to see the table;
//! `INSPECT_CORPUS_DUMP=<dir>` writes the misses and false positives there.

use palisade_guard::inspect::{Action, Category, Inspector, Sensitivity};
use std::collections::BTreeMap;
use std::path::PathBuf;

const LABELS: [&str; 5] = ["sqli", "xss", "path_traversal", "cmdi", "benign"];
const LEVELS: [Sensitivity; 3] = [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High];

fn corpus(label: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/attacks")
        .join(format!("{label}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            v["input"].as_str().expect("input").to_owned()
        })
        .collect()
}

fn category(label: &str) -> Option<Category> {
    match label {
        "sqli" => Some(Category::Sqli),
        "xss" => Some(Category::Xss),
        "path_traversal" => Some(Category::PathTraversal),
        "cmdi" => Some(Category::Cmdi),
        _ => None,
    }
}

/// Per label and level: (samples, blocked, flagged or blocked, with a finding of the label's category).
type Rates = BTreeMap<(&'static str, u8), (usize, usize, usize, usize)>;

fn measure() -> Rates {
    let inspector = Inspector::default();
    let dump = std::env::var_os("INSPECT_CORPUS_DUMP").map(PathBuf::from);
    let mut rates = Rates::new();
    for label in LABELS {
        let samples = corpus(label);
        for level in LEVELS {
            let mut misses = String::new();
            let entry = rates.entry((label, level.level())).or_default();
            for sample in &samples {
                let verdict = inspector.inspect_value(sample, level);
                entry.0 += 1;
                entry.1 += usize::from(verdict.action == Action::Block);
                entry.2 += usize::from(verdict.action != Action::Allow);
                entry.3 += usize::from(category(label).is_some_and(|c| verdict.has(c)));
                let wrong = if label == "benign" {
                    verdict.action != Action::Allow
                } else {
                    verdict.action != Action::Block
                };
                if wrong {
                    let rules: Vec<_> = verdict.findings.iter().map(|f| f.rule).collect();
                    misses.push_str(&format!("{sample}\t{rules:?}\n"));
                }
            }
            if let Some(dir) = &dump {
                let file = dir.join(format!("{label}-{}.txt", level.level()));
                std::fs::write(file, misses).expect("dump");
            }
        }
    }
    rates
}

fn pct(n: usize, d: usize) -> f64 {
    100.0 * n as f64 / d.max(1) as f64
}

#[test]
fn detection_floors_and_false_positive_ceilings_hold_at_every_level() {
    let rates = measure();
    println!("| label | level | samples | blocked | flagged or blocked | found as its category |");
    println!("|---|---|---|---|---|---|");
    for ((label, level), (n, blocked, acted, right)) in &rates {
        println!(
            "| {label} | {level} | {n} | {:.2}% | {:.2}% | {:.2}% |",
            pct(*blocked, *n),
            pct(*acted, *n),
            pct(*right, *n)
        );
    }
    // (label, level) -> least share blocked, in percent.
    let floors: &[(&str, u8, f64)] = &[
        ("sqli", 1, 90.0),
        ("sqli", 2, 92.5),
        ("sqli", 3, 92.5),
        ("xss", 1, 89.0),
        ("xss", 2, 90.0),
        ("xss", 3, 92.0),
        ("path_traversal", 1, 79.0),
        ("path_traversal", 2, 82.0),
        ("path_traversal", 3, 82.0),
        ("cmdi", 1, 78.5),
        ("cmdi", 2, 86.0),
        ("cmdi", 3, 86.0),
    ];
    for &(label, level, floor) in floors {
        let (n, blocked, ..) = rates[&(label, level)];
        let rate = pct(blocked, n);
        assert!(
            rate >= floor,
            "{label} at level {level}: {rate:.2}% blocked, floor {floor}%"
        );
    }
    // level -> most share of benign values flagged or blocked, in percent.
    let ceilings: &[(u8, f64)] = &[(1, 1.0), (2, 1.5), (3, 2.5)];
    for &(level, ceiling) in ceilings {
        let (n, _, acted, _) = rates[&("benign", level)];
        let rate = pct(acted, n);
        assert!(
            rate <= ceiling,
            "benign at level {level}: {rate:.2}% flagged or blocked, ceiling {ceiling}%"
        );
    }
    // Levels only add rules: a higher level never detects less.
    for label in LABELS {
        let at = |l| rates[&(label, l)].2;
        assert!(
            at(1) <= at(2) && at(2) <= at(3),
            "{label}: levels are not cumulative"
        );
    }
}
