//! Exponential moving average (EMA) of the weights, the model that is evaluated and kept when
//! the recipe sets `ema_decay`.
//!
//! After every optimizer step the average moves towards the trained weights:
//! `avg ← d·avg + (1 − d)·w`, with `d = min(ema_decay, (1 + step) / (10 + step))` so the first
//! steps do not stay anchored to the ImageNet start. BatchNorm running statistics are averaged
//! the same way. At the end of an epoch [`Ema::swap`] exchanges the two in place: the network
//! then holds the average (validated and checkpointed as the run's weights) and the average's
//! slots hold the trained weights, which go into the optimizer-state file under `trained.` so
//! that `--resume` continues training from them.

use std::collections::HashMap;
use tch::nn::VarStore;
use tch::Tensor;

const TRAINED: &str = "trained.";

pub struct Ema {
    decay: f64,
    /// (name, variable of the network, its average).
    slots: Vec<(String, Tensor, Tensor)>,
}

impl Ema {
    /// An average of the variables that `changes` names (the frozen ones need none), starting
    /// at their current values; `None` when `decay` is 0.
    pub fn new(vs: &VarStore, decay: f64, changes: impl Fn(&str) -> bool) -> Option<Ema> {
        if decay <= 0.0 {
            return None;
        }
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = tch::no_grad(|| {
            vars.into_iter()
                .filter(|(name, t)| t.is_floating_point() && changes(name))
                .map(|(name, var)| {
                    let avg = var.detach().copy();
                    (name, var, avg)
                })
                .collect()
        });
        Some(Ema { decay, slots })
    }

    /// The decay used after optimizer update number `step` (1-based).
    pub fn decay_at(&self, step: usize) -> f64 {
        self.decay.min((1.0 + step as f64) / (10.0 + step as f64))
    }

    /// Moves the average towards the network's weights after update `step`.
    pub fn update(&mut self, step: usize) {
        let d = self.decay_at(step);
        tch::no_grad(|| {
            for (_, var, avg) in &mut self.slots {
                let _ = avg.lerp_(var, 1.0 - d);
            }
        });
    }

    /// Exchanges the network's weights and the average, in place.
    pub fn swap(&mut self) {
        tch::no_grad(|| {
            for (_, var, avg) in &mut self.slots {
                let held = var.detach().copy();
                var.copy_(avg);
                avg.copy_(&held);
            }
        });
    }

    /// The trained weights, for the optimizer-state file; call while [`Ema::swap`] has put the
    /// average into the network (the average itself is saved as the run's weights).
    pub fn trained_state(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .map(|(name, _, avg)| (format!("{TRAINED}{name}"), avg.shallow_clone()))
            .collect()
    }

    /// Resumes from a checkpoint: the network holds the saved average; `state` has the trained
    /// weights. Afterwards the network holds the trained weights and the average is the saved one.
    pub fn resume(&mut self, state: &HashMap<String, Tensor>) -> Result<(), String> {
        tch::no_grad(|| {
            for (name, var, avg) in &mut self.slots {
                let key = format!("{TRAINED}{name}");
                let saved = state
                    .get(&key)
                    .ok_or_else(|| format!("the optimizer state has no {key}"))?;
                if saved.size() != var.size() {
                    return Err(format!(
                        "{key} has shape {:?}, the network {:?}",
                        saved.size(),
                        var.size()
                    ));
                }
                avg.copy_(var);
                var.copy_(saved);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn store(value: f32) -> (VarStore, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let w = vs
            .root()
            .var("w", &[3], tch::nn::Init::Const(f64::from(value)));
        (vs, w)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.to_kind(Kind::Float)).unwrap()
    }

    #[test]
    fn zero_decay_means_no_average() {
        let (vs, _) = store(1.0);
        assert!(Ema::new(&vs, 0.0, |_| true).is_none());
    }

    #[test]
    fn the_average_follows_the_weights_with_the_warmed_up_decay() {
        let (vs, mut w) = store(0.0);
        let mut ema = Ema::new(&vs, 0.99, |_| true).unwrap();
        // Step 1: d = min(0.99, 2/11).
        assert!((ema.decay_at(1) - 2.0 / 11.0).abs() < 1e-12);
        assert!((ema.decay_at(10_000) - 0.99).abs() < 1e-12);
        tch::no_grad(|| {
            let _ = w.fill_(11.0);
        });
        ema.update(1);
        ema.swap();
        // The network now holds the average, 2/11·0 + 9/11·11 = 9.
        for v in values(&w) {
            assert!((v - 9.0).abs() < 1e-5, "{v}");
        }
        // And the average's slot the trained weights.
        let state: HashMap<String, Tensor> = ema.trained_state().into_iter().collect();
        assert_eq!(values(&state["trained.w"]), vec![11.0; 3]);
        ema.swap();
        assert_eq!(values(&w), vec![11.0; 3]);
    }

    #[test]
    fn resume_puts_the_trained_weights_back_and_keeps_the_saved_average() {
        let (vs, w) = store(9.0); // the checkpoint: the average
        let mut ema = Ema::new(&vs, 0.99, |_| true).unwrap();
        let state = HashMap::from([("trained.w".to_string(), Tensor::from_slice(&[11.0f32; 3]))]);
        ema.resume(&state).unwrap();
        assert_eq!(values(&w), vec![11.0; 3]);
        ema.swap();
        assert_eq!(values(&w), vec![9.0; 3]);

        let missing = ema.resume(&HashMap::new()).unwrap_err();
        assert!(missing.contains("trained.w"), "{missing}");
    }
}
