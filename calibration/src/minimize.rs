//! Brent's bounded one-dimensional minimizer (golden section with parabolic steps), the method
//! behind `scipy.optimize.minimize_scalar(method="bounded")`.

use crate::error::{CalibrationError, Result};

/// Where the minimizer stopped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minimum {
    pub x: f64,
    pub value: f64,
    pub evaluations: usize,
}

/// Minimizes `f` on `[lower, upper]` to an absolute tolerance `x_tolerance` in `x`, within
/// `max_evaluations` calls. Finds the minimum of a unimodal function; on others, a local one.
pub fn minimize_bounded(
    mut f: impl FnMut(f64) -> f64,
    lower: f64,
    upper: f64,
    x_tolerance: f64,
    max_evaluations: usize,
) -> Result<Minimum> {
    const WHAT: &str = "bounded minimizer";
    if !(lower < upper && lower.is_finite() && upper.is_finite() && x_tolerance > 0.0) {
        return Err(CalibrationError::InvalidArgument {
            what: WHAT,
            reason: format!("bounds [{lower}, {upper}] with tolerance {x_tolerance}"),
        });
    }
    let sqrt_eps = f64::EPSILON.sqrt();
    let golden = 0.5 * (3.0 - 5f64.sqrt());
    let (mut a, mut b) = (lower, upper);
    // x: best point so far; w: second best; v: the previous w.
    let mut x = a + golden * (b - a);
    let (mut w, mut v) = (x, x);
    let mut fx = f(x);
    let (mut fw, mut fv) = (fx, fx);
    let mut evaluations = 1;
    let (mut step, mut previous_step) = (0.0f64, 0.0f64);
    loop {
        let middle = 0.5 * (a + b);
        let tol1 = sqrt_eps * x.abs() + x_tolerance / 3.0;
        let tol2 = 2.0 * tol1;
        if (x - middle).abs() <= tol2 - 0.5 * (b - a) {
            break;
        }
        if evaluations >= max_evaluations {
            return Err(CalibrationError::NotConverged {
                what: WHAT,
                reason: format!("{max_evaluations} evaluations, bracket [{a}, {b}]"),
            });
        }
        let mut use_golden = true;
        if previous_step.abs() > tol1 {
            // Fit a parabola through x, w, v.
            let r = (x - w) * (fx - fv);
            let mut q = (x - v) * (fx - fw);
            let mut p = (x - v) * q - (x - w) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            let older_step = previous_step;
            previous_step = step;
            if p.abs() < (0.5 * q * older_step).abs() && p > q * (a - x) && p < q * (b - x) {
                step = p / q;
                let u = x + step;
                if (u - a) < tol2 || (b - u) < tol2 {
                    step = if middle >= x { tol1 } else { -tol1 };
                }
                use_golden = false;
            }
        }
        if use_golden {
            previous_step = if x >= middle { a - x } else { b - x };
            step = golden * previous_step;
        }
        let u = x + if step >= 0.0 {
            step.max(tol1)
        } else {
            step.min(-tol1)
        };
        let fu = f(u);
        evaluations += 1;
        if !fu.is_finite() {
            return Err(CalibrationError::NotConverged {
                what: WHAT,
                reason: format!("f({u}) = {fu} is not finite"),
            });
        }
        if fu <= fx {
            if u >= x {
                a = x;
            } else {
                b = x;
            }
            (v, fv) = (w, fw);
            (w, fw) = (x, fx);
            (x, fx) = (u, fu);
        } else {
            if u < x {
                a = u;
            } else {
                b = u;
            }
            if fu <= fw || w == x {
                (v, fv) = (w, fw);
                (w, fw) = (u, fu);
            } else if fu <= fv || v == x || v == w {
                (v, fv) = (u, fu);
            }
        }
    }
    Ok(Minimum {
        x,
        value: fx,
        evaluations,
    })
}
