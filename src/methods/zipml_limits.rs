//! Where ZipML's least-squares SGD ends on samples stored once: the stationary points of
//! the naive and double-sampling gradients over the stored samples, and the ridge problem
//! the naive estimator is biased toward in expectation, each as its gap to the exact
//! optimum, in f64. SGD with a decaying step (or full-batch descent) converges to these
//! points, so they are the floors its loss cannot go below whatever the schedule.

use crate::data::table::Table;
use crate::levels::QuantizedMatrix;
use crate::methods::linear::lsq_optimum;
use crate::methods::optimum::{solve, value_and_gradient};

/// The gaps (training loss minus the exact optimum) of the points SGD converges to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// The naive estimator's stationary point on the stored samples:
    /// sum_i Q0(a_i)(Q0(a_i)^T w - b_i) = 0.
    pub naive: f64,
    /// The ridge problem naive sampling minimises in expectation: (A^T A + D) w = A^T b,
    /// D the diagonal of the quantization variances summed over the rows.
    pub ridge: f64,
    /// Double sampling's stationary point on the stored samples:
    /// sum_i Q0(a_i)(Q1(a_i)^T w - b_i) = 0.
    pub double: f64,
}

/// The limits of least-squares SGD on `t` (scaled, with its intercept) whose values are
/// stored in `q` (two samples: Q0 and Q1; naive sampling reads Q0 alone).
pub fn limits(t: &Table, q: &QuantizedMatrix) -> Limits {
    let (n, d) = (t.rows(), t.cols());
    assert_eq!(q.shape(), (n, d), "samples of this table");
    assert!(q.samples() >= 2, "two stored samples");
    let best = lsq_optimum(t).1;
    let mut naive = vec![0f64; d * d];
    let mut double = vec![0f64; d * d];
    let mut ridge = vec![0f64; d * d];
    let mut rhs_q = vec![0f64; d];
    let mut rhs = vec![0f64; d];
    for i in 0..n {
        let a = &t.features[i * d..(i + 1) * d];
        let b = t.target[i] as f64;
        let q0: Vec<f64> = (0..d).map(|c| q.value(i, c, 0) as f64).collect();
        let q1: Vec<f64> = (0..d).map(|c| q.value(i, c, 1) as f64).collect();
        for r in 0..d {
            rhs_q[r] += q0[r] * b;
            rhs[r] += a[r] as f64 * b;
            for c in 0..d {
                naive[r * d + c] += q0[r] * q0[c];
                double[r * d + c] += q0[r] * q1[c];
                ridge[r * d + c] += a[r] as f64 * a[c] as f64;
            }
            // The variance of rounding a onto its two levels, (l_j+1 - a)(a - l_j).
            let g = q.gap(i, r) as f64;
            let lo = q.levels()[r].values()[q.lower()[i * d + r] as usize] as f64;
            let x = a[r] as f64 - lo;
            ridge[r * d + r] += (g - x).max(0.0) * x;
        }
    }
    let gap = |m: Vec<f64>, r: &[f64]| {
        let w = solve(m, r, d);
        value_and_gradient(t, &w, crate::glm::Glm::Lsq).0 - best
    };
    Limits {
        naive: gap(naive, &rhs_q),
        ridge: gap(ridge, &rhs),
        double: gap(double, &rhs_q),
    }
}
