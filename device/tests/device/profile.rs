//! `dermo-scope bench --profile` and the profiler behind it (`dermo_model::profile`) on the
//! bundled model: every plan node charged to exactly one kind, the kinds adding up to the plan
//! run, the depthwise kinds named by kernel and stride, the same logits as the plain runtime. No
//! timing thresholds: speed belongs in `scripts/bench profile`.

use crate::common;
use dermo_model::{ModelFile, OpKind, Profiler, Runtime, TrustPolicy};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn bundled_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/dermo-default.onnx")
}

/// Two of the repository's sample images.
fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/ham10000");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    v.sort();
    v.truncate(2);
    assert_eq!(v.len(), 2, "sample images in {}", dir.display());
    v
}

#[test]
fn the_profile_charges_every_node_once_and_adds_up_to_the_plan_run() {
    let file = ModelFile::open(&bundled_model(), &TrustPolicy::unsigned()).unwrap();
    let cfg = file.metadata.input.preprocess;
    let mut profiler = Profiler::new(&file, Default::default()).unwrap();
    let runtime = Runtime::new(&file).unwrap();
    // A warm-up frame, forgotten, then two timed frames.
    let inputs: Vec<_> = samples()
        .iter()
        .map(|f| dermo_model::preprocess_file(f, &cfg).unwrap())
        .collect();
    profiler.run(&inputs[0]).unwrap();
    profiler.reset();
    for input in &inputs {
        let profiled = profiler.run(input).unwrap();
        // The same plan: the hook changes nothing in what it computes.
        assert_eq!(profiled, runtime.run(input).unwrap());
    }
    let p = profiler.profile();
    assert_eq!(p.frames, 2);

    // Every node the plan evaluates is in exactly one group.
    let plan: Vec<usize> = profiler.nodes().iter().map(|n| n.id).collect();
    let mut grouped: Vec<usize> = p.groups.iter().flat_map(|g| g.nodes.clone()).collect();
    grouped.sort();
    let mut expected = plan.clone();
    expected.sort();
    assert_eq!(grouped, expected, "nodes grouped twice or not at all");
    assert!(plan.len() > 50, "{} plan nodes", plan.len());

    // The groups add up to the plan run, within a few % (tract's own work between nodes).
    let ops = p.operators_ms();
    assert!(p.total_ms > 0.0 && ops > 0.0, "{}", p.table());
    assert!(
        ops <= p.total_ms * 1.001 && ops >= p.total_ms * 0.95,
        "operators {ops:.3} ms of {:.3} ms per frame\n{}",
        p.total_ms,
        p.table()
    );
    let shares: f64 = p.groups.iter().map(|g| g.share).sum();
    assert!((shares - ops / p.total_ms).abs() < 1e-9);

    // EfficientNet-Lite0: 3×3 and 5×5 depthwise convolutions, strides 1 and 2, each named.
    let depthwise: BTreeSet<String> = p
        .groups
        .iter()
        .filter(|g| matches!(g.kind, OpKind::Depthwise { .. }) && !g.nodes.is_empty())
        .map(|g| g.label.clone())
        .collect();
    let want: BTreeSet<String> = [
        "depthwise 3×3 stride 1",
        "depthwise 3×3 stride 2",
        "depthwise 5×5 stride 1",
        "depthwise 5×5 stride 2",
    ]
    .map(String::from)
    .into();
    assert_eq!(depthwise, want, "\n{}", p.table());
    let nodes_of = |kind: OpKind| {
        p.groups
            .iter()
            .find(|g| g.kind == kind)
            .map_or(0, |g| g.nodes.len())
    };
    for kind in [OpKind::Pointwise, OpKind::Stem, OpKind::Head] {
        assert!(
            nodes_of(kind) > 0,
            "no {} nodes\n{}",
            kind.label(),
            p.table()
        );
    }
    // Sixteen blocks: 1×1 expansions and projections, far more than the other convolutions.
    let pointwise = profiler
        .nodes()
        .iter()
        .filter(|n| n.kind == OpKind::Pointwise)
        .filter_map(|n| n.unit.as_deref())
        .collect::<BTreeSet<_>>();
    assert!(pointwise.len() >= 25, "1×1 convolutions: {pointwise:?}");
    // The depthwise convolutions (dermo's kernel, tract's where it does not apply) are where the
    // profile puts them.
    for n in profiler.nodes() {
        if n.op == "DepthWiseConv" || n.op == "DermoDepthwiseConv" {
            assert!(matches!(n.kind, OpKind::Depthwise { .. }), "{n:?}");
        }
    }
}

#[test]
fn bench_profile_prints_the_table_and_one_line_of_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = tmp.path().join("frames");
    common::copy_into(&frames, &samples());
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/dermo-default.pub");
    let config = common::write_config(tmp.path(), &key, "");
    let out = common::dermo_scope()
        .args(["bench", "--profile", "--frames", "1", "--warmup", "1"])
        .arg("--config")
        .arg(&config)
        .arg("--model")
        .arg(bundled_model())
        .arg("--source")
        .arg(format!("dir:{}", frames.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for label in [
        "stem (first conv)",
        "1×1 conv",
        "depthwise 5×5 stride 2",
        "head (last 1×1 conv + classifier)",
        "pooling",
        "elementwise",
        "quantize/dequantize",
        "total (plan run)",
    ] {
        assert!(stdout.contains(label), "no {label:?} in\n{stdout}");
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("frames="))
        .unwrap_or_else(|| panic!("no name=value line in\n{stdout}"));
    assert!(line.starts_with("frames=1 "), "{line}");
    for field in [
        "total_ms=",
        "operators_ms=",
        "conv1x1_ms=",
        "dw3x3s2_ms=",
        "head_ms=",
    ] {
        assert!(line.contains(field), "no {field} in {line}");
    }
}
