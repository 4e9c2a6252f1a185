//! HALP (De Sa et al., arXiv 1803.03383) and the methods it is measured against, for linear
//! models: SGD, LP-SGD (the iterate in b-bit scaled fixed point, one fixed scale), SVRG,
//! LP-SVRG (SVRG with such an iterate) and HALP (SVRG whose low-precision offset z from a
//! full-precision centre is re-centred and re-scaled every epoch: delta = |g~| / (mu
//! (2^(b-1) - 1))). This is the CPU reference: f32 arithmetic in a fixed order, the
//! quantizer's division and product in soft-float, randomness from the counter-based
//! generator.

use super::linear::{LinearError, Task, logistic_loss, lsq_loss};
use crate::data::table::Table;
use crate::levels::{Loss, Samples};
use crate::reference::linear::{batch_gradient, gradient_from_factors, row_factor};
use crate::rng::random_bits;
use crate::scaled_fixed::ScaledFixed;
use std::time::Instant;

/// Which method trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Plain SGD in f32.
    Sgd,
    /// SGD with the iterate rounded into b-bit fixed point of one fixed scale.
    LpSgd,
    /// SVRG in f32.
    Svrg,
    /// SVRG with the iterate rounded into b-bit fixed point of one fixed scale.
    LpSvrg,
    /// SVRG with a low-precision offset re-centred and re-scaled every epoch.
    Halp,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        Ok(match s {
            "sgd" => Method::Sgd,
            "lp-sgd" => Method::LpSgd,
            "svrg" => Method::Svrg,
            "lp-svrg" => Method::LpSvrg,
            "halp" => Method::Halp,
            other => {
                return Err(format!(
                    "{other:?}: methods are sgd, lp-sgd, svrg, lp-svrg and halp"
                ));
            }
        })
    }
}

impl std::fmt::Display for Method {
    /// The method's name on the command line (`lp-sgd`, `halp`, ...).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Sgd => "sgd",
            Method::LpSgd => "lp-sgd",
            Method::Svrg => "svrg",
            Method::LpSvrg => "lp-svrg",
            Method::Halp => "halp",
        })
    }
}

impl Method {
    /// Whether the iterate (or HALP's offset) is held in scaled fixed point.
    pub fn low_precision(&self) -> bool {
        matches!(self, Method::LpSgd | Method::LpSvrg | Method::Halp)
    }
}

/// How a HALP-family run trains.
#[derive(Clone, Debug, PartialEq)]
pub struct HalpConfig {
    /// The method.
    pub method: Method,
    /// The objective.
    pub task: Task,
    /// Bits of the low-precision iterate.
    pub bits: u32,
    /// The strong-convexity constant (None: the L2 coefficient for logistic regression,
    /// the smallest eigenvalue of A^T A / N for least squares).
    pub mu: Option<f64>,
    /// Steps per epoch (None: one pass over the data).
    pub inner: Option<usize>,
    /// Epochs (outer iterations).
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Step size.
    pub lr: f32,
    /// Seed of the sampling and the rounding.
    pub seed: u64,
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct HalpEpoch {
    /// Epoch, from 1.
    pub epoch: usize,
    /// The objective on the training set, in f64.
    pub train_loss: f64,
    /// The training loss minus the f64 optimum's.
    pub gap: f64,
    /// The norm of the full gradient at the epoch's end, in f64.
    pub grad_norm: f64,
    /// The grid step of the epoch's low-precision iterate, if it has one.
    pub scale: Option<f32>,
    /// Values the quantizer clamped at the grid's end this epoch.
    pub saturated: u64,
    /// Seconds the epoch took.
    pub seconds: f64,
}

/// The strong-convexity constant of the objective and where it came from: the L2
/// coefficient for logistic regression, the smallest eigenvalue of A^T A / N (Jacobi, f64)
/// for least squares.
pub fn strong_convexity(t: &Table, task: Task) -> (f64, &'static str) {
    match task {
        Task::Logistic { l2 } => (l2 as f64, "the L2 coefficient"),
        Task::Lsq => (
            smallest_eigenvalue(&gram(t), t.cols()),
            "the smallest eigenvalue of A^T A / N",
        ),
    }
}

/// A^T A / N in f64, row-major d x d.
fn gram(t: &Table) -> Vec<f64> {
    let (n, d) = (t.rows(), t.cols());
    let mut g = vec![0f64; d * d];
    for a in t.features.chunks(d.max(1)).take(n) {
        for i in 0..d {
            for j in i..d {
                g[i * d + j] += a[i] as f64 * a[j] as f64;
            }
        }
    }
    let inv = 1.0 / n.max(1) as f64;
    for i in 0..d {
        for j in i..d {
            g[i * d + j] *= inv;
            g[j * d + i] = g[i * d + j];
        }
    }
    g
}

/// The smallest eigenvalue of the symmetric d x d matrix `a` (row-major), by cyclic Jacobi
/// rotations until the off-diagonal mass is below 1e-24 of the total.
pub fn smallest_eigenvalue(a: &[f64], d: usize) -> f64 {
    let mut a = a.to_vec();
    let total: f64 = a.iter().map(|x| x * x).sum::<f64>().max(1e-300);
    for _ in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum();
        if off <= 1e-24 * total {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..d).map(|i| a[i * d + i]).fold(f64::INFINITY, f64::min)
}

/// The full gradient of the objective at `w`, in f64.
pub fn full_gradient_f64(t: &Table, w: &[f32], task: Task) -> Vec<f64> {
    let (n, d) = (t.rows(), t.cols());
    let mut g = vec![0f64; d];
    for (a, &y) in t.features.chunks(d.max(1)).zip(&t.target).take(n) {
        let z: f64 = a.iter().zip(w).map(|(&u, &v)| u as f64 * v as f64).sum();
        let r = match task {
            Task::Lsq => z - y as f64,
            Task::Logistic { .. } => -(y as f64) / (1.0 + (y as f64 * z).exp()),
        };
        for (gc, &ac) in g.iter_mut().zip(a) {
            *gc += ac as f64 * r;
        }
    }
    let l2 = match task {
        Task::Logistic { l2 } => l2 as f64,
        Task::Lsq => 0.0,
    };
    g.iter_mut()
        .zip(w)
        .for_each(|(gc, &wc)| *gc = *gc / n.max(1) as f64 + l2 * wc as f64);
    g
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
}

/// Rounds every value of `v` onto the grid, in place, with the random words of step
/// `step`; returns the saturations.
fn round_all(v: &mut [f32], grid: &ScaledFixed, seed: u64, step: u64) -> u64 {
    let mut saturated = 0;
    let d = v.len() as u64;
    for (c, x) in v.iter_mut().enumerate() {
        let code = grid.round(*x, random_bits(seed, 0x4a1f, step * d + c as u64));
        saturated += code.saturated as u64;
        *x = grid.value(code.k);
    }
    saturated
}

/// The grid of step |g| / (mu (2^(b-1) - 1)): it holds every point within |g| / mu, where
/// strong convexity puts the optimum.
fn grid_for(g: &[f32], mu: f64, bits: u32) -> Result<ScaledFixed, LinearError> {
    let codes = ((1u64 << (bits - 1)) - 1) as f64;
    let step = (norm(g) / (mu * codes)) as f32;
    ScaledFixed::new(step, bits).map_err(|e| {
        LinearError::Invalid(format!(
            "{e}: the full gradient's norm {:e} over mu {mu:e} gives no grid (at the optimum \
             already, or mu too large)",
            norm(g)
        ))
    })
}

/// Trains `cfg.method` on `train` (scaled, with its intercept; labels +-1 for logistic
/// regression) from zero weights on the CPU; `optimum_loss` is the f64 optimum the gap is
/// measured from. Calls `each` after every epoch with its figures and the weights.
pub fn train_halp(
    cfg: &HalpConfig,
    train: &Table,
    optimum_loss: f64,
    mut each: impl FnMut(&HalpEpoch, &[f32]),
) -> Result<Vec<f32>, LinearError> {
    let (n, d) = (train.rows(), train.cols());
    if n == 0 || d == 0 {
        return Err(LinearError::Invalid("no training rows".into()));
    }
    if cfg.method.low_precision() && !(2..=24).contains(&cfg.bits) {
        return Err(LinearError::Invalid(format!(
            "--bits {}: the low-precision iterate takes 2 to 24 bits",
            cfg.bits
        )));
    }
    let mu = match cfg.mu {
        Some(m) => m,
        None => strong_convexity(train, cfg.task).0,
    };
    if cfg.method.low_precision() && !(mu.is_finite() && mu > 0.0) {
        return Err(LinearError::Invalid(format!(
            "mu {mu:e}: the grid needs a positive strong-convexity constant (give --mu, or an \
             L2 term for logistic regression)"
        )));
    }
    let loss = match cfg.task {
        Task::Lsq => Loss::Lsq,
        Task::Logistic { l2 } => Loss::Logistic { l2, poly: None },
    };
    let samples = Samples::Fp32(&train.features, d);
    let grad = |rows: &[usize], w: &[f32]| batch_gradient(&samples, &train.target, rows, w, &loss);
    let all: Vec<usize> = (0..n).collect();
    let objective = |w: &[f32]| match cfg.task {
        Task::Lsq => lsq_loss(train, w),
        Task::Logistic { l2 } => logistic_loss(train, w, l2),
    };
    let batch = cfg.batch.clamp(1, n);
    let inner = cfg.inner.unwrap_or(n.div_ceil(batch)).max(1);
    // The centre (SVRG, HALP) or the iterate (SGD, LP-SGD), from zero.
    let mut w = vec![0f32; d];
    // LP-SGD and LP-SVRG keep the grid HALP starts with: the one of the first full gradient.
    let fixed = match cfg.method {
        Method::LpSgd | Method::LpSvrg => Some(grid_for(&grad(&all, &w), mu, cfg.bits)?),
        _ => None,
    };
    let mut step: u64 = 0;
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        let order = crate::data::dataset::shuffled(n, cfg.seed, 0x4a1f + epoch as u32);
        let mut batches = order.chunks(batch).cycle();
        let mut saturated = 0;
        let mut scale = fixed.map(|g| g.scale);
        match cfg.method {
            Method::Sgd | Method::LpSgd => {
                for _ in 0..inner {
                    let rows = batches.next().expect("a cycle of batches");
                    let g = grad(rows, &w);
                    for (wc, &gc) in w.iter_mut().zip(&g) {
                        *wc -= cfg.lr * gc;
                    }
                    if let Some(grid) = &fixed {
                        saturated += round_all(&mut w, grid, cfg.seed, step);
                    }
                    step += 1;
                }
            }
            Method::Svrg | Method::LpSvrg | Method::Halp => {
                let centre = w.clone();
                let full = grad(&all, &centre);
                // Each row's factor at the centre, once an epoch (a^T w~ for a linear
                // model): the centre's minibatch gradients need no further products.
                let at_centre: Vec<f32> = (0..n)
                    .map(|i| row_factor(&samples, &train.target, i, &centre, &loss))
                    .collect();
                let grid = match cfg.method {
                    Method::Halp => {
                        let g = grid_for(&full, mu, cfg.bits)?;
                        scale = Some(g.scale);
                        Some(g)
                    }
                    _ => fixed,
                };
                // HALP steps the offset z from the centre; the others the iterate itself.
                let halp = cfg.method == Method::Halp;
                let mut x = if halp { vec![0f32; d] } else { centre.clone() };
                for _ in 0..inner {
                    let rows = batches.next().expect("a cycle of batches");
                    let at: Vec<f32> = match halp {
                        true => centre.iter().zip(&x).map(|(c, z)| c + z).collect(),
                        false => x.clone(),
                    };
                    let gi = grad(rows, &at);
                    let gc =
                        gradient_from_factors(&samples, rows, |i| at_centre[i], &centre, &loss);
                    for (k, xk) in x.iter_mut().enumerate() {
                        *xk -= cfg.lr * (gi[k] - gc[k] + full[k]);
                    }
                    if let Some(grid) = &grid {
                        saturated += round_all(&mut x, grid, cfg.seed, step);
                    }
                    step += 1;
                }
                w = match halp {
                    true => centre.iter().zip(&x).map(|(c, z)| c + z).collect(),
                    false => x,
                };
            }
        }
        let train_loss = objective(&w);
        let m = HalpEpoch {
            epoch,
            train_loss,
            gap: train_loss - optimum_loss,
            grad_norm: full_gradient_f64(train, &w, cfg.task)
                .iter()
                .map(|g| g * g)
                .sum::<f64>()
                .sqrt(),
            scale,
            saturated,
            seconds: start.elapsed().as_secs_f64(),
        };
        each(&m, &w);
        if !train_loss.is_finite() {
            return Err(LinearError::Diverged {
                epoch,
                loss: train_loss,
            });
        }
    }
    Ok(w)
}

/// The optimum of L2-regularised logistic regression by Newton's method in f64 (Cholesky
/// solves of the exact Hessian) from zero, until the gradient's norm is below 1e-13 or 100
/// steps: the weights and the objective there.
pub fn logistic_optimum(t: &Table, l2: f32) -> (Vec<f64>, f64) {
    let (n, d) = (t.rows(), t.cols());
    let l2 = l2 as f64;
    let mut w = vec![0f64; d];
    let rows = || t.features.chunks(d.max(1)).zip(&t.target).take(n);
    for _ in 0..100 {
        let mut g = vec![0f64; d];
        let mut h = vec![0f64; d * d];
        for (a, &y) in rows() {
            let z: f64 = a.iter().zip(&w).map(|(&x, v)| x as f64 * v).sum();
            let s = 1.0 / (1.0 + (y as f64 * z).exp());
            let (r, c) = (-(y as f64) * s, s * (1.0 - s));
            for i in 0..d {
                g[i] += a[i] as f64 * r;
                for j in 0..=i {
                    h[i * d + j] += c * a[i] as f64 * a[j] as f64;
                }
            }
        }
        let inv = 1.0 / n.max(1) as f64;
        for i in 0..d {
            g[i] = g[i] * inv + l2 * w[i];
            for j in 0..=i {
                h[i * d + j] = h[i * d + j] * inv + if i == j { l2 } else { 0.0 };
            }
        }
        if g.iter().map(|x| x * x).sum::<f64>().sqrt() < 1e-13 {
            break;
        }
        let Some(step) = cholesky_solve(&h, &g, d) else {
            break;
        };
        w.iter_mut().zip(&step).for_each(|(wi, s)| *wi -= s);
    }
    let loss = super::linear::logistic_loss_f64(t, &w, l2);
    (w, loss)
}

/// Solves H x = g for a symmetric positive definite H given by its lower triangle
/// (row-major d x d); None if H is not positive definite.
fn cholesky_solve(h: &[f64], g: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            if i == j {
                let v = h[i * d + i] - s;
                if v <= 0.0 {
                    return None;
                }
                l[i * d + i] = v.sqrt();
            } else {
                l[i * d + j] = (h[i * d + j] - s) / l[j * d + j];
            }
        }
    }
    let mut y = vec![0f64; d];
    for i in 0..d {
        let s: f64 = (0..i).map(|k| l[i * d + k] * y[k]).sum();
        y[i] = (g[i] - s) / l[i * d + i];
    }
    let mut x = vec![0f64; d];
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| l[k * d + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * d + i];
    }
    Some(x)
}
