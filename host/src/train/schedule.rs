//! The learning rate at each optimizer step: linear warmup, then cosine, step or constant.

use super::recipe::{Recipe, Schedule};

/// Learning rate for update `step` (0-based) of a run with `steps_per_epoch` updates per epoch.
pub fn lr_at(recipe: &Recipe, step: usize, steps_per_epoch: usize) -> f64 {
    let steps_per_epoch = steps_per_epoch.max(1) as f64;
    let total = recipe.epochs as f64 * steps_per_epoch;
    let warmup = (recipe.warmup_epochs * steps_per_epoch).min(total);
    let s = step as f64;
    if s < warmup {
        return recipe.lr * (s + 1.0) / warmup;
    }
    match recipe.schedule {
        Schedule::Constant => recipe.lr,
        Schedule::Step => {
            let epoch = (s / steps_per_epoch).floor() as usize;
            let drops = epoch / recipe.step_epochs.max(1);
            recipe.lr * recipe.step_gamma.powi(drops as i32)
        }
        Schedule::Cosine => {
            let progress = ((s - warmup) / (total - warmup).max(1.0)).clamp(0.0, 1.0);
            let floor = recipe.lr * recipe.min_lr_ratio;
            floor + (recipe.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let r = Recipe {
            epochs: 10,
            warmup_epochs: 1.0,
            lr: 1.0,
            min_lr_ratio: 0.01,
            ..Recipe::default()
        };
        assert!((lr_at(&r, 0, 100) - 0.01).abs() < 1e-9);
        assert!((lr_at(&r, 99, 100) - 1.0).abs() < 1e-9);
        assert!(lr_at(&r, 500, 100) < lr_at(&r, 200, 100));
        assert!((lr_at(&r, 999, 100) - 0.01).abs() < 1e-3);
    }

    #[test]
    fn step_schedule_drops_by_gamma() {
        let r = Recipe {
            schedule: Schedule::Step,
            warmup_epochs: 0.0,
            lr: 1.0,
            step_epochs: 2,
            step_gamma: 0.1,
            ..Recipe::default()
        };
        assert_eq!(lr_at(&r, 10, 10), 1.0);
        assert!((lr_at(&r, 20, 10) - 0.1).abs() < 1e-12);
    }
}
