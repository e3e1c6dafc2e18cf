//! dermo-scope: the dermatoscope program. Capture, check, classify, display, journal.
//!
//! Decision support — not a diagnosis.

use anyhow::Result;
use clap::{Args, CommandFactory, Parser, Subcommand};
use dermo_device::commands::{self, exit_code, parse_size, BenchOptions, ModelAction, ModelChoice};
use dermo_device::config::{Config, RunFlags};
use dermo_device::controls::TriggerSpec;
use dermo_device::display::DisplayChoice;
use dermo_device::source::SourceSpec;
use embedded_graphics::prelude::Size;
use std::path::PathBuf;

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
    Bench(BenchOptions),
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

fn dispatch(cli: Cli) -> Result<()> {
    // Every config error names the file already.
    let cfg = Config::load(cli.config.as_deref())?;
    let m = ModelChoice {
        model: cli.model.clone(),
        allow_unsigned: cli.allow_unsigned,
    };
    if let Some(image) = &cli.once {
        return commands::once(&m, &cfg, image);
    }
    match cli.command {
        None => commands::run(&m, &cfg, RunFlags::default()),
        Some(Command::Run(args)) => commands::run(&m, &cfg, args.flags()),
        Some(Command::Export {
            out,
            data_dir,
            strict,
        }) => commands::export(&cfg, &out, data_dir, strict),
        Some(Command::Model { action }) => commands::model(&m, &cfg, &action),
        Some(Command::Journal { data_dir, repair }) => commands::journal(&cfg, data_dir, repair),
        Some(Command::Bench(options)) => commands::bench(&m, &cfg, &options),
    }
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
