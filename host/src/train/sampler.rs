//! The order of training examples in each epoch, per class-imbalance strategy.

use super::recipe::{Imbalance, Recipe};
use dermo_model::NUM_CLASSES;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Example indices for one epoch under `recipe`'s imbalance strategy. Deterministic in
/// (`recipe.seed`, `epoch`), so a resumed run sees the same order.
pub fn epoch_order(labels: &[usize], recipe: &Recipe, epoch: usize) -> Vec<usize> {
    let seed = recipe.seed;
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
    let by_class = by_class(labels);
    let mut order: Vec<usize> = match recipe.imbalance {
        Imbalance::None | Imbalance::WeightedLoss | Imbalance::LogitAdjusted => {
            (0..labels.len()).collect()
        }
        Imbalance::BalancedSampler => {
            let q = recipe.sampler_exponent;
            let present: Vec<&Vec<usize>> = by_class.iter().filter(|c| !c.is_empty()).collect();
            // Class weights count^q, cumulated, for q > 0.
            let cumulative: Vec<f64> = present
                .iter()
                .scan(0.0, |total, class| {
                    *total += (class.len() as f64).powf(q);
                    Some(*total)
                })
                .collect();
            let total = cumulative.last().copied().unwrap_or(0.0);
            (0..labels.len())
                .map(|_| {
                    // q = 0 draws the class index itself, as runs from before the exponent did,
                    // so their orders (and a resumed run's) stay the same draw for draw.
                    let class = if q > 0.0 {
                        let u = rng.random_range(0.0..total);
                        present[cumulative.partition_point(|&edge| edge <= u)]
                    } else {
                        present[rng.random_range(0..present.len())]
                    };
                    class[rng.random_range(0..class.len())]
                })
                .collect()
        }
        Imbalance::BalancedSubset => {
            let cap = subset_cap(labels, recipe.subset_per_class);
            let mut out = Vec::new();
            for class in &by_class {
                let mut c = class.clone();
                c.shuffle(&mut rng);
                out.extend(c.into_iter().take(cap));
            }
            out
        }
    };
    order.shuffle(&mut rng);
    order
}

/// Examples per class taken by `balanced-subset`: the cap, or the smallest present class.
pub fn subset_cap(labels: &[usize], subset_per_class: usize) -> usize {
    if subset_per_class > 0 {
        return subset_per_class;
    }
    by_class(labels)
        .iter()
        .map(Vec::len)
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0)
}

fn by_class(labels: &[usize]) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); NUM_CLASSES];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    by_class
}

/// Cross-entropy class weights for `weighted-loss`: `(1 / frequency)^power`, scaled so the
/// average weight over the training examples is 1. Absent classes get weight 0.
pub fn class_weights(labels: &[usize], power: f64) -> [f64; NUM_CLASSES] {
    let counts = class_counts(labels);
    let raw: [f64; NUM_CLASSES] = std::array::from_fn(|c| {
        if counts[c] == 0 {
            0.0
        } else {
            (labels.len() as f64 / counts[c] as f64).powf(power)
        }
    });
    let mean = raw
        .iter()
        .zip(&counts)
        .map(|(w, &n)| w * n as f64)
        .sum::<f64>()
        / labels.len().max(1) as f64;
    raw.map(|w| w / mean.max(f64::MIN_POSITIVE))
}

/// Natural-log class priors of the training labels, for `logit-adjusted`. An absent class
/// counts as one example, so the offset stays finite.
pub fn class_log_priors(labels: &[usize]) -> [f64; NUM_CLASSES] {
    let n = labels.len().max(1) as f64;
    class_counts(labels).map(|c| (c.max(1) as f64 / n).ln())
}

fn class_counts(labels: &[usize]) -> [usize; NUM_CLASSES] {
    let mut counts = [0usize; NUM_CLASSES];
    for &l in labels {
        counts[l] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(imbalance: Imbalance, seed: u64) -> Recipe {
        Recipe {
            imbalance,
            seed,
            ..Recipe::default()
        }
    }

    fn labels() -> Vec<usize> {
        // 90 × class 5, 10 × class 0.
        let mut l = vec![5; 90];
        l.extend([0; 10]);
        l
    }

    #[test]
    fn orders_are_deterministic_per_epoch_and_differ_across_epochs() {
        let l = labels();
        let a = epoch_order(&l, &recipe(Imbalance::None, 7), 1);
        assert_eq!(a, epoch_order(&l, &recipe(Imbalance::None, 7), 1));
        assert_ne!(a, epoch_order(&l, &recipe(Imbalance::None, 7), 2));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn balancing_strategies_even_out_the_classes() {
        let l = labels();
        let sampled = epoch_order(&l, &recipe(Imbalance::BalancedSampler, 1), 1);
        let minority = sampled.iter().filter(|&&i| l[i] == 0).count();
        assert_eq!(sampled.len(), 100);
        assert!((30..=70).contains(&minority), "{minority}");
        let subset = epoch_order(&l, &recipe(Imbalance::BalancedSubset, 1), 1);
        assert_eq!(subset.len(), 20);
        assert_eq!(subset.iter().filter(|&&i| l[i] == 0).count(), 10);
        let w = class_weights(&l, 1.0);
        assert!((w[0] * 10.0 - w[5] * 90.0).abs() < 1e-9);
        assert!((w[0] * 10.0 + w[5] * 90.0 - 100.0).abs() < 1e-9);
        assert_eq!(w[3], 0.0);
        let p = class_log_priors(&l);
        assert!((p[5] - 0.9f64.ln()).abs() < 1e-12 && (p[0] - 0.1f64.ln()).abs() < 1e-12);
        assert!(
            (p[3] - 0.01f64.ln()).abs() < 1e-12,
            "an absent class counts as one"
        );
        let natural = epoch_order(&l, &recipe(Imbalance::LogitAdjusted, 1), 1);
        assert_eq!(
            natural.len(),
            100,
            "logit adjustment keeps the natural order"
        );
    }

    #[test]
    fn the_sampler_exponent_draws_classes_in_proportion_to_a_power_of_their_counts() {
        // 900 × class 5, 100 × class 0, none of the others.
        let mut l = vec![5; 900];
        l.extend([0; 100]);
        let share = |q: f64, seed: u64| {
            let r = Recipe {
                sampler_exponent: q,
                ..recipe(Imbalance::BalancedSampler, seed)
            };
            let order = epoch_order(&l, &r, 1);
            assert_eq!(order.len(), 1000);
            order.iter().filter(|&&i| l[i] == 0).count() as f64 / 1000.0
        };
        // Over ten seeds (10,000 draws) the minority's share is within 0.015 of its target:
        // 1/2 at q = 0, 1/(1 + 3) at q = ½ (√100 against √900), 1/10 at q = 1.
        for (q, target) in [(0.0, 0.5), (0.5, 0.25), (1.0, 0.1)] {
            let mean = (0..10).map(|s| share(q, s)).sum::<f64>() / 10.0;
            assert!((mean - target).abs() < 0.015, "q = {q}: {mean}");
        }
    }
}
