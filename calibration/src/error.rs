//! The one error type of the crate: every variant names the input that was wrong and how.

use thiserror::Error;

/// Why a computation on scores and labels could not be done.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CalibrationError {
    #[error("{what}: no samples")]
    Empty { what: &'static str },
    #[error("{what}: {rows} rows of scores but {labels} labels")]
    LengthMismatch {
        what: &'static str,
        rows: usize,
        labels: usize,
    },
    #[error("{what}: label {label} at row {row} is not a class index below {classes}")]
    LabelOutOfRange {
        what: &'static str,
        row: usize,
        label: usize,
        classes: usize,
    },
    #[error("{what}: non-finite value at row {row}")]
    NonFinite { what: &'static str, row: usize },
    #[error("{what}: needs positive and negative samples, got {positives} positive and {negatives} negative")]
    OneSided {
        what: &'static str,
        positives: usize,
        negatives: usize,
    },
    #[error("{what}: {reason}")]
    InvalidArgument { what: &'static str, reason: String },
    #[error("{what}: did not converge ({reason})")]
    NotConverged { what: &'static str, reason: String },
}

pub type Result<T> = std::result::Result<T, CalibrationError>;

/// Checks a score matrix against its labels: same length, at least one row, finite scores and
/// labels that index a column.
pub(crate) fn check_scores(
    what: &'static str,
    scores: ndarray::ArrayView2<f64>,
    labels: &[usize],
) -> Result<()> {
    if scores.nrows() != labels.len() {
        return Err(CalibrationError::LengthMismatch {
            what,
            rows: scores.nrows(),
            labels: labels.len(),
        });
    }
    if labels.is_empty() {
        return Err(CalibrationError::Empty { what });
    }
    let classes = scores.ncols();
    for (row, (values, &label)) in scores.rows().into_iter().zip(labels).enumerate() {
        if label >= classes {
            return Err(CalibrationError::LabelOutOfRange {
                what,
                row,
                label,
                classes,
            });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(CalibrationError::NonFinite { what, row });
        }
    }
    Ok(())
}

/// Index of the largest value; ties go to the first, as `numpy.argmax` does.
pub(crate) fn argmax(values: ndarray::ArrayView1<f64>) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
