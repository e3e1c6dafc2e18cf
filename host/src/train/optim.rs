//! AdamW and SGD written over tensors, so that their state (moments, momentum buffers) is plain
//! named tensors that a checkpoint saves and `--resume` restores exactly. tch's own optimizers
//! keep their state inside libtorch where it cannot be saved.

use super::recipe::OptimizerKind;
use std::collections::HashMap;
use tch::{Kind, Tensor};

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

struct Param {
    name: String,
    value: Tensor,
    /// Weight decay applies to convolution and linear weights, not to BatchNorm or biases.
    decay: bool,
    /// Adam first moment, or the SGD momentum buffer.
    m: Tensor,
    /// Adam second moment (unused by SGD).
    v: Tensor,
}

/// An optimizer over a fixed list of named trainable tensors.
pub struct Optimizer {
    kind: OptimizerKind,
    params: Vec<Param>,
    weight_decay: f64,
    momentum: f64,
    /// Number of updates done (Adam's bias correction needs it).
    pub updates: i64,
}

impl Optimizer {
    pub fn new(
        kind: OptimizerKind,
        params: Vec<(String, Tensor)>,
        weight_decay: f64,
        momentum: f64,
    ) -> Optimizer {
        let params = params
            .into_iter()
            .map(|(name, value)| {
                let decay = value.dim() > 1;
                let m = value.zeros_like().detach();
                let v = match kind {
                    OptimizerKind::Adamw => value.zeros_like().detach(),
                    OptimizerKind::Sgd => Tensor::new(),
                };
                Param {
                    name,
                    value,
                    decay,
                    m,
                    v,
                }
            })
            .collect();
        Optimizer {
            kind,
            params,
            weight_decay,
            momentum,
            updates: 0,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.value.zero_grad();
        }
    }

    /// Multiplies every gradient by `factor` (loss-scale removal) and says whether all of them
    /// are finite. The per-gradient checks stay on the device and are read back once: on a GPU
    /// each read is a synchronisation that stalls the queue of kernels.
    pub fn unscale_grads(&mut self, factor: f64) -> bool {
        tch::no_grad(|| {
            let mut checks = Vec::with_capacity(self.params.len());
            for p in &mut self.params {
                let mut g = p.value.grad();
                if g.defined() {
                    let _ = g.g_mul_scalar_(factor);
                    checks.push(g.isfinite().all());
                }
            }
            checks.is_empty() || bool::try_from(Tensor::stack(&checks, 0).all()).unwrap_or(false)
        })
    }

    /// One update with learning rate `lr` from the current gradients.
    pub fn step(&mut self, lr: f64) {
        self.updates += 1;
        let t = self.updates as f64;
        let (kind, wd, momentum) = (self.kind, self.weight_decay, self.momentum);
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.value.grad();
                if !g.defined() {
                    continue;
                }
                match kind {
                    OptimizerKind::Adamw => {
                        if p.decay && wd > 0.0 {
                            let _ = p.value.g_mul_scalar_(1.0 - lr * wd);
                        }
                        // m ← m + (1 − β1)(g − m), v ← v + (1 − β2)(g² − v), in place.
                        let _ = p.m.lerp_(&g, 1.0 - BETA1);
                        let _ = p.v.lerp_(&g.square(), 1.0 - BETA2);
                        // At lr = 0 (a cosine floor of 0) the weights stay, and the scale below
                        // would divide by zero.
                        if lr <= 0.0 {
                            continue;
                        }
                        // value ← value − lr/bc1 · m / (√(v/bc2) + ε), as one addcdiv_ (which
                        // has no factor) over a denominator scaled by −bc1/lr: two temporaries
                        // and seven passes in all, where the textbook expression takes eight
                        // temporaries (bench/results.md, "The optimizer update").
                        let bc1 = 1.0 - BETA1.powf(t);
                        let bc2 = 1.0 - BETA2.powf(t);
                        let scale = -bc1 / lr;
                        let mut denom = p.v.sqrt();
                        let _ = denom.g_mul_scalar_(scale / bc2.sqrt());
                        let _ = denom.g_add_scalar_(scale * ADAM_EPS);
                        let _ = p.value.addcdiv_(&p.m, &denom);
                    }
                    OptimizerKind::Sgd => {
                        let g = if p.decay && wd > 0.0 {
                            &g + &p.value * wd
                        } else {
                            g
                        };
                        let _ = p.m.g_mul_scalar_(momentum);
                        p.m += &g;
                        // Nesterov: step along the gradient plus the look-ahead momentum.
                        p.value -= (g + &p.m * momentum) * lr;
                    }
                }
            }
        });
    }

    /// The optimizer state as named tensors (`m.<param>`, `v.<param>`), for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for p in &self.params {
            out.push((format!("m.{}", p.name), p.m.to_kind(Kind::Float)));
            if p.v.defined() {
                out.push((format!("v.{}", p.name), p.v.to_kind(Kind::Float)));
            }
        }
        out
    }

    /// Restores what [`Optimizer::state`] saved; a missing or misshapen tensor is an error
    /// naming it.
    pub fn load_state(
        &mut self,
        state: &HashMap<String, Tensor>,
        updates: i64,
    ) -> Result<(), String> {
        tch::no_grad(|| {
            for p in &mut self.params {
                let mut slots = vec![("m", &mut p.m)];
                if p.v.defined() {
                    slots.push(("v", &mut p.v));
                }
                for (prefix, slot) in slots {
                    let key = format!("{prefix}.{}", p.name);
                    let src = state
                        .get(&key)
                        .ok_or_else(|| format!("`{key}` is missing"))?;
                    if src.size() != slot.size() {
                        return Err(format!("`{key}` has shape {:?}", src.size()));
                    }
                    slot.copy_(src);
                }
            }
            Ok(())
        })?;
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimize(kind: OptimizerKind, lr: f64) -> f64 {
        // f(w) = |w − 3|² from w = 0.
        let w = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let mut opt = Optimizer::new(kind, vec![("w".into(), w.shallow_clone())], 0.0, 0.9);
        for _ in 0..300 {
            opt.zero_grad();
            let loss = (&w - 3.0).square().sum(Kind::Float);
            loss.backward();
            opt.step(lr);
        }
        f64::try_from((&w - 3.0).abs().max()).unwrap()
    }

    #[test]
    fn both_optimizers_minimize_a_quadratic() {
        assert!(minimize(OptimizerKind::Adamw, 0.05) < 1e-2);
        assert!(minimize(OptimizerKind::Sgd, 0.01) < 1e-2);
    }

    /// The in-place update against the textbook AdamW (decoupled decay, bias-corrected moments),
    /// written out step by step on the same random gradients.
    #[test]
    fn adamw_matches_the_textbook_update() {
        tch::manual_seed(7);
        let opts = (Kind::Double, tch::Device::Cpu);
        let w = Tensor::randn([5, 3], opts).set_requires_grad(true);
        let (mut value, mut m, mut v) = (w.detach().copy(), w.zeros_like(), w.zeros_like());
        let (wd, lrs) = (0.01, [1e-3, 5e-4, 0.0, 2e-4]);
        let mut opt = Optimizer::new(
            OptimizerKind::Adamw,
            vec![("w".into(), w.shallow_clone())],
            wd,
            0.9,
        );
        for (i, lr) in lrs.into_iter().enumerate() {
            opt.zero_grad();
            let g = Tensor::randn([5, 3], opts);
            (&w * &g).sum(Kind::Double).backward();
            opt.step(lr);
            let t = (i + 1) as f64;
            value *= 1.0 - lr * wd;
            m = &m * BETA1 + &g * (1.0 - BETA1);
            v = &v * BETA2 + g.square() * (1.0 - BETA2);
            let denom = (&v / (1.0 - BETA2.powf(t))).sqrt() + ADAM_EPS;
            value -= (&m / denom) * (lr / (1.0 - BETA1.powf(t)));
            let gap = f64::try_from((&w.detach() - &value).abs().max()).unwrap();
            assert!(gap < 1e-12, "step {}: off by {gap}", i + 1);
        }
    }

    /// Loss-scale removal divides every gradient and reports an overflow in any one of them.
    #[test]
    fn unscaling_scales_every_gradient_and_flags_any_overflow() {
        let opts = (Kind::Float, tch::Device::Cpu);
        let a = Tensor::ones([3], opts).set_requires_grad(true);
        let b = Tensor::ones([2], opts).set_requires_grad(true);
        let params = vec![
            ("a".into(), a.shallow_clone()),
            ("b".into(), b.shallow_clone()),
        ];
        let mut opt = Optimizer::new(OptimizerKind::Adamw, params, 0.0, 0.9);
        ((&a * 8.0).sum(Kind::Float) + (&b * 4.0).sum(Kind::Float)).backward();
        assert!(opt.unscale_grads(0.5));
        assert_eq!(Vec::<f32>::try_from(a.grad()).unwrap(), [4.0; 3]);
        assert_eq!(Vec::<f32>::try_from(b.grad()).unwrap(), [2.0; 2]);
        opt.zero_grad();
        ((&a * 8.0).sum(Kind::Float) + (&b * f64::INFINITY).sum(Kind::Float)).backward();
        assert!(!opt.unscale_grads(0.5), "b's gradient overflowed");
    }

    #[test]
    fn state_round_trips() {
        let w = Tensor::ones([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let mut a = Optimizer::new(
            OptimizerKind::Adamw,
            vec![("w".into(), w.shallow_clone())],
            0.0,
            0.9,
        );
        (&w * 2.0).sum(Kind::Float).backward();
        a.step(0.1);
        let saved: HashMap<_, _> = a.state().into_iter().collect();
        let mut b = Optimizer::new(
            OptimizerKind::Adamw,
            vec![("w".into(), w.shallow_clone())],
            0.0,
            0.9,
        );
        b.load_state(&saved, a.updates).unwrap();
        assert!(b.state()[1].1.allclose(&a.state()[1].1, 0.0, 0.0, false));
        assert!(b
            .load_state(&HashMap::new(), 1)
            .unwrap_err()
            .contains("m.w"));
    }
}
