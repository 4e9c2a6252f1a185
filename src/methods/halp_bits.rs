//! How many bits HALP needs as the condition number grows: HALP at several widths and fp32
//! SVRG on least-squares sets of growing L_max / mu, the largest condition number each
//! width converges at, and the bound that certifies convergence.

use super::halp::{HalpConfig, Method, train_halp};
use super::linear::{Task, lsq_loss, lsq_optimum, synthetic_lsq_conditioned};
use super::optimum::strong_convexity;

/// One problem of the study: its conditioning and each method's final gap over its initial.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionRow {
    /// L_max / mu (L_max the largest |a_i|^2, mu the smallest eigenvalue of A^T A / N).
    pub kappa: f64,
    /// The largest |a_i|^2.
    pub l_max: f64,
    /// fp32 SVRG's final gap over its initial gap.
    pub svrg: f64,
    /// HALP's, one per width (infinite where it diverged).
    pub halp: Vec<f64>,
}

/// The study's settings and rows.
#[derive(Clone, Debug, PartialEq)]
pub struct BitsStudy {
    /// Rows and features of each problem.
    pub shape: (usize, usize),
    /// Step size (batch 1, one pass per epoch).
    pub lr: f32,
    /// Epochs of every run.
    pub epochs: usize,
    /// HALP's widths.
    pub widths: Vec<u32>,
    /// One per problem, in growing L_max / mu.
    pub rows: Vec<ConditionRow>,
}

/// One least-squares problem of the study and what its gaps are measured against.
struct Problem {
    t: crate::data::table::Table,
    mu: f64,
    l_max: f64,
    best: f64,
    initial: f64,
}

impl Problem {
    /// `synthetic_lsq_conditioned` of `shape`, noise 0.1, columns spread by `spread`.
    fn new((n, d): (usize, usize), spread: f64) -> Problem {
        let t = synthetic_lsq_conditioned(n, d, 0.1, spread, 7);
        let (mu, _) = strong_convexity(&t, Task::Lsq);
        let l_max = t
            .features
            .chunks(d)
            .map(|a| a.iter().map(|x| (x * x) as f64).sum::<f64>())
            .fold(0.0, f64::max);
        let best = lsq_optimum(&t).1;
        let initial = lsq_loss(&t, &vec![0.0; d]) - best;
        Problem {
            t,
            mu,
            l_max,
            best,
            initial,
        }
    }

    /// `method`'s gap after every epoch (batch 1, one pass an epoch, mu the smallest
    /// eigenvalue); a diverged run's list ends at its non-finite epoch.
    fn gaps(&self, method: Method, bits: u32, lr: f32, epochs: usize) -> Vec<f64> {
        let cfg = HalpConfig {
            method,
            task: Task::Lsq,
            bits,
            mu: None,
            inner: None,
            epochs,
            batch: 1,
            lr,
            seed: 1,
        };
        let mut gaps = Vec::new();
        let _ = train_halp(&cfg, &self.t, self.best, None, |m, _| gaps.push(m.gap));
        gaps
    }
}

/// Runs fp32 SVRG and HALP at each of `widths` bits on `synthetic_lsq_conditioned` sets of
/// `shape` (noise 0.1) with each column spread in `spreads`: batch 1, step `lr`, `epochs`
/// passes, mu the smallest eigenvalue.
pub fn bits_against_condition(
    shape: (usize, usize),
    widths: &[u32],
    spreads: &[f64],
    lr: f32,
    epochs: usize,
) -> BitsStudy {
    let rows = spreads
        .iter()
        .map(|&spread| {
            let p = Problem::new(shape, spread);
            let end = |method, bits| match p.gaps(method, bits, lr, epochs).last() {
                Some(g) if g.is_finite() => (g / p.initial).max(0.0),
                _ => f64::INFINITY,
            };
            ConditionRow {
                kappa: p.l_max / p.mu,
                l_max: p.l_max,
                svrg: end(Method::Svrg, 32),
                halp: widths.iter().map(|&b| end(Method::Halp, b)).collect(),
            }
        })
        .collect();
    BitsStudy {
        shape,
        lr,
        epochs,
        widths: widths.to_vec(),
        rows,
    }
}

impl BitsStudy {
    /// Whether HALP at width `j` converged on row `r`: its final gap within 10x of fp32
    /// SVRG's, or below 1e-10 of its initial gap.
    pub fn converged(&self, j: usize, r: &ConditionRow) -> bool {
        r.halp[j] < (10.0 * r.svrg).max(1e-10)
    }

    /// The largest L_max / mu up to which width `j` converged on every problem (0 if not on
    /// the first).
    pub fn largest(&self, j: usize) -> f64 {
        self.rows
            .iter()
            .take_while(|r| self.converged(j, r))
            .map(|r| r.kappa)
            .fold(0.0, f64::max)
    }

    /// The L_max / mu below which the bound certifies HALP at `bits`: with stochastic
    /// rounding (E|Q(x) - x|^2 <= d delta^2 / 4) and delta = |g| / (mu q), q = 2^(b-1) - 1,
    /// SVRG's epoch contraction gains kappa^2 d / (4 alpha L (1 - 2 alpha L) q^2), which must
    /// stay below 1: kappa < 2 q sqrt(alpha L (1 - 2 alpha L) / d), with L the largest
    /// L_max of the study.
    pub fn bound(&self, bits: u32) -> f64 {
        let l = self.rows.iter().map(|r| r.l_max).fold(0.0, f64::max);
        let al = self.lr as f64 * l;
        let q = ((1u64 << (bits - 1)) - 1) as f64;
        2.0 * q * (al * (1.0 - 2.0 * al)).max(0.0).sqrt() / (self.shape.1 as f64).sqrt()
    }
}

/// Every method of the comparison at `bits` on one `synthetic_lsq_conditioned` set (noise
/// 0.1, columns spread by `spread`): L_max / mu, the initial gap, and each method's gap
/// after every epoch (batch 1, step `lr`, one pass per epoch, mu the smallest eigenvalue).
pub fn methods_on_conditioned(
    shape: (usize, usize),
    spread: f64,
    bits: u32,
    lr: f32,
    epochs: usize,
) -> (f64, f64, Vec<(Method, Vec<f64>)>) {
    let p = Problem::new(shape, spread);
    let runs = [
        Method::Sgd,
        Method::LpSgd,
        Method::Svrg,
        Method::LpSvrg,
        Method::Halp,
    ]
    .into_iter()
    .map(|method| (method, p.gaps(method, bits, lr, epochs)))
    .collect();
    (p.l_max / p.mu, p.initial, runs)
}

/// The mean contraction per epoch of a run's gap until it first falls below `floor` (or
/// over the whole run): (gap_k / initial)^(1 / k).
pub fn contraction(initial: f64, gaps: &[f64], floor: f64) -> f64 {
    let k = gaps
        .iter()
        .position(|&g| g < floor)
        .map_or(gaps.len(), |k| k + 1)
        .max(1);
    (gaps[k - 1].max(f64::MIN_POSITIVE) / initial).powf(1.0 / k as f64)
}
