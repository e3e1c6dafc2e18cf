//! Training augmentation as batched tensor operations on the training device.
//!
//! Images arrive as f32 `[B, 3, S, S]` in 0‥255 (before normalization). Every sample draws its
//! own transform from libtorch's generator, which the trainer seeds per epoch, so a resumed run
//! repeats the same draws.
//!
//! In `partial` mode the inputs of the trainable part are cached feature maps, on which only the
//! dihedral group (flips and 90° rotations) can be applied. That is an approximation: a
//! convolution stack is not exactly equivariant to flips of its input (its kernels are not
//! symmetric), so a flipped feature map is "a plausible feature map of a flipped lesion", not
//! the exact one. Crops and colour jitter need the pixels and are skipped there.

use super::recipe::Augment;
use tch::{Kind, Tensor};

/// A whole-batch geometric transform of `[B, C, H, W]`.
type Transform = fn(&Tensor) -> Tensor;

/// Per-sample random flips and transposes of `[B, C, H, H]` (images or square feature maps).
pub fn dihedral(x: &Tensor, aug: &Augment) -> Tensor {
    let mut x = x.shallow_clone();
    let ops: [(bool, Transform); 3] = [
        (aug.hflip, |t| t.flip([3])),
        (aug.vflip, |t| t.flip([2])),
        (aug.rot90, |t| t.transpose(2, 3)),
    ];
    for (enabled, op) in ops {
        if enabled {
            let pick = coin(&x);
            x = op(&x).where_self(&pick, &x);
        }
    }
    x
}

/// A `[B, 1, 1, 1]` boolean mask, true for about half of the samples.
fn coin(x: &Tensor) -> Tensor {
    Tensor::rand([x.size()[0], 1, 1, 1], (Kind::Float, x.device())).lt(0.5)
}

/// Uniform `[B]` draws in `[lo, hi)`.
fn uniform(n: i64, lo: f64, hi: f64, like: &Tensor) -> Tensor {
    Tensor::rand([n], (Kind::Float, like.device())) * (hi - lo) + lo
}

/// Random resized crop: each sample keeps a random window of `[crop_min_scale, 1]` of the area
/// with aspect ratio in `[1/crop_max_aspect, crop_max_aspect]`, resampled (bilinear) to the full
/// size.
pub fn random_resized_crop(x: &Tensor, aug: &Augment) -> Tensor {
    if aug.crop_min_scale >= 1.0 {
        return x.shallow_clone();
    }
    let size = x.size();
    let n = size[0];
    let area = uniform(n, aug.crop_min_scale, 1.0, x);
    let log_r = aug.crop_max_aspect.ln();
    let ratio = uniform(n, -log_r, log_r, x).exp();
    // Window sides as fractions of the image side (affine_grid's coordinates span [-1, 1]).
    let w = (&area * &ratio).sqrt().clamp_max(1.0);
    let h = (&area / &ratio).sqrt().clamp_max(1.0);
    let cx = (uniform(n, -1.0, 1.0, x)) * (1.0 - &w);
    let cy = (uniform(n, -1.0, 1.0, x)) * (1.0 - &h);
    let zeros = w.zeros_like();
    let theta = Tensor::stack(&[&w, &zeros, &cx, &zeros, &h, &cy], 1).reshape([n, 2, 3]);
    let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
    // interpolation 0 = bilinear, padding 1 = border (the window never leaves the image anyway).
    x.grid_sampler(&grid, 0, 1, false)
}

/// Per-sample brightness, contrast and saturation jitter on 0‥255 RGB.
pub fn color_jitter(x: &Tensor, aug: &Augment) -> Tensor {
    let n = x.size()[0];
    let factor = |s: f64| uniform(n, 1.0 - s, 1.0 + s, x).reshape([n, 1, 1, 1]);
    let gray = |t: &Tensor| {
        let w = Tensor::from_slice(&[0.299f32, 0.587, 0.114])
            .to(t.device())
            .reshape([1, 3, 1, 1]);
        (t * w).sum_dim_intlist(1, true, Kind::Float)
    };
    let mut x = x.shallow_clone();
    if aug.brightness > 0.0 {
        x = &x * factor(aug.brightness);
    }
    if aug.contrast > 0.0 {
        let mean = gray(&x).mean_dim(&[1i64, 2, 3][..], true, Kind::Float);
        x = (&x - &mean) * factor(aug.contrast) + &mean;
    }
    if aug.saturation > 0.0 {
        let g = gray(&x);
        x = (&x - &g) * factor(aug.saturation) + &g;
    }
    x.clamp(0.0, 255.0)
}

/// The whole image pipeline of `full` mode: crop, dihedral, colour.
pub fn images(x: &Tensor, aug: &Augment) -> Tensor {
    let x = random_resized_crop(x, aug);
    let x = dihedral(&x, aug);
    color_jitter(&x, aug)
}

/// Mixup: each example of a batch is blended with another of the same batch, `λ·x + (1 − λ)·x'`,
/// and the loss is blended the same way. One `λ ~ Beta(α, α)` per batch. It applies to whatever
/// the trainable part takes in (images, cached feature maps or pooled features).
pub struct Mixup {
    lambda: f64,
    partner: Tensor,
}

impl Mixup {
    /// Draws `λ` and the partner of each of `n` examples from libtorch's generator.
    pub fn draw(alpha: f64, n: i64, device: tch::Device) -> Mixup {
        let concentration = Tensor::from_slice(&[alpha, alpha]).to_kind(Kind::Float);
        let lambda = f64::try_from(concentration.internal_sample_dirichlet().get(0)).unwrap_or(1.0);
        Mixup {
            lambda,
            partner: Tensor::randperm(n, (Kind::Int64, device)),
        }
    }

    /// The blended batch.
    pub fn inputs(&self, x: &Tensor) -> Tensor {
        x * self.lambda + x.index_select(0, &self.partner) * (1.0 - self.lambda)
    }

    /// The blended loss, `loss(target)` being the plain loss against a target vector.
    pub fn loss(&self, target: &Tensor, loss: impl Fn(&Tensor) -> Tensor) -> Tensor {
        loss(target) * self.lambda
            + loss(&target.index_select(0, &self.partner)) * (1.0 - self.lambda)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Tensor {
        Tensor::arange(2 * 3 * 8 * 8, (Kind::Float, tch::Device::Cpu)).reshape([2, 3, 8, 8]) / 2.0
    }

    #[test]
    fn dihedral_keeps_the_pixel_multiset_and_shape() {
        tch::manual_seed(1);
        let x = ramp();
        let y = dihedral(&x, &Augment::default());
        assert_eq!(y.size(), x.size());
        let sorted = |t: &Tensor| t.flatten(1, -1).sort(1, false).0;
        assert!(sorted(&x).equal(&sorted(&y)));
        let off = Augment {
            hflip: false,
            vflip: false,
            rot90: false,
            ..Augment::default()
        };
        assert!(dihedral(&x, &off).equal(&x));
    }

    #[test]
    fn crop_and_jitter_stay_in_range() {
        tch::manual_seed(2);
        let x = ramp();
        let y = images(&x, &Augment::default());
        assert_eq!(y.size(), x.size());
        let lo = f64::try_from(y.min()).unwrap();
        let hi = f64::try_from(y.max()).unwrap();
        assert!((0.0..=255.0).contains(&lo) && hi <= 255.0);
        let no_crop = Augment {
            crop_min_scale: 1.0,
            ..Augment::default()
        };
        assert!(random_resized_crop(&x, &no_crop).equal(&x));
    }

    #[test]
    fn mixup_blends_inputs_and_losses_with_one_lambda() {
        tch::manual_seed(3);
        let x = ramp();
        let m = Mixup::draw(0.4, 2, tch::Device::Cpu);
        assert!((0.0..=1.0).contains(&m.lambda));
        let y = m.inputs(&x);
        let other = x.index_select(0, &m.partner);
        let expected = &x * m.lambda + &other * (1.0 - m.lambda);
        assert!(y.allclose(&expected, 1e-5, 1e-4, false));
        // A blend of a batch with itself stays inside its per-pixel range.
        assert!(f64::try_from((&y - x.maximum(&other)).max()).unwrap() <= 1e-4);
        // With a loss that is the target itself, the blend is λ·t + (1 − λ)·t'.
        let t = Tensor::from_slice(&[1.0f32, 5.0]);
        let l = m.loss(&t, |t| t.shallow_clone());
        let want = &t * m.lambda + t.index_select(0, &m.partner) * (1.0 - m.lambda);
        assert!(l.allclose(&want, 1e-6, 1e-6, false));
    }
}
