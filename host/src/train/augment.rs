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

use super::dataset::standardize;
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

/// Random resized crop, zoom-out and rotation in one resampling: each sample takes a window of
/// `[crop_min_scale, crop_max_scale]` of the image's area, aspect ratio in
/// `[1/crop_max_aspect, crop_max_aspect]`, turned by up to `rotate_degrees`, resampled
/// (bilinear) to the full size. Where the window leaves the image (zoom-out above 1, rotated
/// corners) the pixels take the mean colour of the image's own outer ring: skin, not black.
pub fn random_resized_crop(x: &Tensor, aug: &Augment) -> Tensor {
    let zooms_out = aug.crop_max_scale > 1.0;
    if aug.crop_min_scale >= 1.0 && !zooms_out && aug.rotate_degrees == 0.0 {
        return x.shallow_clone();
    }
    let size = x.size();
    let n = size[0];
    let area = uniform(n, aug.crop_min_scale, aug.crop_max_scale.max(1.0), x);
    let log_r = aug.crop_max_aspect.ln();
    let ratio = uniform(n, -log_r, log_r, x).exp();
    // Window sides as fractions of the image side (affine_grid's coordinates span [-1, 1]).
    let side_cap = aug.crop_max_scale.max(1.0).sqrt();
    let w = (&area * &ratio).sqrt().clamp_max(side_cap);
    let h = (&area / &ratio).sqrt().clamp_max(side_cap);
    let cx = (uniform(n, -1.0, 1.0, x)) * (1.0 - &w);
    let cy = (uniform(n, -1.0, 1.0, x)) * (1.0 - &h);
    let turn = aug.rotate_degrees.to_radians();
    let angle = uniform(n, -turn, turn, x);
    let (cos, sin) = (angle.cos(), angle.sin());
    let theta = Tensor::stack(&[&w * &cos, -(&h * &sin), cx, &w * &sin, &h * &cos, cy], 1)
        .reshape([n, 2, 3]);
    let grid = Tensor::affine_grid_generator(&theta, size.as_slice(), false);
    // interpolation 0 = bilinear, padding 0 = zeros: outside the image is 0 in both the image and
    // the coverage mask, and the mask says where to put the border colour.
    let sampled = x.grid_sampler(&grid, 0, 0, false);
    let covered = x
        .ones_like()
        .narrow(1, 0, 1)
        .grid_sampler(&grid, 0, 0, false);
    sampled + (1.0 - covered) * border_colour(x)
}

/// Mean colour `[B, C, 1, 1]` of each image's outer ring (1/16 of the side, at least a pixel).
fn border_colour(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    let r = (h.min(w) / 16).max(1);
    let mean = |t: Tensor| t.mean_dim(&[2i64, 3][..], true, tch::Kind::Float);
    let rows = mean(Tensor::cat(&[x.narrow(2, 0, r), x.narrow(2, h - r, r)], 2));
    let cols = mean(Tensor::cat(&[x.narrow(3, 0, r), x.narrow(3, w - r, r)], 3));
    (rows + cols) / 2.0
}

/// Per-sample photometric changes on 0‥255 RGB, modelling what differs between clinics and
/// dermatoscopes: white balance (a gain per channel), brightness, gamma, contrast, saturation.
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
    if aug.white_balance > 0.0 {
        let s = aug.white_balance;
        let gains = Tensor::rand([n, 3, 1, 1], (Kind::Float, x.device())) * (2.0 * s) + (1.0 - s);
        x = &x * gains;
    }
    if aug.brightness > 0.0 {
        x = &x * factor(aug.brightness);
    }
    if aug.gamma > 0.0 {
        let gamma = uniform(n, -aug.gamma, aug.gamma, &x)
            .exp()
            .reshape([n, 1, 1, 1]);
        x = (x.clamp(0.0, 255.0) / 255.0).pow(&gamma) * 255.0;
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

/// Cached u8 NHWC images through [`images`], at the network's input scale (f32 NCHW): a training
/// batch before mixup.
pub fn standardized(raw: &Tensor, aug: &Augment) -> Tensor {
    standardize(&images(
        &raw.permute([0, 3, 1, 2]).to_kind(Kind::Float),
        aug,
    ))
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
    fn zoom_out_fills_the_margin_with_the_border_colour() {
        tch::manual_seed(5);
        // A skin-coloured 32×32 frame with a dark 16×16 lesion in the middle.
        let skin = Tensor::from_slice(&[200.0f32, 150.0, 130.0]).reshape([1, 3, 1, 1]);
        let x = skin.expand([4, 3, 32, 32], false).copy();
        let _ = x.narrow(2, 8, 16).narrow(3, 8, 16).fill_(20.0);
        let zoom = Augment {
            crop_min_scale: 2.0,
            crop_max_scale: 2.0,
            crop_max_aspect: 1.0,
            rotate_degrees: 30.0,
            ..Augment::default()
        };
        let y = random_resized_crop(&x, &zoom);
        assert_eq!(y.size(), x.size());
        // Corners are outside the image at 2× the area: skin colour, not black.
        let corner =
            y.narrow(2, 0, 2)
                .narrow(3, 0, 2)
                .mean_dim(&[0i64, 2, 3][..], false, Kind::Float);
        let want = skin.reshape([3]);
        assert!(corner.allclose(&want, 0.0, 1.0, false), "{corner:?}");
        // The lesion still covers the centre, and now a smaller share of the frame.
        let dark =
            |t: &Tensor| f64::try_from(t.lt(100.0).to_kind(Kind::Float).mean(Kind::Float)).unwrap();
        assert!(
            dark(&y) < dark(&x) * 0.75 && dark(&y) > dark(&x) * 0.25,
            "{} vs {}",
            dark(&y),
            dark(&x)
        );
    }

    #[test]
    fn white_balance_and_gamma_change_colour_within_range() {
        tch::manual_seed(6);
        let x = ramp() + 60.0;
        let cast = Augment {
            white_balance: 0.3,
            gamma: 0.5,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            ..Augment::default()
        };
        let y = color_jitter(&x, &cast);
        assert!(f64::try_from(y.min()).unwrap() >= 0.0 && f64::try_from(y.max()).unwrap() <= 255.0);
        // Each channel of each image got its own gain: channel ratios change.
        let ratio =
            |t: &Tensor| t.narrow(1, 0, 1).sum(Kind::Float) / t.narrow(1, 2, 1).sum(Kind::Float);
        let change = f64::try_from((ratio(&y) - ratio(&x)).abs()).unwrap();
        assert!(change > 1e-3, "channel balance unchanged");
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
