//! dermo-scope: the dermatoscope program. Capture, check, classify, display, journal.
//!
//! Decision support — not a diagnosis.

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use dermo_device::app::{find_model, App, RunError};
use dermo_device::capture::{CaptureStep, StepTimes};
use dermo_device::classifier::{trust_policy, Classifier, ClassifierError};
use dermo_device::config::{Config, RunFlags};
use dermo_device::controls::TriggerSpec;
use dermo_device::display::DisplayChoice;
use dermo_device::export::{ExportError, ExportOptions};
use dermo_device::frame::read_image_file;
use dermo_device::journal::{self, BadEntry, Journal};
use dermo_device::modelstore::{ModelStore, StoreError};
use dermo_device::source::{self, SourceSpec};
use dermo_device::{bench, export};
use embedded_graphics::prelude::Size;
use std::path::{Path, PathBuf};

/// Exit status: 0 ok, 1 other failure, 2 bad usage, 3 model invalid, 4 storage full,
/// 5 frame source lost, 6 damaged journal records (`journal` without `--repair`,
/// `export --strict`).
#[derive(Parser)]
#[command(
    name = "dermo-scope",
    version,
    about = "dermo-scope: capture, check and classify skin lesions on the dermatoscope. Decision support - not a diagnosis.",
    after_help = "Exit status: 0 ok, 1 failure, 2 bad usage, 3 model invalid, 4 storage full, 5 frame source lost, 6 damaged journal records (journal without --repair, export --strict).\nWith no command, `run` with the config's settings."
)]
struct Cli {
    /// Config file (TOML). Default: /etc/dermo/dermo-scope.toml when it exists, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Model file (.onnx with its .sig). Default: [model] path in the config, else
    /// <store>/current.onnx, /opt/dermo/model.onnx, or the repository's model/dermo-default.onnx.
    #[arg(long, global = true, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Accept a model file without a signature (development only).
    #[arg(long, global = true)]
    allow_unsigned: bool,
    /// Classify one image file, print its result as JSON and exit (nothing is journaled). Not
    /// with a command.
    #[arg(long, value_name = "IMAGE")]
    once: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Capture, classify, show and journal frames until the source ends or you quit.
    Run(RunArgs),
    /// Bundle the journal's captures for the host (`dermo data import scope-bundle`).
    /// Records that fail their checks are skipped and listed on stderr.
    Export {
        /// New, empty directory to write the bundle into (images/ and captures.csv). It is
        /// built beside it and renamed into place, so a failed export leaves nothing.
        #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
        out: PathBuf,
        /// Journal directory. Default: [journal] data_dir in the config.
        #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
        data_dir: Option<PathBuf>,
        /// Export nothing, and exit 6, when any record fails its checks.
        #[arg(long)]
        strict: bool,
    },
    /// Manage the installed models (current.onnx and previous.onnx in the model store).
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Check the journal: repair what a crash left, then verify every record against its hashes
    /// (exit 6 when any fails).
    Journal {
        /// Journal directory. Default: [journal] data_dir in the config.
        #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
        data_dir: Option<PathBuf>,
        /// Move records that fail into DATA_DIR/quarantine/<time>/ and take them out of the
        /// index (nothing is deleted). Stop `dermo-scope run` first.
        #[arg(long)]
        repair: bool,
    },
    /// Time the pipeline per frame: capture+decode, quality gate, preprocess, inference, draw
    /// (median milliseconds, printed as one name=value line).
    Bench {
        /// Time inference operator by operator instead: tract's mean milliseconds per frame and
        /// share by kind of operator (stem, 1x1 conv, depthwise conv by kernel and stride, head,
        /// pooling, elementwise, quantize/dequantize, other), as a table, then one name=value line.
        #[arg(long)]
        profile: bool,
        /// With --profile, also list every plan node: id, kind, ms/frame, op, name, ONNX node.
        #[arg(long, requires = "profile")]
        nodes: bool,
        /// Frames to time: dir:PATH, file:PATH, synthetic[:COUNT] or camera[:DEVICE].
        #[arg(long, default_value = "synthetic")]
        source: SourceSpec,
        /// Timed frames.
        #[arg(long, default_value_t = 50)]
        frames: usize,
        /// Untimed frames run first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Screen size the result is drawn at, WIDTHxHEIGHT.
        #[arg(long, default_value = "320x240", value_parser = parse_size)]
        size: Size,
    },
}

#[derive(Subcommand)]
enum ModelAction {
    /// Make the previous model current again (and the current one previous), atomically.
    Rollback,
    /// Check FILE's signature and install it as current; the current model becomes previous.
    Install { file: PathBuf },
    /// Print the SHA-256 of the current and previous models.
    Status,
}

#[derive(Args, Default)]
struct RunArgs {
    /// Frame source: camera[:DEVICE], dir:PATH, file:PATH or synthetic[:COUNT]. Default: [source] in the config.
    #[arg(long)]
    source: Option<SourceSpec>,
    /// Display: fb[:DEVICE], spi, png:DIR, text or auto. Default: [display] in the config.
    #[arg(long)]
    display: Option<DisplayChoice>,
    /// Size of png and text displays, WIDTHxHEIGHT (e.g. 240x240, 320x240, 800x480).
    #[arg(long, value_parser = parse_size)]
    size: Option<Size>,
    /// Capture every frame (same as --trigger continuous).
    #[arg(long, conflicts_with = "trigger")]
    continuous: bool,
    /// What starts a capture: gpio (button), stdin (Enter; q quits), continuous or auto.
    #[arg(long)]
    trigger: Option<TriggerSpec>,
    /// Journal directory. Default: [journal] data_dir in the config.
    #[arg(long, value_name = "DIR", value_parser = non_empty_path)]
    data_dir: Option<PathBuf>,
    /// Stop capturing before less than this many MiB remain free.
    #[arg(long, value_name = "MIB")]
    min_free_mb: Option<u64>,
    /// Stop capturing when the journal would exceed this many MiB (0 = no cap).
    #[arg(long, value_name = "MIB")]
    max_journal_mb: Option<f64>,
    /// Give up when the source stays lost this many seconds (0 = wait forever).
    #[arg(long, value_name = "SECONDS")]
    reconnect_timeout: Option<u64>,
    /// Continuous mode: least milliseconds between captures.
    #[arg(long, value_name = "MS")]
    interval_ms: Option<u64>,
}

impl RunArgs {
    /// The flags as overrides of the config.
    fn flags(&self) -> RunFlags {
        RunFlags {
            source: self.source.clone(),
            display: self.display.clone(),
            size: self.size.map(|s| (s.width, s.height)),
            trigger: match self.continuous {
                true => Some(TriggerSpec::Continuous),
                false => self.trigger,
            },
            interval_ms: self.interval_ms,
            data_dir: self.data_dir.clone(),
            min_free_mb: self.min_free_mb,
            max_journal_mb: self.max_journal_mb,
            reconnect_timeout_s: self.reconnect_timeout,
        }
    }
}

/// A path argument that is not empty (an empty one would mean the working directory).
fn non_empty_path(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(PathBuf::from(s))
}

fn parse_size(s: &str) -> Result<Size, String> {
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

fn main() {
    let cli = Cli::parse();
    // (`conflicts_with` cannot name the subcommand: clap's debug build refuses the whole CLI.)
    if cli.once.is_some() && cli.command.is_some() {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--once IMAGE cannot be used with a command",
            )
            .exit();
    }
    let code = match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dermo-scope: {e:#}");
            exit_code(&e)
        }
    };
    std::process::exit(code);
}

/// The documented exit status of a failure (see `after_help`).
fn exit_code(e: &anyhow::Error) -> i32 {
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

fn dispatch(cli: Cli) -> Result<()> {
    // Every config error names the file already.
    let cfg = Config::load(cli.config.as_deref())?;
    if let Some(image) = &cli.once {
        return once(&cli, &cfg, image);
    }
    match cli.command {
        None => run(&cli, &cfg, &RunArgs::default()),
        Some(Command::Run(ref args)) => run(&cli, &cfg, args),
        Some(Command::Export {
            ref out,
            ref data_dir,
            strict,
        }) => {
            let data_dir = data_dir.clone().unwrap_or_else(|| cfg.data_dir());
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
                    return Err(e).with_context(|| {
                        format!("exporting {} to {}", data_dir.display(), out.display())
                    });
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
        Some(Command::Model { ref action }) => model_command(&cli, &cfg, action),
        Some(Command::Journal {
            ref data_dir,
            repair,
        }) => {
            let data_dir = data_dir.clone().unwrap_or_else(|| cfg.data_dir());
            journal_check(&cfg, &data_dir, repair)
        }
        Some(Command::Bench {
            profile,
            nodes,
            ref source,
            frames,
            warmup,
            size,
        }) => {
            let classifier = load_classifier(&cli, &cfg)?;
            let mut src = source::open(source, &cfg.source_settings())
                .with_context(|| format!("opening {source:?}"))?;
            if profile {
                let counts = (warmup, frames);
                return bench_profile(&cli, &cfg, &classifier, src.as_mut(), counts, nodes);
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
                "frames={} screen={}x{}",
                t.inference.len(),
                size.width,
                size.height
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
    }
}

/// `bench --profile`: the plan built again, as the classifier builds it, with tract's per-node
/// timing hook; the table, then the `name=value` line.
fn bench_profile(
    cli: &Cli,
    cfg: &Config,
    classifier: &Classifier,
    src: &mut dyn source::FrameSource,
    (warmup, frames): (usize, usize),
    list_nodes: bool,
) -> Result<()> {
    let model = dermo_model::ModelFile::open(classifier.path(), &trust(cli, cfg)?)
        .map_err(|e| RunError::ModelInvalid(ClassifierError::Model(e)))?;
    let mut profiler = dermo_model::Profiler::new(&model).with_context(|| {
        format!(
            "building the profiled plan of {}",
            classifier.path().display()
        )
    })?;
    let p = bench::profile(src, classifier, &mut profiler, warmup, frames)?;
    println!(
        "tract per-operator time: {}, {} frames (mean per frame), 1 thread",
        classifier.path().display(),
        p.frames
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

fn model_path(cli: &Cli, cfg: &Config) -> Result<PathBuf> {
    let path =
        find_model(cli.model.as_deref(), &cfg.model_candidates()).map_err(anyhow::Error::msg)?;
    Ok(path)
}

/// The trust policy; a trusted key that cannot be read leaves no model usable (exit 3).
fn trust(cli: &Cli, cfg: &Config) -> Result<dermo_model::TrustPolicy> {
    trust_policy(
        &cfg.trusted_keys(),
        cli.allow_unsigned || cfg.model.allow_unsigned,
    )
    .map_err(|e| RunError::ModelInvalid(e).into())
}

fn load_classifier(cli: &Cli, cfg: &Config) -> Result<Classifier> {
    let path = model_path(cli, cfg)?;
    Classifier::load(&path, &trust(cli, cfg)?).map_err(|e| RunError::ModelInvalid(e).into())
}

/// `--once IMAGE`: the scriptable path. The image is read (under `[source] max_input_mb`)
/// before the model is loaded.
fn once(cli: &Cli, cfg: &Config, image: &Path) -> Result<()> {
    let bytes = read_image_file(image, cfg.source.max_input_bytes())?;
    let img = dermo_model::preprocess::decode_bytes(&bytes, &image.display().to_string())?;
    let classifier = load_classifier(cli, cfg)?;
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

fn run(cli: &Cli, cfg: &Config, args: &RunArgs) -> Result<()> {
    let cfg = cfg.clone().with_flags(args.flags());
    let (model, trust) = (model_path(cli, &cfg)?, trust(cli, &cfg)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    App::from_config(&cfg, model, trust, &mut out)?.run()?;
    Ok(())
}

fn model_command(cli: &Cli, cfg: &Config, action: &ModelAction) -> Result<()> {
    let store = ModelStore::new(&cfg.model.store);
    let trust = trust(cli, cfg)?;
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
fn journal_check(cfg: &Config, data_dir: &Path, repair: bool) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        assert_eq!(parse_size("800x480").unwrap(), Size::new(800, 480));
        assert!(parse_size("800").is_err());
        assert!(parse_size("0x10").is_err());
        assert!(Cli::try_parse_from(["dermo-scope", "--once", "a.jpg"]).is_ok());
    }
}
