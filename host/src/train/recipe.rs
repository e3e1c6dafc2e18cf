//! The training recipe as data: read from TOML, overridden by `--set key=value`, saved as the
//! run folder's `config.toml` so a run can be repeated from its folder alone.

use dermo_model::PreprocessConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("recipe {path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("recipe {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("recipe {path}: unknown key `{key}` (the keys are those of `dermo train` recipes, see docs/training.md)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("--set {0}: expected key=value (for example lr=3e-4 or augment.hflip=false)")]
    SetSyntax(String),
    #[error("--set {assignment}: {message}")]
    SetInvalid { assignment: String, message: String },
    #[error("recipe: {0}")]
    Invalid(String),
}

/// Which part of the network trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Every layer trains, augmentation on the input images.
    Full,
    /// Stem and the first `frozen_blocks` blocks are frozen; their outputs are computed once and
    /// cached, and only the rest of the network trains.
    Partial,
    /// Only the classifier trains, on cached pooled ImageNet features.
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Adamw,
    Sgd,
}

/// Learning-rate shape after the linear warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Cosine decay from `lr` to `lr × min_lr_ratio` at the last step.
    Cosine,
    /// Multiply by `step_gamma` every `step_epochs` epochs.
    Step,
    /// Constant `lr`.
    Constant,
}

/// How the trainer counters the class imbalance (HAM10000 is two thirds `nv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Imbalance {
    None,
    /// Cross-entropy weighted by inverse class frequency (to the power `class_weight_power`).
    WeightedLoss,
    /// Each epoch draws as many examples as the training set has, each class equally likely
    /// (or in proportion to its count to the power `sampler_exponent`).
    BalancedSampler,
    /// Each epoch takes at most `subset_per_class` examples of every class.
    BalancedSubset,
    /// Every example once per epoch; the training loss sees `logits + τ·ln(class prior)`
    /// (τ = `logit_adjust_tau`), so the raw logits learn the balanced posterior
    /// (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021).
    LogitAdjusted,
}

/// Augmentation, applied as tensor operations on the training device. In `partial` mode only
/// the dihedral ones (flips, 90° rotations) apply, to the cached feature maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    pub hflip: bool,
    pub vflip: bool,
    /// Transposes (with the flips, all eight 90° rotations and mirrors).
    pub rot90: bool,
    /// Random resized crop: smallest kept area fraction; 1.0 turns it off.
    pub crop_min_scale: f64,
    /// Random resized crop: largest area fraction. Above 1 the window is larger than the image
    /// (zoom out: the lesion fills less of the frame) and the margin takes the colour of the
    /// image's own border, i.e. skin.
    pub crop_max_scale: f64,
    /// Random resized crop: aspect-ratio range is [1/crop_max_aspect, crop_max_aspect].
    pub crop_max_aspect: f64,
    /// Rotation by a uniform angle in [−rotate_degrees, rotate_degrees] (0: off), done with the
    /// crop; corners take the border colour as with zoom-out.
    pub rotate_degrees: f64,
    /// Colour jitter strengths: each factor is drawn from [1 − s, 1 + s]; 0 turns it off.
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    /// White balance / colour cast: each channel is scaled by its own factor from
    /// [1 − s, 1 + s] (0: off).
    pub white_balance: f64,
    /// Gamma: `255·(x/255)^γ` with ln γ uniform in [−s, s] (0: off).
    pub gamma: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            hflip: true,
            vflip: true,
            rot90: true,
            crop_min_scale: 0.6,
            crop_max_scale: 1.0,
            crop_max_aspect: 4.0 / 3.0,
            rotate_degrees: 0.0,
            brightness: 0.2,
            contrast: 0.2,
            saturation: 0.2,
            white_balance: 0.0,
            gamma: 0.0,
        }
    }
}

/// Everything that decides how a run trains. Every field has a default; a TOML file or `--set`
/// changes any of them. Unknown keys are refused ([`Recipe::load`] checks the top level itself:
/// serde cannot deny unknown fields next to a flattened one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recipe {
    pub mode: Mode,
    /// Blocks frozen and cached in `partial` mode (0‥16).
    pub frozen_blocks: usize,
    /// The preprocessing (`size`: square network input side in pixels; `color_constancy`:
    /// Shades-of-Gray before resizing), flat in the TOML; part of the cache key and of the model
    /// file.
    #[serde(flatten)]
    pub preprocess: PreprocessConfig,
    pub batch: usize,
    pub epochs: usize,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    /// SGD momentum (Nesterov).
    pub momentum: f64,
    pub weight_decay: f64,
    pub warmup_epochs: f64,
    pub schedule: Schedule,
    pub min_lr_ratio: f64,
    pub step_epochs: usize,
    pub step_gamma: f64,
    pub label_smoothing: f64,
    /// Dropout before the classifier.
    pub dropout: f64,
    /// Stochastic depth of the trained blocks: the deepest block skips its residual branch for a
    /// sample with this probability, block `i` of 16 with `drop_connect · i / 16` (0: off).
    pub drop_connect: f64,
    /// Mixup strength α: each batch is blended with a shuffled copy of itself by one
    /// `λ ~ Beta(α, α)`, inputs and loss alike (0: off; 0.2‥0.4 is usual).
    pub mixup_alpha: f64,
    pub imbalance: Imbalance,
    /// Exponent on inverse class frequency for `weighted-loss` (1 = fully balanced, 0.5 = softer).
    pub class_weight_power: f64,
    /// Per-class cap for `balanced-subset` (0: the smallest class's count).
    pub subset_per_class: usize,
    /// Strength τ of the prior offset for `logit-adjusted` (1 targets balanced accuracy).
    pub logit_adjust_tau: f64,
    /// Exponent q of `balanced-sampler`: a class is drawn with probability ∝ (its count)^q (0:
    /// every class equally likely; 0.5: square-root sampling; 1: the natural frequencies). The
    /// loss then adds ln of that sampled prior to the logits, as `logit-adjusted` does, so the
    /// raw logits aim at the balanced posterior at every q.
    pub sampler_exponent: f64,
    /// Decay of the exponential moving average of the weights (0: off). When on, the average is
    /// what gets validated, kept as best/last and exported (see `train::ema`).
    pub ema_decay: f64,
    /// `partial`/`probe`: how many versions of each training image the frozen layers see and
    /// the cache keeps: the plain one and `cached_views − 1` augmented copies (random resized
    /// crop and colour jitter from `augment`). Each training step picks one per example.
    pub cached_views: usize,
    pub augment: Augment,
    /// Stop after this many epochs without a better validation balanced accuracy (0: never).
    pub patience: usize,
    pub seed: u64,
    /// Mixed precision: fp16 autocast with loss scaling on CUDA, bf16 autocast on a CPU with
    /// bf16 instructions, nothing elsewhere (see `train::precision`).
    pub amp: bool,
    /// Lay weights and batches out channels-last in memory (faster convolutions; same numbers).
    pub channels_last: bool,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            mode: Mode::Partial,
            frozen_blocks: 8,
            preprocess: PreprocessConfig::default(),
            batch: 32,
            epochs: 10,
            optimizer: OptimizerKind::Adamw,
            lr: 1e-3,
            momentum: 0.9,
            weight_decay: 1e-2,
            warmup_epochs: 0.5,
            schedule: Schedule::Cosine,
            min_lr_ratio: 0.01,
            step_epochs: 10,
            step_gamma: 0.1,
            label_smoothing: 0.1,
            dropout: 0.2,
            drop_connect: 0.0,
            mixup_alpha: 0.0,
            imbalance: Imbalance::WeightedLoss,
            class_weight_power: 0.5,
            subset_per_class: 0,
            logit_adjust_tau: 1.0,
            sampler_exponent: 0.0,
            ema_decay: 0.0,
            cached_views: 1,
            augment: Augment::default(),
            patience: 5,
            seed: 0,
            amp: true,
            channels_last: true,
        }
    }
}

impl Recipe {
    /// Reads a recipe TOML file; missing keys take their defaults, unknown keys are errors.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse = |source| RecipeError::Parse {
            path: path.to_owned(),
            source,
        };
        let table: toml::Table = toml::from_str(&text).map_err(parse)?;
        if let Some(key) = unknown_key(&table) {
            return Err(RecipeError::UnknownKey {
                path: path.to_owned(),
                key,
            });
        }
        let recipe: Recipe = table.try_into().map_err(parse)?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// The recipe as TOML (what `config.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a recipe always serializes")
    }

    /// Applies one `key=value` override; `key` may be dotted (`augment.hflip`), `value` is a TOML
    /// value (`3e-4`, `true`, `"adamw"`) or a bare word taken as a string (`adamw`).
    pub fn set(&mut self, assignment: &str) -> Result<(), RecipeError> {
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| RecipeError::SetSyntax(assignment.to_owned()))?;
        let invalid = |message: String| RecipeError::SetInvalid {
            assignment: assignment.to_owned(),
            message,
        };
        let value = parse_value(raw.trim());
        let mut doc = toml::Value::try_from(&*self).map_err(|e| invalid(e.to_string()))?;
        let mut slot = &mut doc;
        for part in key.trim().split('.') {
            slot = slot
                .as_table_mut()
                .and_then(|t| t.get_mut(part))
                .ok_or_else(|| invalid(format!("no recipe key `{}`", key.trim())))?;
        }
        *slot = value;
        let updated: Recipe = doc
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        updated
            .validate_values()
            .map_err(|e| invalid(e.to_string()))?;
        *self = updated;
        Ok(())
    }

    /// Checks what serde cannot: each value, then how they combine.
    pub fn validate(&self) -> Result<(), RecipeError> {
        self.validate_values()?;
        self.validate_combination()
    }

    /// Each value on its own (checked after every `--set`).
    fn validate_values(&self) -> Result<(), RecipeError> {
        let bad = |m: &str| Err(RecipeError::Invalid(m.to_owned()));
        let size = self.preprocess.size;
        if size < 32 || !size.is_multiple_of(32) {
            return bad("size must be a multiple of 32, at least 32");
        }
        if self.batch == 0 || self.epochs == 0 {
            return bad("batch and epochs must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr must be a positive number");
        }
        if self.frozen_blocks > 16 {
            return bad("frozen_blocks must be 0‥16 (EfficientNet-Lite0 has 16 blocks)");
        }
        if !(0.0..1.0).contains(&self.label_smoothing) || !(0.0..1.0).contains(&self.dropout) {
            return bad("label_smoothing and dropout must be in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.drop_connect) {
            return bad("drop_connect must be in [0, 1) (0 turns stochastic depth off)");
        }
        if !(self.mixup_alpha >= 0.0 && self.mixup_alpha.is_finite()) {
            return bad("mixup_alpha must be a number >= 0 (0 turns mixup off)");
        }
        if !(self.logit_adjust_tau >= 0.0 && self.logit_adjust_tau.is_finite()) {
            return bad("logit_adjust_tau must be a number >= 0");
        }
        if !(0.0..=1.0).contains(&self.sampler_exponent) {
            return bad("sampler_exponent must be in [0, 1] (0: every class equally likely)");
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return bad("ema_decay must be in [0, 1) (0 turns the weight average off)");
        }
        if self.cached_views == 0 {
            return bad("cached_views must be at least 1 (1: the plain images only)");
        }
        if !(self.augment.crop_min_scale > 0.0 && self.augment.crop_min_scale <= 1.0) {
            return bad("augment.crop_min_scale must be in (0, 1]");
        }
        if self.augment.crop_max_aspect < 1.0 {
            return bad("augment.crop_max_aspect must be at least 1");
        }
        if !(self.augment.crop_max_scale >= 1.0 && self.augment.crop_max_scale <= 4.0) {
            return bad("augment.crop_max_scale must be in [1, 4] (1: no zoom-out)");
        }
        if !(0.0..=180.0).contains(&self.augment.rotate_degrees) {
            return bad("augment.rotate_degrees must be in [0, 180]");
        }
        if !(0.0..1.0).contains(&self.augment.white_balance)
            || !(0.0..=1.0).contains(&self.augment.gamma)
        {
            return bad("augment.white_balance must be in [0, 1) and augment.gamma in [0, 1]");
        }
        Ok(())
    }

    /// Values that only make sense together (checked once all overrides are in, so their order
    /// does not matter).
    fn validate_combination(&self) -> Result<(), RecipeError> {
        let bad = |m: &str| Err(RecipeError::Invalid(m.to_owned()));
        if self.sampler_exponent > 0.0 && self.imbalance != Imbalance::BalancedSampler {
            return bad("sampler_exponent applies to imbalance = \"balanced-sampler\" only");
        }
        if self.cached_views > 1 {
            let a = &self.augment;
            if self.mode == Mode::Full {
                return bad(
                    "cached_views applies to partial and probe mode; full mode augments every step",
                );
            }
            if a.crop_min_scale >= 1.0
                && a.brightness == 0.0
                && a.contrast == 0.0
                && a.saturation == 0.0
            {
                return bad(
                    "cached_views > 1 needs augment.crop_min_scale < 1 or a colour jitter, \
                     or the copies equal the plain images",
                );
            }
        }
        Ok(())
    }
}

/// A TOML scalar/array if it parses as one, otherwise the raw text as a string.
fn parse_value(raw: &str) -> toml::Value {
    #[derive(Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    toml::from_str::<Wrapper>(&format!("v = {raw}"))
        .map(|w| w.v)
        .unwrap_or_else(|_| toml::Value::String(raw.to_owned()))
}

/// The first top-level key of `table` that no recipe has (nested tables deny their own).
fn unknown_key(table: &toml::Table) -> Option<String> {
    let known = toml::Table::try_from(Recipe::default()).expect("a recipe always serializes");
    table.keys().find(|k| !known.contains_key(*k)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_overrides_nested_and_typed_keys() {
        let mut r = Recipe::default();
        r.set("lr=3e-4").unwrap();
        r.set("augment.hflip=false").unwrap();
        r.set("mode=probe").unwrap();
        r.set("imbalance=balanced-sampler").unwrap();
        assert_eq!(r.lr, 3e-4);
        assert!(!r.augment.hflip);
        assert_eq!(r.mode, Mode::Probe);
        assert_eq!(r.imbalance, Imbalance::BalancedSampler);
    }

    #[test]
    fn set_rejects_unknown_keys_bad_values_and_syntax() {
        let mut r = Recipe::default();
        assert!(r
            .set("learning_rate=1")
            .unwrap_err()
            .to_string()
            .contains("learning_rate"));
        assert!(r.set("mode=sideways").is_err());
        assert!(r.set("size=100").is_err());
        assert!(r.set("lr").is_err());
        assert_eq!(r, Recipe::default());
    }

    #[test]
    fn combined_values_are_checked_once_all_overrides_are_in() {
        let mut r = Recipe::default();
        for set in [
            "cached_views=3",
            "augment.crop_min_scale=1",
            "augment.brightness=0",
            "augment.contrast=0",
            "augment.saturation=0",
        ] {
            r.set(set).unwrap();
        }
        // Copies without any crop or jitter would equal the plain images.
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("cached_views"), "{err}");
        r.set("augment.crop_min_scale=0.6").unwrap();
        r.validate().unwrap();
        r.set("mode=full").unwrap();
        assert!(r.validate().unwrap_err().to_string().contains("full mode"));
        assert!(r.set("cached_views=0").is_err());
        assert!(r.set("ema_decay=1").is_err());
        assert!(r.set("drop_connect=1").is_err());
        assert!(r.set("mixup_alpha=-0.2").is_err());
        r.set("mixup_alpha=0.2").unwrap();
        r.set("drop_connect=0.2").unwrap();
        // The sampler's exponent needs the sampler (the default strategy is weighted-loss).
        assert!(r.set("sampler_exponent=1.5").is_err());
        r.set("sampler_exponent=0.5").unwrap();
        let err = r.validate().unwrap_err().to_string();
        assert!(err.contains("sampler_exponent"), "{err}");
        r.set("imbalance=balanced-sampler").unwrap();
        r.set("cached_views=1").unwrap();
        r.validate().unwrap();
    }

    #[test]
    fn files_keep_size_flat_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.toml");
        std::fs::write(&p, "size = 256\ncolor_constancy = true\nlr = 3e-4\n").unwrap();
        let r = Recipe::load(&p).unwrap();
        assert_eq!(
            r.preprocess,
            PreprocessConfig {
                size: 256,
                color_constancy: true
            }
        );
        assert!(r.to_toml().lines().any(|l| l == "size = 256"));
        std::fs::write(&p, "size = 256\nsise = 224\n").unwrap();
        let e = Recipe::load(&p).unwrap_err().to_string();
        assert!(e.contains("sise") && e.contains("r.toml"), "{e}");
        std::fs::write(&p, "[augment]\nhflipp = true\n").unwrap();
        assert!(Recipe::load(&p).is_err());
    }

    #[test]
    fn toml_round_trips() {
        let mut r = Recipe::default();
        r.set("frozen_blocks=5").unwrap();
        let back: Recipe = toml::from_str(&r.to_toml()).unwrap();
        assert_eq!(back, r);
    }
}
