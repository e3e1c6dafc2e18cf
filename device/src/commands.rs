//! The commands of `dermo-scope`, one function each; `main.rs` parses the command line and
//! calls them. Every failure maps to the documented exit status ([`exit_code`]).

use crate::app::{find_model, App, RunError};
use crate::bench;
use crate::capture::{CaptureStep, StepTimes};
use crate::classifier::{trust_policy, Classifier, ClassifierError};
use crate::config::{ArithmeticChoice, Config, RunFlags};
use crate::export::{self, ExportError, ExportOptions};
use crate::frame::read_image_file;
use crate::journal::{self, BadEntry, Journal};
use crate::modelstore::{ModelStore, StoreError};
use crate::source::{self, SourceSpec};
use anyhow::{Context, Result};
use dermo_model::{DepthwiseKernel, RuntimeOptions};
use embedded_graphics::prelude::Size;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

/// Which model file, and whether an unsigned one is accepted (`--model`, `--allow-unsigned`).
#[derive(Debug, Clone, Default)]
pub struct ModelChoice {
    pub model: Option<PathBuf>,
    pub allow_unsigned: bool,
}

impl ModelChoice {
    fn path(&self, cfg: &Config) -> Result<PathBuf> {
        find_model(self.model.as_deref(), &cfg.model_candidates()).map_err(anyhow::Error::msg)
    }

    /// The trust policy; a trusted key that cannot be read leaves no model usable (exit 3).
    fn trust(&self, cfg: &Config) -> Result<dermo_model::TrustPolicy> {
        trust_policy(
            &cfg.trusted_keys(),
            self.allow_unsigned || cfg.model.allow_unsigned,
        )
        .map_err(|e| RunError::ModelInvalid(e).into())
    }

    fn load(&self, cfg: &Config, options: RuntimeOptions) -> Result<Classifier> {
        let path = self.path(cfg)?;
        Classifier::load(&path, &self.trust(cfg)?, options)
            .map_err(|e| RunError::ModelInvalid(e).into())
    }
}

/// What `dermo-scope model` does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ModelAction {
    /// Make the previous model current again (and the current one previous), atomically.
    Rollback,
    /// Check FILE's signature and install it as current; the current model becomes previous.
    Install { file: PathBuf },
    /// Print the SHA-256 of the current and previous models.
    Status,
}

/// What `dermo-scope bench` times.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Time inference operator by operator instead: tract's mean milliseconds per frame and
    /// share by kind of operator (stem, 1x1 conv, depthwise conv by kernel and stride, head,
    /// pooling, elementwise, quantize/dequantize, other), as a table, then one name=value line.
    #[arg(long)]
    pub profile: bool,
    /// With --profile, also list every plan node: id, kind, ms/frame, op, name, ONNX node.
    #[arg(long, requires = "profile")]
    pub nodes: bool,
    /// Frames to time: dir:PATH, file:PATH, synthetic[:COUNT] or camera[:DEVICE].
    #[arg(long, default_value = "synthetic")]
    pub source: SourceSpec,
    /// Timed frames.
    #[arg(long, default_value_t = 50)]
    pub frames: usize,
    /// Untimed frames run first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Screen size the result is drawn at, WIDTHxHEIGHT.
    #[arg(long, default_value = "320x240", value_parser = parse_size)]
    pub size: Size,
    /// Inference threads, over `[model] threads` in the config (default: every core).
    #[arg(long)]
    pub threads: Option<NonZeroUsize>,
    /// Run tract's own depthwise convolution instead of dermo's, for comparison.
    #[arg(long)]
    pub tract_depthwise: bool,
    /// Arithmetic, over `[model] arithmetic` in the config: f32, f16 or auto (f16 where the core
    /// computes it natively).
    #[arg(long)]
    pub arithmetic: Option<ArithmeticChoice>,
}

impl BenchOptions {
    /// The config's runtime options with this command's overrides.
    fn runtime(&self, cfg: &Config) -> RuntimeOptions {
        let mut options = cfg.runtime_options();
        if let Some(n) = self.threads {
            options.threads = n.get();
        }
        if self.tract_depthwise {
            options.depthwise = DepthwiseKernel::Tract;
        }
        if let Some(choice) = self.arithmetic {
            options.arithmetic = choice.resolve();
        }
        options
    }
}

/// The documented exit status of a failure (see `after_help`).
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if let Some(e) = e.downcast_ref::<RunError>() {
        e.exit_code()
    } else if let Some(e) = e.downcast_ref::<StoreError>() {
        e.exit_code()
    } else if matches!(
        e.downcast_ref::<ExportError>(),
        Some(ExportError::Damaged { .. })
    ) || e.is::<DamagedJournal>()
    {
        6
    } else {
        1
    }
}

/// `dermo-scope journal` found records that fail verification (exit 6).
#[derive(Debug, thiserror::Error)]
#[error("{bad} of {records} records of journal {root} fail verification (listed above); `dermo-scope journal --repair` moves them to quarantine")]
struct DamagedJournal {
    root: PathBuf,
    bad: usize,
    records: usize,
}

/// One line on stderr per record that failed its checks.
fn report_bad(bad: &[BadEntry]) {
    for b in bad {
        let id = b.id.as_deref().map_or("?".into(), |id| format!("{id:?}"));
        eprintln!(
            "dermo-scope: bad record {id} (index line {}): {}",
            b.line, b.reason
        );
    }
}

/// A screen size, WIDTHxHEIGHT, each side 16‥4096 pixels.
pub fn parse_size(s: &str) -> Result<Size, String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("size {s:?} is not WIDTHxHEIGHT"))?;
    let n = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|&n| (16..=4096).contains(&n))
            .ok_or_else(|| format!("size {s:?}: {v:?} is not a number of pixels in 16..4096"))
    };
    Ok(Size::new(n(w)?, n(h)?))
}

/// `dermo-scope export`: the journal's captures as a bundle.
pub fn export(cfg: &Config, out: &Path, data_dir: Option<PathBuf>, strict: bool) -> Result<()> {
    let data_dir = data_dir.unwrap_or_else(|| cfg.data_dir());
    let options = ExportOptions {
        progress: true,
        strict,
    };
    let s = match export::export_bundle(&data_dir, out, options) {
        Ok(s) => s,
        Err(e) => {
            if let ExportError::Damaged { bad, .. } = &e {
                report_bad(bad);
            }
            return Err(e)
                .with_context(|| format!("exporting {} to {}", data_dir.display(), out.display()));
        }
    };
    report_bad(&s.skipped);
    let skipped = match s.skipped.len() {
        0 => String::new(),
        n => {
            let ids: Vec<String> = s
                .skipped
                .iter()
                .map(|b| b.id.as_deref().map_or("?".into(), |id| format!("{id:?}")))
                .collect();
            format!("; skipped {n} bad record(s): {}", ids.join(", "))
        }
    };
    println!(
        "exported {} captures ({} predictions, {} abstained, {} retakes) to {}{skipped}",
        s.captures,
        s.predictions,
        s.abstained,
        s.retakes,
        out.display()
    );
    Ok(())
}

/// `dermo-scope bench`: per-stage medians, or with `profile` tract's time per operator kind.
pub fn bench(m: &ModelChoice, cfg: &Config, o: &BenchOptions) -> Result<()> {
    let BenchOptions {
        profile,
        nodes,
        ref source,
        frames,
        warmup,
        size,
        ..
    } = *o;
    let runtime = o.runtime(cfg);
    let classifier = m.load(cfg, runtime)?;
    let mut src = source::open(source, &cfg.source_settings())
        .with_context(|| format!("opening {source:?}"))?;
    if profile {
        let counts = (warmup, frames);
        return bench_profile(m, cfg, &classifier, runtime, src.as_mut(), counts, nodes);
    }
    let step = CaptureStep {
        gate: &cfg.quality,
        classifier: &classifier,
    };
    let t = bench::run(src.as_mut(), step, size, warmup, frames)?;
    // One `name=value` line (medians, ms): easy to read and to parse in scripts/bench.
    let stages = [
        ("capture_decode", &t.capture_decode),
        ("quality_gate", &t.quality_gate),
        ("preprocess", &t.preprocess),
        ("inference", &t.inference),
        ("draw", &t.draw),
    ];
    let mut line = format!(
        "frames={} screen={}x{} threads={} depthwise={} arithmetic={}",
        t.inference.len(),
        size.width,
        size.height,
        runtime.threads,
        runtime.depthwise.name(),
        runtime.arithmetic.name()
    );
    let mut total = 0.0;
    for (name, v) in stages {
        let s = bench::stat(v);
        total += s.median_ms;
        line.push_str(&format!(" {name}_ms={:.2}", s.median_ms));
    }
    if t.refused > 0 {
        line.push_str(&format!(" refused_by_gate={}", t.refused));
    }
    println!(
        "{line} total_ms={total:.2} model={}",
        classifier.path().display()
    );
    Ok(())
}

/// `bench --profile`: the plan built again, as the classifier builds it, with tract's per-node
/// timing hook; the table, then the `name=value` line.
fn bench_profile(
    m: &ModelChoice,
    cfg: &Config,
    classifier: &Classifier,
    runtime: RuntimeOptions,
    src: &mut dyn source::FrameSource,
    (warmup, frames): (usize, usize),
    list_nodes: bool,
) -> Result<()> {
    let model = dermo_model::ModelFile::open(classifier.path(), &m.trust(cfg)?)
        .map_err(|e| RunError::ModelInvalid(ClassifierError::Model(e)))?;
    let mut profiler = dermo_model::Profiler::new(&model, runtime).with_context(|| {
        format!(
            "building the profiled plan of {}",
            classifier.path().display()
        )
    })?;
    let p = bench::profile(src, classifier, &mut profiler, warmup, frames)?;
    println!(
        "tract per-operator time: {}, {} frames (mean per frame), {} thread(s), {} depthwise",
        classifier.path().display(),
        p.frames,
        runtime.threads,
        runtime.depthwise.name()
    );
    print!("{}", p.table());
    if list_nodes {
        for (n, ms) in profiler.node_times() {
            println!(
                "node {:>4} {:<40} {ms:>8.3} ms  {:<20} {}  ({})",
                n.id,
                n.kind.label(),
                n.op,
                n.name,
                n.unit.as_deref().unwrap_or("-")
            );
        }
    }
    println!("{} model={}", p.summary_line(), classifier.path().display());
    Ok(())
}

/// `--once IMAGE`: the scriptable path. The image is read (under `[source] max_input_mb`)
/// before the model is loaded.
pub fn once(m: &ModelChoice, cfg: &Config, image: &Path) -> Result<()> {
    let bytes = read_image_file(image, cfg.source.max_input_bytes())?;
    let img = dermo_model::preprocess::decode_bytes(&bytes, &image.display().to_string())?;
    let classifier = m.load(cfg, cfg.runtime_options())?;
    let step = CaptureStep {
        gate: &cfg.quality,
        classifier: &classifier,
    };
    let result = step.run(
        &img,
        &image.display().to_string(),
        chrono::Utc::now(),
        &mut StepTimes::default(),
    )?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

/// `dermo-scope run`: the capture loop, with `flags` over the config.
pub fn run(m: &ModelChoice, cfg: &Config, flags: RunFlags) -> Result<()> {
    let cfg = cfg.clone().with_flags(flags);
    let (model, trust) = (m.path(&cfg)?, m.trust(&cfg)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    App::from_config(&cfg, model, trust, &mut out)?.run()?;
    Ok(())
}

/// `dermo-scope model`: install, roll back or show the store's models.
pub fn model(m: &ModelChoice, cfg: &Config, action: &ModelAction) -> Result<()> {
    let store = ModelStore::new(&cfg.model.store);
    let trust = m.trust(cfg)?;
    let status = match action {
        ModelAction::Rollback => store.rollback(&trust)?,
        ModelAction::Install { file } => store.install(file, &trust)?,
        ModelAction::Status => store.status()?,
    };
    println!(
        "{}",
        serde_json::json!({
            "store": cfg.model.store,
            "current_sha256": status.current,
            "previous_sha256": status.previous,
        })
    );
    Ok(())
}

/// `dermo-scope journal [--repair]`: crash repair, then every record verified; prints one JSON
/// object. Without `--repair`, records that fail are listed and the exit status is 6; with it,
/// they are quarantined and listed.
pub fn journal(cfg: &Config, data_dir: Option<PathBuf>, repair: bool) -> Result<()> {
    let data_dir = &data_dir.unwrap_or_else(|| cfg.data_dir());
    let (mut opened, recovery) = Journal::open(data_dir, cfg.journal.storage())?;
    let found = journal::verify(opened.root())?;
    let records = found.good.len() + found.bad.len();
    let mut report = serde_json::json!({
        "journal": data_dir,
        "records": records,
        "verified": found.good.len(),
        "bad": found.bad,
        "recovery": recovery,
    });
    if repair && !found.bad.is_empty() {
        let quarantine = opened.quarantine()?;
        report["quarantine"] = serde_json::to_value(&quarantine)?;
        println!("{report}");
        return Ok(());
    }
    println!("{report}");
    if found.bad.is_empty() {
        return Ok(());
    }
    report_bad(&found.bad);
    Err(DamagedJournal {
        root: data_dir.to_path_buf(),
        bad: found.bad.len(),
        records,
    }
    .into())
}
