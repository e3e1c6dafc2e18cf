//! Temperature scaling (Guo et al. 2017): one scalar T divides every logit so that softmax
//! probabilities match observed frequencies. T is fitted on validation logits by minimizing the
//! mean negative log-likelihood over log T with Brent's method, then the derivative is checked.

use crate::error::{argmax, check_scores, CalibrationError, Result};
use crate::minimize::minimize_bounded;
use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

/// The search range for T: below 0.05 or above 20 a model is broken, not miscalibrated.
pub const TEMPERATURE_RANGE: (f64, f64) = (0.05, 20.0);

/// The fitted temperature and the evidence that it is a minimum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    pub temperature: f64,
    /// Mean NLL at T = 1.
    pub nll_before: f64,
    /// Mean NLL at the fitted T.
    pub nll_after: f64,
    /// d NLL / d log T at the fitted T: ≈ 0 at an interior minimum.
    pub gradient: f64,
    /// Whether the minimum lies on an end of [`TEMPERATURE_RANGE`] (e.g. separable data).
    pub at_bound: bool,
    pub evaluations: usize,
}

/// `softmax(logits / temperature)` row by row.
pub fn softmax(logits: ArrayView2<f64>, temperature: f64) -> Array2<f64> {
    let mut out = logits.to_owned();
    for mut row in out.rows_mut() {
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(v / temperature));
        row.mapv_inplace(|v| (v / temperature - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|v| v / sum);
    }
    out
}

/// −ln softmax(z / T)[y] of one row, as (m − z_y)/T + ln(1 + Σ_{j≠top} exp((z_j − m)/T)) with
/// m the top logit: `ln_1p` keeps the tiny losses of confident right answers from rounding to 0,
/// which would leave the optimizer a flat floor instead of a slope.
fn row_nll(row: ArrayView1<f64>, label: usize, temperature: f64) -> f64 {
    let top = argmax(row);
    let max = row[top];
    let rest: f64 = row
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != top)
        .map(|(_, &v)| ((v - max) / temperature).exp())
        .sum();
    (max - row[label]) / temperature + rest.ln_1p()
}

fn check_temperature(temperature: f64) -> Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(CalibrationError::InvalidArgument {
            what: "temperature",
            reason: format!("{temperature} is not a positive number"),
        })
    }
}

/// Mean negative log-likelihood of the labels under `softmax(logits / temperature)`.
pub fn nll(logits: ArrayView2<f64>, labels: &[usize], temperature: f64) -> Result<f64> {
    check_scores("temperature NLL", logits, labels)?;
    check_temperature(temperature)?;
    Ok(nll_unchecked(logits, labels, temperature))
}

fn nll_unchecked(logits: ArrayView2<f64>, labels: &[usize], temperature: f64) -> f64 {
    let total: f64 = logits
        .rows()
        .into_iter()
        .zip(labels)
        .map(|(row, &y)| row_nll(row, y, temperature))
        .sum();
    total / labels.len() as f64
}

/// d NLL / d log T. With β = 1/T, d NLL / dβ = mean(E_p[z] − z_y) and dβ / d log T = −β.
pub fn nll_gradient_log_t(
    logits: ArrayView2<f64>,
    labels: &[usize],
    temperature: f64,
) -> Result<f64> {
    check_scores("temperature gradient", logits, labels)?;
    check_temperature(temperature)?;
    let probabilities = softmax(logits, temperature);
    let total: f64 = logits
        .rows()
        .into_iter()
        .zip(probabilities.rows())
        .zip(labels)
        .map(|((z, p), &y)| z.dot(&p) - z[y])
        .sum();
    Ok(-(total / labels.len() as f64) / temperature)
}

/// Fits T on validation logits (not probabilities) and their labels.
pub fn fit_temperature(logits: ArrayView2<f64>, labels: &[usize]) -> Result<TemperatureFit> {
    const WHAT: &str = "temperature fit";
    check_scores(WHAT, logits, labels)?;
    let (low, high) = (TEMPERATURE_RANGE.0.ln(), TEMPERATURE_RANGE.1.ln());
    let tolerance = 1e-9;
    let minimum = minimize_bounded(
        |log_t| nll_unchecked(logits, labels, log_t.exp()),
        low,
        high,
        tolerance,
        500,
    )?;
    let temperature = minimum.x.exp();
    let gradient = nll_gradient_log_t(logits, labels, temperature)?;
    let at_bound = minimum.x - low < 1e-4 || high - minimum.x < 1e-4;
    // An interior minimum must have a vanishing derivative; at a bound it must point outwards.
    let consistent = if at_bound {
        (minimum.x - low < 1e-4 && gradient >= -1e-6)
            || (high - minimum.x < 1e-4 && gradient <= 1e-6)
    } else {
        gradient.abs() < 1e-5
    };
    if !consistent {
        return Err(CalibrationError::NotConverged {
            what: WHAT,
            reason: format!("d NLL / d log T = {gradient:e} at T = {temperature}"),
        });
    }
    Ok(TemperatureFit {
        temperature,
        nll_before: nll_unchecked(logits, labels, 1.0),
        nll_after: minimum.value,
        gradient,
        at_bound,
        evaluations: minimum.evaluations,
    })
}
