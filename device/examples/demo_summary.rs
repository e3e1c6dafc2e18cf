//! `scripts/demo`'s report: reads the events `dermo-scope run` printed (one JSON per line) and
//! the samples' true labels, and prints one line per image — true class, top three calibrated
//! probabilities, the malignant-group probability and the decision — then a tally.
//!
//!   demo_summary EVENTS.jsonl SAMPLES.csv
//!
//! Part of the demo so that the demo needs nothing but the Rust toolchain (no Python).

use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 {
        eprintln!("usage: demo_summary EVENTS.jsonl SAMPLES.csv");
        std::process::exit(2);
    }
    if let Err(e) = run(Path::new(&args[0]), Path::new(&args[1])) {
        eprintln!("demo_summary: {e}");
        std::process::exit(1);
    }
}

fn run(events: &Path, samples: &Path) -> Result<(), String> {
    let truth = labels(samples)?;
    let text = std::fs::read_to_string(events)
        .map_err(|e| format!("cannot read {}: {e}", events.display()))?;
    let (mut captured, mut matches) = (0, 0);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let e: Value = serde_json::from_str(line)
            .map_err(|err| format!("{} line {}: {err}", events.display(), i + 1))?;
        match e["event"].as_str() {
            Some("started") => {
                let sha = e["model_sha256"].as_str().unwrap_or("");
                println!(
                    "model {}  sha256 {}…",
                    text_of(&e["model"]),
                    &sha[..sha.len().min(16)]
                );
            }
            Some("bad_frame") => println!(
                "{:<18} unreadable: {}",
                file_name(text_of(&e["origin"])),
                text_of(&e["error"])
            ),
            Some("capture") => {
                captured += 1;
                let r = &e["result"];
                let name = file_name(text_of(&r["origin"]));
                let true_class = truth.get(&name).map_or("?", String::as_str);
                let d = &r["decision"];
                if d.is_null() {
                    println!(
                        "{name:<18} true {true_class:<5} → retake: {}",
                        text_of(&r["hint"])
                    );
                    continue;
                }
                let tops: Vec<String> = d["top3"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{:<5} {:5.1}%",
                            text_of(&t[0]),
                            100.0 * t[1].as_f64().unwrap_or(0.0)
                        )
                    })
                    .collect();
                let verdict = if !d["abstain"].is_null() {
                    format!("ABSTAIN ({})", text_of(&d["abstain"]["reason"]))
                } else {
                    matches += usize::from(r["top_class"].as_str() == Some(true_class));
                    if d["refer"].as_bool() == Some(true) {
                        "REFER"
                    } else {
                        "no refer"
                    }
                    .to_owned()
                };
                println!(
                    "{name:<18} true {true_class:<5} → {:<40} malignant {:5.1}%  {verdict}",
                    tops.join("  "),
                    100.0 * d["malignant_prob"].as_f64().unwrap_or(0.0)
                );
            }
            _ => {}
        }
    }
    println!(
        "\n{captured} images captured; on the answered ones the top class matches the dermatologist label {matches} times"
    );
    println!("Decision support - not a diagnosis.");
    Ok(())
}

/// File name → true class code, from the samples table (`file,label,…`).
fn labels(samples: &Path) -> Result<HashMap<String, String>, String> {
    let mut reader = csv::Reader::from_path(samples)
        .map_err(|e| format!("cannot read {}: {e}", samples.display()))?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (file, label) = column("file")
        .zip(column("label"))
        .ok_or_else(|| format!("{}: needs columns file and label", samples.display()))?;
    reader
        .records()
        .map(|r| {
            let r = r.map_err(|e| format!("{}: {e}", samples.display()))?;
            Ok((r[file].to_owned(), r[label].to_owned()))
        })
        .collect()
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

fn file_name(path: String) -> String {
    Path::new(&path)
        .file_name()
        .map_or(path.clone(), |n| n.to_string_lossy().into_owned())
}
