//! `dermo inspect`: everything a model file says about itself.

use dermo_model::signature::{self, signature_path};
use dermo_model::{GraphInfo, ModelFile};
use std::fmt::Write;

/// A readable report of the file, its graph, its signature and all of its `dermo.*` metadata.
pub fn report(file: &ModelFile, graph: &GraphInfo) -> String {
    let m = &file.metadata;
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<22}{v}");
    };
    line("file", file.path.display().to_string());
    line(
        "size",
        format!(
            "{} bytes ({:.2} MiB)",
            file.bytes.len(),
            file.bytes.len() as f64 / 1048576.0
        ),
    );
    line("sha256", file.sha256.clone());
    let sig = signature_path(&file.path);
    line(
        "signature",
        match signature::read_signature(&file.path) {
            Ok(_) => format!("{} (check it with dermo verify --key PUB)", sig.display()),
            Err(e) => format!("none usable: {e}"),
        },
    );
    line("producer", graph.producer.clone());
    let opsets: Vec<String> = graph
        .opsets
        .iter()
        .map(|(d, v)| format!("{}{v}", if d.is_empty() { "ai.onnx " } else { d }))
        .collect();
    line(
        "format",
        format!("IR {}, opset {}", graph.ir_version, opsets.join(", ")),
    );
    for (name, dims) in &graph.inputs {
        line("input", format!("{name} [{}]", dims.join(", ")));
    }
    for (name, dims) in &graph.outputs {
        line("output", format!("{name} [{}]", dims.join(", ")));
    }
    let ops: Vec<String> = graph.ops.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    line("operators", ops.join(" "));
    line("initializers", graph.initializers.to_string());

    let p = &m.provenance;
    line("precision", p.precision.clone());
    line("architecture", p.arch.clone());
    line("dataset manifest", p.manifest_hash.clone());
    line("split seed", p.split_seed.to_string());
    line("source commit", p.source_commit.clone());
    line("created", p.created.clone());

    let i = &m.input;
    line(
        "input preprocessing",
        format!(
            "{}×{} {}, (x − {:?}) / {:?}, colour constancy {}",
            i.preprocess.size,
            i.preprocess.size,
            i.layout,
            i.mean,
            i.std,
            if i.preprocess.color_constancy {
                "on (Shades of Gray)"
            } else {
                "off"
            }
        ),
    );
    for (k, c) in m.classes.iter().enumerate() {
        let group = if c.malignant { "malignant" } else { "benign" };
        line(
            &format!("class {k}"),
            format!("{:<6} {:<10} {}", c.code, group, c.name),
        );
    }
    let c = &m.calibration;
    line("temperature", format!("{}", c.temperature));
    line(
        "refer threshold",
        format!(
            "{} (malignant-group probability; set for sensitivity {})",
            c.refer_threshold, c.target_sensitivity
        ),
    );
    line(
        "abstain below",
        format!("{} top-1 probability", c.abstain_min_confidence),
    );
    line(
        "out-of-distribution",
        match &c.ood {
            Some(o) => format!(
                "abstain when score > {} ({} dimensions: {})",
                o.threshold,
                o.feature_mean.len(),
                crate::eval::network::OodFeatures::of(Some(o)).describe()
            ),
            None => "no rule".into(),
        },
    );
    for (k, v) in &graph.other_props {
        line(k, v.clone());
    }
    let metrics = serde_json::to_string_pretty(&m.metrics).unwrap_or_default();
    let _ = writeln!(s, "metrics\n{metrics}");
    s
}
