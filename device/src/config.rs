//! `dermo-scope.toml`: every setting has a default that works, so the file only lists what a
//! device changes. Relative paths are relative to the config file's directory. The source,
//! display and trigger are parsed into their specs at load, so a bad value is refused there, as
//! are a path key set to `""` and a zero `max_input_mb`, naming the key and the file (an empty
//! `data_dir` would otherwise journal into the config's folder). `dermo-scope run`'s flags
//! override the file through [`RunFlags`].

use crate::controls::{TriggerSettings, TriggerSpec};
use crate::display::{DisplayChoice, SpiConfig};
use crate::journal::StoragePolicy;
use crate::source::{SourceSettings, SourceSpec};
use dermo_model::quality::QualityGate;
use dermo_model::{Arithmetic, RuntimeOptions};
use serde::{Deserialize, Deserializer};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the service's config lives on a device.
pub const SYSTEM_CONFIG: &str = "/etc/dermo/dermo-scope.toml";

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub model: ModelConfig,
    pub source: SourceConfig,
    pub display: DisplayConfig,
    pub controls: ControlsConfig,
    pub journal: JournalConfig,
    pub quality: QualityGate,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// The model file. Unset: `<store>/current.onnx`, then `/opt/dermo/model.onnx`, then the
    /// repository's `model/dermo-default.onnx` (see `model_candidates`).
    pub path: Option<PathBuf>,
    /// The installed-model store that `dermo-scope model install|rollback` manage.
    pub store: PathBuf,
    /// Public keys (hex files from `dermo keygen`), or directories of `*.pub` files, whose
    /// signatures are trusted. Empty: see [`Config::trusted_keys`].
    pub trusted_keys: Vec<PathBuf>,
    /// Accept model files without a signature (development only; `--allow-unsigned`).
    pub allow_unsigned: bool,
    /// Threads that share each frame's inference. Unset: every core the system reports.
    pub threads: Option<usize>,
    /// What inference computes in: `f32`, `f16`, or `auto` (f16 where the core has native f16
    /// arithmetic, f32 elsewhere).
    pub arithmetic: ArithmeticChoice,
}

/// `[model] arithmetic`: a choice of [`Arithmetic`], or the core's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ArithmeticChoice {
    /// f16 where the core computes it natively ([`Arithmetic::native_f16`]), f32 elsewhere.
    Auto,
    F32,
    F16,
}

impl ArithmeticChoice {
    /// The arithmetic this choice means on this core.
    pub fn resolve(self) -> Arithmetic {
        match self {
            ArithmeticChoice::F32 => Arithmetic::F32,
            ArithmeticChoice::F16 => Arithmetic::F16,
            ArithmeticChoice::Auto if Arithmetic::native_f16() => Arithmetic::F16,
            ArithmeticChoice::Auto => Arithmetic::F32,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            store: "/opt/dermo/model".into(),
            trusted_keys: Vec::new(),
            allow_unsigned: false,
            threads: None,
            arithmetic: ArithmeticChoice::F32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// `camera[:DEVICE]`, `dir:PATH`, `file:PATH` or `synthetic[:COUNT]`.
    #[serde(deserialize_with = "from_text")]
    pub source: SourceSpec,
    /// Requested camera size (the driver picks the nearest it has).
    pub width: u32,
    pub height: u32,
    /// Give up after the source has been gone this long; 0 waits forever (a device).
    pub reconnect_timeout_s: u64,
    /// Largest image file (`--once`, a replayed file) read, in MiB; a larger one is refused
    /// before it is read. At least 1.
    pub max_input_mb: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            source: SourceSpec::Camera {
                device: "/dev/video0".into(),
            },
            width: 640,
            height: 480,
            reconnect_timeout_s: 0,
            max_input_mb: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    /// `fb[:DEVICE]`, `spi`, `png:DIR`, `text`, or `auto` (fb when /dev/fb0 exists, else text).
    #[serde(deserialize_with = "from_text")]
    pub display: DisplayChoice,
    /// Size of the PNG and text displays (framebuffer and SPI panels report their own).
    pub width: u32,
    pub height: u32,
    pub spi: SpiConfig,
    /// Blend the top class's class-activation map over the capture on the result screen ("where
    /// the model looked"). On the stdin trigger, `m` then Enter toggles it while a result shows.
    pub show_map: bool,
}

impl SourceConfig {
    /// `max_input_mb` in bytes.
    pub fn max_input_bytes(&self) -> u64 {
        self.max_input_mb.saturating_mul(1024 * 1024)
    }
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            display: DisplayChoice::Auto,
            width: 320,
            height: 240,
            spi: SpiConfig::default(),
            show_map: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlsConfig {
    /// `gpio`, `stdin`, `continuous`, or `auto` (continuous for replay and synthetic sources,
    /// stdin for a camera).
    #[serde(deserialize_with = "from_text")]
    pub trigger: TriggerSpec,
    pub gpio_chip: PathBuf,
    /// Line offset of the capture button on `gpio_chip`.
    pub button_pin: u32,
    /// Continuous mode: least time between two captures.
    pub interval_ms: u64,
    /// How long a result stays on a live display before the preview returns.
    pub result_hold_ms: u64,
}

impl Default for ControlsConfig {
    fn default() -> Self {
        ControlsConfig {
            trigger: TriggerSpec::Auto,
            gpio_chip: "/dev/gpiochip0".into(),
            button_pin: 17,
            interval_ms: 0,
            result_hold_ms: 4000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// Where captures are stored. Unset: `$HOME/.local/share/dermo-scope`, or `/var/lib/dermo`.
    pub data_dir: Option<PathBuf>,
    /// Stop capturing when less than this many MiB would remain free on the card.
    pub min_free_mb: u64,
    /// Stop capturing when the journal would exceed this many MiB; 0 = no cap.
    pub max_journal_mb: f64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        let d = StoragePolicy::default();
        JournalConfig {
            data_dir: None,
            min_free_mb: d.min_free_mb,
            max_journal_mb: d.max_journal_mb,
        }
    }
}

impl JournalConfig {
    pub fn storage(&self) -> StoragePolicy {
        StoragePolicy {
            min_free_mb: self.min_free_mb,
            max_journal_mb: self.max_journal_mb,
        }
    }
}

/// A value written as text in the file and parsed into its spec (the error names what is accepted).
fn from_text<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

/// What `dermo-scope run`'s flags override; each `None` keeps the config's value.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    pub source: Option<SourceSpec>,
    pub display: Option<DisplayChoice>,
    /// Size of the PNG and text displays.
    pub size: Option<(u32, u32)>,
    pub trigger: Option<TriggerSpec>,
    pub interval_ms: Option<u64>,
    pub data_dir: Option<PathBuf>,
    pub min_free_mb: Option<u64>,
    pub max_journal_mb: Option<f64>,
    pub reconnect_timeout_s: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config {path}: {cause}")]
    Parse {
        path: PathBuf,
        cause: Box<toml::de::Error>,
    },
    #[error("config {path}: {key} {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: &'static str,
    },
}

impl Config {
    /// Reads `path`, or the system config when it exists, or the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let system = Path::new(SYSTEM_CONFIG);
        match path {
            Some(p) => Config::from_file(p),
            None if system.exists() => Config::from_file(system),
            None => Ok(Config::default()),
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            cause: Box::new(e),
        })?;
        cfg.check().map_err(|(key, problem)| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            problem,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        Ok(cfg)
    }

    /// Values no device can use, as (key, problem); checked before relative paths are resolved.
    fn check(&self) -> Result<(), (&'static str, &'static str)> {
        const EMPTY: &str = "is empty; remove the key for the default, or give a path";
        let empty = |p: &Path| p.as_os_str().is_empty();
        if self.journal.data_dir.as_deref().is_some_and(empty) {
            return Err(("[journal] data_dir", EMPTY));
        }
        if self.model.path.as_deref().is_some_and(empty) {
            return Err(("[model] path", EMPTY));
        }
        if empty(&self.model.store) {
            return Err(("[model] store", EMPTY));
        }
        if self.model.trusted_keys.iter().any(|k| empty(k)) {
            return Err(("[model] trusted_keys", "lists an empty path"));
        }
        if self.model.threads == Some(0) {
            return Err((
                "[model] threads",
                "is 0; remove the key for every core, or give at least 1",
            ));
        }
        if self.source.max_input_mb == 0 {
            return Err(("[source] max_input_mb", "is 0; it must be at least 1"));
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = &mut self.model.path {
            abs(p);
        }
        abs(&mut self.model.store);
        self.model.trusted_keys.iter_mut().for_each(abs);
        if let Some(p) = &mut self.journal.data_dir {
            abs(p);
        }
    }

    /// This config with `flags` put over it.
    pub fn with_flags(mut self, flags: RunFlags) -> Config {
        fn set<T>(slot: &mut T, flag: Option<T>) {
            if let Some(v) = flag {
                *slot = v;
            }
        }
        set(&mut self.source.source, flags.source);
        set(&mut self.display.display, flags.display);
        if let Some((w, h)) = flags.size {
            (self.display.width, self.display.height) = (w, h);
        }
        set(&mut self.controls.trigger, flags.trigger);
        set(&mut self.controls.interval_ms, flags.interval_ms);
        set(&mut self.journal.data_dir, flags.data_dir.map(Some));
        set(&mut self.journal.min_free_mb, flags.min_free_mb);
        set(&mut self.journal.max_journal_mb, flags.max_journal_mb);
        set(
            &mut self.source.reconnect_timeout_s,
            flags.reconnect_timeout_s,
        );
        self
    }

    /// What the frame sources read from `[source]`.
    pub fn source_settings(&self) -> SourceSettings {
        SourceSettings {
            width: self.source.width,
            height: self.source.height,
            max_input: self.source.max_input_bytes(),
        }
    }

    /// What the triggers read from `[controls]`.
    pub fn trigger_settings(&self) -> TriggerSettings {
        TriggerSettings {
            interval: Duration::from_millis(self.controls.interval_ms),
            gpio_chip: self.controls.gpio_chip.clone(),
            button_pin: self.controls.button_pin,
        }
    }

    /// How inference runs: `[model] threads`, else every core the system reports (one when it
    /// reports none), in `[model] arithmetic` (f32 unless set), with dermo's depthwise kernel.
    pub fn runtime_options(&self) -> RuntimeOptions {
        let cores = || std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        RuntimeOptions {
            threads: self.model.threads.unwrap_or_else(cores),
            arithmetic: self.model.arithmetic.resolve(),
            ..RuntimeOptions::default()
        }
    }

    /// The journal directory.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.journal.data_dir {
            return d.clone();
        }
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share/dermo-scope"),
            None => PathBuf::from("/var/lib/dermo"),
        }
    }

    /// Model files to try, in order, when no `--model` is given.
    pub fn model_candidates(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.model.path {
            return vec![p.clone()];
        }
        let mut v = vec![
            self.model.store.join("current.onnx"),
            PathBuf::from("/opt/dermo/model.onnx"),
        ];
        v.extend(checkout_roots().map(|r| r.join("model/dermo-default.onnx")));
        v
    }

    /// The trusted public keys: `[model] trusted_keys` when set, else those of the default
    /// locations that exist — the device's `/etc/dermo/trusted` and, in a checkout, the
    /// repository's `model/dermo-default.pub` (the key the default model is signed with).
    pub fn trusted_keys(&self) -> Vec<PathBuf> {
        if !self.model.trusted_keys.is_empty() {
            return self.model.trusted_keys.clone();
        }
        std::iter::once(PathBuf::from("/etc/dermo/trusted"))
            .chain(checkout_roots().map(|r| r.join("model/dermo-default.pub")))
            .filter(|p| p.exists())
            .collect()
    }
}

/// Where a repository checkout may be: above `target/<profile>/dermo-scope`, and the current
/// directory.
fn checkout_roots() -> impl Iterator<Item = PathBuf> {
    let above_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf));
    above_exe
        .into_iter()
        .chain(std::iter::once(PathBuf::from(".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses_and_resolves_paths() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dermo-scope.toml");
        let cfg = Config::from_file(&path).unwrap();
        assert!(cfg.model.trusted_keys.iter().all(|k| k.is_absolute()));
        assert!(cfg.data_dir().is_absolute());
    }

    #[test]
    fn systemd_unit_runs_the_shipped_config_and_may_write_its_journal() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let unit = std::fs::read_to_string(root.join("../scripts/dermo-scope.service")).unwrap();
        let cfg = Config::from_file(&root.join("config/dermo-scope.toml")).unwrap();
        let exec = unit.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert!(
            exec.ends_with(&format!("run --config {SYSTEM_CONFIG}")),
            "{exec}"
        );
        let data = cfg.data_dir();
        assert!(
            unit.lines()
                .any(|l| l == format!("ReadWritePaths={}", data.display())),
            "the unit must let the service write {}",
            data.display()
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[journal]\nmin_free_mb = 5\nflavour = 1\n").unwrap();
        let e = Config::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("flavour") && e.contains("c.toml"), "{e}");
        std::fs::write(&p, "[journal]\nmin_free_mb = 5\n").unwrap();
        assert_eq!(Config::from_file(&p).unwrap().journal.min_free_mb, 5);
    }

    #[test]
    fn empty_paths_and_a_zero_input_cap_are_refused_naming_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        for (text, key) in [
            ("[journal]\ndata_dir = \"\"\n", "[journal] data_dir"),
            ("[model]\nstore = \"\"\n", "[model] store"),
            ("[model]\npath = \"\"\n", "[model] path"),
            (
                "[model]\ntrusted_keys = [\"k.pub\", \"\"]\n",
                "[model] trusted_keys",
            ),
            ("[source]\nmax_input_mb = 0\n", "[source] max_input_mb"),
            ("[model]\nthreads = 0\n", "[model] threads"),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::from_file(&p).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("c.toml"), "{text:?}: {e}");
        }
        std::fs::write(&p, "[source]\nmax_input_mb = 2\n").unwrap();
        let cfg = Config::from_file(&p).unwrap();
        assert_eq!(cfg.source.max_input_bytes(), 2 * 1024 * 1024);
        // Inference threads: the key, else every core.
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(cfg.runtime_options().threads, cores);
        std::fs::write(&p, "[model]\nthreads = 3\n").unwrap();
        assert_eq!(Config::from_file(&p).unwrap().runtime_options().threads, 3);
        // Arithmetic: f32 unless asked; `auto` is f16 only on a core with native f16.
        assert_eq!(cfg.runtime_options().arithmetic, Arithmetic::F32);
        for (value, expected) in [
            ("f32", Arithmetic::F32),
            ("f16", Arithmetic::F16),
            (
                "auto",
                if Arithmetic::native_f16() {
                    Arithmetic::F16
                } else {
                    Arithmetic::F32
                },
            ),
        ] {
            std::fs::write(&p, format!("[model]\narithmetic = \"{value}\"\n")).unwrap();
            let options = Config::from_file(&p).unwrap().runtime_options();
            assert_eq!(options.arithmetic, expected, "{value}");
        }
        std::fs::write(&p, "[model]\narithmetic = \"bf16\"\n").unwrap();
        let err = Config::from_file(&p).unwrap_err().to_string();
        assert!(
            err.contains("arithmetic") && err.contains("c.toml"),
            "{err}"
        );
    }

    #[test]
    fn source_display_and_trigger_are_parsed_at_load_naming_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        for (text, key, problem) in [
            (
                "[source]\nsource = \"webcam\"\n",
                "source",
                "unknown source",
            ),
            (
                "[display]\ndisplay = \"hdmi\"\n",
                "display",
                "unknown display",
            ),
            (
                "[controls]\ntrigger = \"pedal\"\n",
                "trigger",
                "unknown trigger",
            ),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::from_file(&p).unwrap_err().to_string();
            assert!(
                e.contains("c.toml") && e.contains(key) && e.contains(problem),
                "{text:?}: {e}"
            );
        }
        std::fs::write(
            &p,
            "[source]\nsource = \"dir:frames\"\n[display]\ndisplay = \"png:out\"\n\
             [controls]\ntrigger = \"stdin\"\n",
        )
        .unwrap();
        let cfg = Config::from_file(&p).unwrap();
        assert_eq!(
            cfg.source.source,
            SourceSpec::Replay {
                path: "frames".into()
            }
        );
        assert_eq!(
            cfg.display.display.resolve(),
            crate::display::DisplaySpec::Png { dir: "out".into() }
        );
        assert_eq!(cfg.controls.trigger, TriggerSpec::Stdin);
        // A flag wins over the file; what it leaves out keeps the file's value.
        let cfg = cfg.with_flags(RunFlags {
            trigger: Some(TriggerSpec::Continuous),
            ..RunFlags::default()
        });
        assert_eq!(cfg.controls.trigger, TriggerSpec::Continuous);
        assert_eq!(
            cfg.display.display.resolve(),
            crate::display::DisplaySpec::Png { dir: "out".into() }
        );
    }
}
