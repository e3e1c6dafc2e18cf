//! `dermo`, the host workbench. A thin command-line layer over the library modules in `dermo_host`.

use clap::{Parser, Subcommand};
use dermo_host::{data, doctor, eval, export, train};

/// dermo — offline skin-lesion triage workbench.
///
/// Imports dermoscopy datasets, trains an EfficientNet-Lite0 classifier (libtorch, CUDA when
/// present), evaluates and calibrates it, runs experiment grids and exports one signed, quantized
/// ONNX model file for the dermo-scope device. Decision support, not a diagnosis.
#[derive(Parser)]
#[command(name = "dermo", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show libtorch, CUDA/cuDNN, tract and pretrained-weight status.
    Doctor(doctor::DoctorArgs),
    /// Dataset tooling: import, check, split, cache.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train the classifier.
    Train(train::TrainArgs),
    /// Average several runs' weights into one model (greedy or uniform soup, chosen on validation).
    Soup(train::SoupArgs),
    /// Evaluate a run's checkpoint or a model file on a split.
    Eval(eval::EvalArgs),
    /// Fit temperature and refer threshold on the validation split and store them with the run.
    Calibrate(eval::CalibrateArgs),
    /// Write an HTML + Markdown report for a run or a sweep.
    Report(eval::ReportArgs),
    /// Run a grid of recipes (resumable, several seeds per cell), here or as a Slurm job array.
    Sweep(eval::SweepArgs),
    /// Classical ABCD-feature baseline (linfa).
    Baseline(eval::BaselineArgs),
    /// Export a run as one ONNX model file (int8 by default), optionally signed.
    Export(export::ExportArgs),
    /// Print the metadata of a model file.
    Inspect(export::InspectArgs),
    /// Make an ed25519 key pair for signing model files.
    Keygen(export::KeygenArgs),
    /// Verify a model file's detached signature.
    Verify(export::VerifyArgs),
}

fn main() {
    // A closed pipe (`dermo inspect M.onnx | head`) ends dermo quietly, as it does any Unix tool,
    // instead of panicking in println!.
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor(a) => doctor::run(a),
        Command::Data(c) => data::run(c),
        Command::Train(a) => train::run(a),
        Command::Soup(a) => train::soup::run(a),
        Command::Eval(a) => eval::run_eval(a),
        Command::Calibrate(a) => eval::run_calibrate(a),
        Command::Report(a) => eval::run_report(a),
        Command::Sweep(a) => eval::run_sweep(a),
        Command::Baseline(a) => eval::run_baseline(a),
        Command::Export(a) => export::run_export(a),
        Command::Inspect(a) => export::run_inspect(a),
        Command::Keygen(a) => export::run_keygen(a),
        Command::Verify(a) => export::run_verify(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
