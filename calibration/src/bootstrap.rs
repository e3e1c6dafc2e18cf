//! Percentile bootstrap intervals that resample groups (lesions), not rows (images).
//!
//! HAM10000 holds several images of one lesion; resampling images would treat near-duplicates
//! as independent evidence and make every interval too narrow. A resample here draws lesions
//! with replacement and takes all images of each drawn lesion.

use crate::error::{CalibrationError, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;

/// How many resamples, from which seed, for which coverage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    pub resamples: usize,
    pub seed: u64,
    /// Coverage of the interval, e.g. 0.95.
    pub level: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 0,
            level: 0.95,
        }
    }
}

/// A point estimate on all data and its percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
    /// Resamples in which the statistic was defined (e.g. a class was present).
    pub resamples: usize,
}

/// The grouping of rows and the resampling plan.
#[derive(Debug, Clone)]
pub struct GroupBootstrap {
    members: Vec<Vec<usize>>,
    config: BootstrapConfig,
}

impl GroupBootstrap {
    /// `groups[i]` is the group (lesion id) of row `i`.
    pub fn new<G: Hash + Eq>(groups: &[G], config: BootstrapConfig) -> Result<Self> {
        const WHAT: &str = "group bootstrap";
        if groups.is_empty() {
            return Err(CalibrationError::Empty { what: WHAT });
        }
        if config.resamples == 0 || !(config.level > 0.0 && config.level < 1.0) {
            return Err(CalibrationError::InvalidArgument {
                what: WHAT,
                reason: format!(
                    "needs at least one resample and a level in (0, 1), got {} and {}",
                    config.resamples, config.level
                ),
            });
        }
        // Groups in order of first appearance, so the same data and seed give the same draws.
        let mut index: HashMap<&G, usize> = HashMap::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        for (row, g) in groups.iter().enumerate() {
            let k = *index.entry(g).or_insert_with(|| {
                members.push(Vec::new());
                members.len() - 1
            });
            members[k].push(row);
        }
        Ok(Self { members, config })
    }

    pub fn groups(&self) -> usize {
        self.members.len()
    }

    pub fn config(&self) -> BootstrapConfig {
        self.config
    }

    /// One resample: as many groups as there are, drawn with replacement, expanded to their rows.
    pub fn draw(&self, rng: &mut impl Rng) -> Vec<usize> {
        let mut rows = Vec::new();
        for _ in 0..self.members.len() {
            let g = rng.random_range(0..self.members.len());
            rows.extend_from_slice(&self.members[g]);
        }
        rows
    }

    /// Intervals for several statistics computed on the same resamples. `statistic` maps the
    /// rows of one resample (with repeats) to one value per statistic, NaN where undefined;
    /// `estimates` are the values on all rows. An interval is `None` when its estimate is not
    /// finite or no resample defined it.
    pub fn intervals<F>(&self, estimates: &[f64], mut statistic: F) -> Vec<Option<Interval>>
    where
        F: FnMut(&[usize]) -> Vec<f64>,
    {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        let mut samples: Vec<Vec<f64>> =
            vec![Vec::with_capacity(self.config.resamples); estimates.len()];
        for _ in 0..self.config.resamples {
            let rows = self.draw(&mut rng);
            for (k, value) in statistic(&rows)
                .into_iter()
                .enumerate()
                .take(estimates.len())
            {
                if value.is_finite() {
                    samples[k].push(value);
                }
            }
        }
        let tail = (1.0 - self.config.level) / 2.0;
        estimates
            .iter()
            .zip(samples)
            .map(|(&estimate, mut values)| {
                if !estimate.is_finite() || values.is_empty() {
                    return None;
                }
                values.sort_by(f64::total_cmp);
                Some(Interval {
                    estimate,
                    low: quantile(&values, tail),
                    high: quantile(&values, 1.0 - tail),
                    resamples: values.len(),
                })
            })
            .collect()
    }

    /// [`Self::intervals`] for a single statistic.
    pub fn interval<F>(&self, estimate: f64, mut statistic: F) -> Option<Interval>
    where
        F: FnMut(&[usize]) -> f64,
    {
        self.intervals(&[estimate], |rows| vec![statistic(rows)])
            .pop()
            .flatten()
    }
}

/// Quantile of sorted values with linear interpolation (`numpy.quantile`'s default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let position = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    let fraction = position - below as f64;
    sorted[below] + (sorted[above] - sorted[below]) * fraction
}
