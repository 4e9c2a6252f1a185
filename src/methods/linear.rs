//! Linear models trained by minibatch SGD on samples read at low precision (ZipML): the
//! data's columns quantized onto uniform or variance-optimal levels, read once (naive) or
//! as two independent samples (double sampling); the objective and the exact optimum in
//! f64 for reference.

use crate::data::table::Table;
use crate::levels::{Estimator, Levels, LevelsError, QuantizedMatrix, Samples, step_spec};
use crate::quant::QuantSpec;
use crate::reference::linear::{Loss, batch_gradient, sgd_step};
use crate::reference::quantize::fake_quantize;
use std::time::Instant;

/// How each column's levels are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelKind {
    /// 2^bits evenly spaced from the column's minimum to its maximum.
    Uniform,
    /// The variance-optimal 2^bits levels (exact; on a grid of candidates, or uniform,
    /// where the program would take too long: `Levels::best_within`).
    Optimal,
}

impl std::fmt::Display for LevelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LevelKind::Uniform => "uniform",
            LevelKind::Optimal => "optimal",
        })
    }
}

impl std::str::FromStr for LevelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<LevelKind, String> {
        match s {
            "uniform" => Ok(LevelKind::Uniform),
            "optimal" => Ok(LevelKind::Optimal),
            _ => Err(format!("levels {s:?}: expected uniform or optimal")),
        }
    }
}

/// Why a linear model could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum LinearError {
    /// The columns' levels.
    #[error(transparent)]
    Levels(#[from] LevelsError),
    /// The GPU.
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    /// Settings that do not go together, or data the task cannot take.
    #[error("{0}")]
    Invalid(String),
    /// The objective became NaN or infinite.
    #[error(
        "diverged: the training loss is {loss} after epoch {epoch}; try a smaller --lr \
         (features in [-1, 1]: lr below 1 / (largest eigenvalue of A^T A / N) is stable)"
    )]
    Diverged {
        /// The epoch.
        epoch: usize,
        /// Its loss.
        loss: f64,
    },
}

/// The objective: least squares, logistic or softmax regression (the spec the GPU kernels
/// and their reference share).
pub use crate::glm::Glm as Task;

/// How a linear model is trained.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearConfig {
    /// The objective.
    pub task: Task,
    /// Degree of the Chebyshev estimator's polynomial (logistic regression).
    pub degree: usize,
    /// Half-width R of the interval [-R, R] the polynomial approximates sigma(-z) on.
    pub range: f32,
    /// How samples are read.
    pub estimator: Estimator,
    /// Bits of each level index.
    pub bits: u32,
    /// How levels are chosen.
    pub levels: LevelKind,
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch: usize,
    /// Step size (of the first epoch where it decays).
    pub lr: f32,
    /// Step size lr / epoch (epochs from 1) instead of a constant one (removes SGD's
    /// noise floor).
    pub decay: bool,
    /// Seed of the quantization and the shuffling.
    pub seed: u64,
    /// The format each step's weights are rounded through (None: f32); its seed and
    /// stream are replaced per step (`levels::step_spec`).
    pub model: Option<QuantSpec>,
    /// The format each step's gradient is rounded through before the step (None: f32).
    pub grad: Option<QuantSpec>,
    /// Draw the samples' rounding anew every epoch (`epoch_seed`) rather than once: the
    /// stored samples' own limit (`zipml_limits`) averages away, at the cost of keeping the
    /// full-precision data on the host to draw them.
    pub resample: bool,
}

/// The seed of an epoch's samples: `seed` itself for the first epoch (and every epoch
/// without resampling), then `seed` with the epoch in its high word.
pub fn epoch_seed(seed: u64, epoch: usize, resample: bool) -> u64 {
    match resample && epoch > 1 {
        true => seed ^ ((epoch as u64) << 40),
        false => seed,
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochMetrics {
    /// Epoch, from 1.
    pub epoch: usize,
    /// The objective on the whole training set (unquantized), in f64.
    pub train_loss: f64,
    /// The objective on the test set, if there is one.
    pub test_loss: Option<f64>,
    /// Classification accuracy on the test set (logistic regression).
    pub test_accuracy: Option<f64>,
    /// The step size used.
    pub lr: f32,
    /// Bits of sample data read per sample: the stored row, and 32 bits a feature for each
    /// row read again at full precision.
    pub bits_per_sample: f64,
    /// Rows read again at full precision this epoch (the SVM's refetching).
    pub refetched: Option<u64>,
    /// Seconds the epoch took.
    pub seconds: f64,
}

/// The least-squares objective (1/2N) sum (a^T w - b)^2 over a table, in f64.
pub fn lsq_loss(t: &Table, w: &[f32]) -> f64 {
    let d = t.cols();
    let n = t.rows().max(1) as f64;
    t.features
        .chunks(d.max(1))
        .zip(&t.target)
        .map(|(a, &b)| {
            let r: f64 = a
                .iter()
                .zip(w)
                .map(|(&x, &y)| x as f64 * y as f64)
                .sum::<f64>();
            (r - b as f64).powi(2)
        })
        .sum::<f64>()
        / (2.0 * n)
}

/// The least-squares optimum of a table in f64 (conjugate gradients on the normal
/// equations from zero, which converge to the least-norm solution when they are
/// singular): the weights and the objective there.
pub fn lsq_optimum(t: &Table) -> (Vec<f64>, f64) {
    let (n, d) = (t.rows(), t.cols());
    let mut ata = vec![0f64; d * d];
    let mut atb = vec![0f64; d];
    for (a, &b) in t.features.chunks(d.max(1)).zip(&t.target).take(n) {
        for i in 0..d {
            atb[i] += a[i] as f64 * b as f64;
            for j in 0..d {
                ata[i * d + j] += a[i] as f64 * a[j] as f64;
            }
        }
    }
    let mul = |v: &[f64]| -> Vec<f64> {
        (0..d)
            .map(|i| (0..d).map(|j| ata[i * d + j] * v[j]).sum())
            .collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut x = vec![0f64; d];
    let mut r = atb.clone();
    let mut p = r.clone();
    let mut rr = dot(&r, &r);
    let scale = rr.max(1e-300);
    for _ in 0..10 * d.max(1) {
        if rr <= 1e-28 * scale {
            break;
        }
        let ap = mul(&p);
        let alpha = rr / dot(&p, &ap);
        for i in 0..d {
            x[i] += alpha * p[i];
            r[i] -= alpha * ap[i];
        }
        let next = dot(&r, &r);
        for i in 0..d {
            p[i] = r[i] + next / rr * p[i];
        }
        rr = next;
    }
    let loss = t
        .features
        .chunks(d.max(1))
        .zip(&t.target)
        .map(|(a, &b)| {
            let s: f64 = a.iter().zip(&x).map(|(&u, v)| u as f64 * v).sum();
            (s - b as f64).powi(2)
        })
        .sum::<f64>()
        / (2.0 * n.max(1) as f64);
    (x, loss)
}

/// The level sets of a table's columns.
pub fn column_levels(t: &Table, bits: u32, kind: LevelKind) -> Result<Vec<Levels>, LevelsError> {
    let d = t.cols();
    (0..d)
        .map(|c| {
            let col: Vec<f32> = t.features.iter().skip(c).step_by(d).copied().collect();
            match kind {
                LevelKind::Uniform => Levels::uniform_for(&col, bits),
                LevelKind::Optimal => Levels::best_within(&col, bits).map(|(l, _)| l),
            }
        })
        .collect()
}

/// The logistic objective (1/N) sum log(1 + exp(-y a^T w)) + (l2/2)|w|^2 in f64 (labels
/// +-1), computed stably.
pub fn logistic_loss(t: &Table, w: &[f32], l2: f32) -> f64 {
    let w: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    logistic_loss_f64(t, &w, l2 as f64)
}

/// The logistic objective at f64 weights (`logistic_loss`'s arithmetic).
pub fn logistic_loss_f64(t: &Table, w: &[f64], l2: f64) -> f64 {
    let d = t.cols();
    let n = t.rows().max(1) as f64;
    let data: f64 = t
        .features
        .chunks(d.max(1))
        .zip(&t.target)
        .map(|(a, &y)| {
            let z: f64 = a.iter().zip(w).map(|(&x, v)| x as f64 * v).sum::<f64>();
            let m = -(y as f64) * z;
            m.max(0.0) + (-m.abs()).exp().ln_1p()
        })
        .sum::<f64>()
        / n;
    data + 0.5 * l2 * w.iter().map(|v| v.powi(2)).sum::<f64>()
}

/// The share of rows whose sign of a^T w is their label (+-1).
pub fn accuracy(t: &Table, w: &[f32]) -> f64 {
    let d = t.cols();
    let right = t
        .features
        .chunks(d.max(1))
        .zip(&t.target)
        .filter(|(a, y)| {
            let z: f64 = a.iter().zip(w).map(|(&x, &v)| x as f64 * v as f64).sum();
            (z > 0.0) == (**y > 0.0)
        })
        .count();
    right as f64 / t.rows().max(1) as f64
}

/// The share of rows classified right: None for least squares; the sign of a^T w against
/// labels +-1 for logistic regression; the largest a^T w_k against the class for softmax.
pub fn accuracy_of(t: &Table, w: &[f32], task: Task) -> Option<f64> {
    match task {
        Task::Lsq => None,
        Task::Logistic { .. } | Task::Svm { .. } => Some(accuracy(t, w)),
        Task::Softmax { classes, .. } => {
            let d = t.cols();
            let right = t
                .features
                .chunks(d.max(1))
                .zip(&t.target)
                .filter(|(a, y)| {
                    let score = |k: usize| -> f64 {
                        a.iter()
                            .zip(&w[k * d..(k + 1) * d])
                            .map(|(&x, &v)| x as f64 * v as f64)
                            .sum()
                    };
                    let best = (1..classes).fold(0, |b, k| if score(k) > score(b) { k } else { b });
                    best as f32 == **y
                })
                .count();
            Some(right as f64 / t.rows().max(1) as f64)
        }
    }
}

/// Monomial coefficients (of z^0 .. z^degree) of the polynomial that interpolates
/// sigma(-z) = 1 / (1 + e^z) at the degree + 1 Chebyshev nodes of [-range, range].
pub fn sigmoid_poly(degree: usize, range: f32) -> Vec<f32> {
    let n = degree + 1;
    let r = range as f64;
    let f = |x: f64| 1.0 / (1.0 + (r * x).exp());
    let nodes: Vec<f64> = (0..n)
        .map(|j| (std::f64::consts::PI * (j as f64 + 0.5) / n as f64).cos())
        .collect();
    // Chebyshev coefficients a_k, then T_k in monomials of x, then x = z / range.
    let mut mono = vec![0f64; n];
    let (mut t_prev, mut t_cur) = (vec![0f64; n], vec![0f64; n]);
    t_prev[0] = 1.0; // T_0
    if n > 1 {
        t_cur[1] = 1.0; // T_1
    }
    for k in 0..n {
        let tk = if k == 0 {
            t_prev.clone()
        } else {
            t_cur.clone()
        };
        let a = nodes
            .iter()
            .map(|&x| f(x) * (k as f64 * x.acos()).cos())
            .sum::<f64>()
            * if k == 0 { 1.0 } else { 2.0 }
            / n as f64;
        for (m, t) in mono.iter_mut().zip(&tk) {
            *m += a * t;
        }
        if k >= 1 {
            // T_(k+1) = 2 x T_k - T_(k-1)
            let mut next = vec![0f64; n];
            for i in 0..n {
                if i + 1 < n {
                    next[i + 1] += 2.0 * t_cur[i];
                }
                next[i] -= t_prev[i];
            }
            t_prev = std::mem::replace(&mut t_cur, next);
        }
    }
    mono.iter()
        .enumerate()
        .map(|(k, &m)| (m / r.powi(k as i32)) as f32)
        .collect()
}

/// Trains the model `cfg.task` on `train` (scaled, with its intercept; labels +-1 for
/// logistic regression) on the GPU `gpu`, or on the CPU reference where it is None (the two
/// give the same bits); calls `each` after every epoch with its figures and the weights.
pub fn train_linear(
    cfg: &LinearConfig,
    train: &Table,
    test: Option<&Table>,
    gpu: Option<&crate::gpu::GpuContext>,
    mut each: impl FnMut(&EpochMetrics, &[f32]),
) -> Result<Vec<f32>, LinearError> {
    let (n, d) = (train.rows(), train.cols());
    let loss = match (cfg.task, cfg.estimator) {
        (Task::Softmax { .. }, _) => {
            return Err(LinearError::Invalid(
                "softmax regression trains with --method (sgd, lp-sgd, svrg, lp-svrg, halp); \
                 ZipML's estimators take lsq and logistic"
                    .into(),
            ));
        }
        (Task::Lsq | Task::Svm { .. }, Estimator::Chebyshev) => {
            return Err(LinearError::Invalid(
                "the chebyshev estimator is for logistic regression (--task logistic)".into(),
            ));
        }
        (Task::Lsq | Task::Logistic { .. }, Estimator::Refetch) => {
            return Err(LinearError::Invalid(
                "the refetch estimator is for the SVM's hinge (--task svm)".into(),
            ));
        }
        (Task::Lsq, _) => Loss::Lsq,
        (Task::Svm { l2 }, _) => {
            check_labels(train, "the SVM")?;
            Loss::Hinge { l2 }
        }
        (Task::Logistic { l2 }, est) => {
            let valid = (1..=7).contains(&cfg.degree) && cfg.range.is_finite() && cfg.range > 0.0;
            if est == Estimator::Chebyshev && !valid {
                return Err(LinearError::Invalid(format!(
                    "a Chebyshev polynomial of degree {} on [-{r}, {r}]: the degree must be \
                     1 to 7 and the range positive",
                    cfg.degree,
                    r = cfg.range
                )));
            }
            check_labels(train, "logistic regression")?;
            Loss::Logistic {
                l2,
                poly: (est == Estimator::Chebyshev).then(|| sigmoid_poly(cfg.degree, cfg.range)),
            }
        }
    };
    let objective = |t: &Table, w: &[f32]| super::optimum::objective(t, w, cfg.task);
    let levels = match cfg.estimator {
        Estimator::Fp32 => None,
        _ => Some(column_levels(train, cfg.bits, cfg.levels)?),
    };
    let per_value = match cfg.estimator {
        Estimator::Double => 2,
        Estimator::Chebyshev => cfg.degree + 1,
        _ => 1,
    };
    let draw = |seed: u64| {
        levels
            .as_ref()
            .map(|l| QuantizedMatrix::new(&train.features, (n, d), l.clone(), per_value, seed))
    };
    fn as_samples<'a>(q: Option<&'a QuantizedMatrix>, t: &'a Table, est: Estimator) -> Samples<'a> {
        match q {
            Some(q) if est == Estimator::Refetch => Samples::Refetch(q, &t.features),
            Some(q) => Samples::Quantized(q, est),
            None => Samples::Fp32(&t.features, t.cols()),
        }
    }
    let mut quantized = draw(cfg.seed);
    let stored_bits = quantized.as_ref().map_or(32.0 * d as f64, |q| {
        let inside = (cfg.estimator == Estimator::Refetch) as usize;
        (q.bits_per_row() + inside * d) as f64
    });
    for (spec, what) in [(&cfg.model, "the model's"), (&cfg.grad, "the gradient's")] {
        if let Some(s) = spec {
            s.validate()
                .map_err(|e| LinearError::Invalid(format!("{what} format {}: {e}", s.format)))?;
        }
    }
    let mut w = vec![0f32; d];
    let batch = cfg.batch.clamp(1, n.max(1));
    let mut device = match gpu {
        Some(ctx) => {
            let samples = as_samples(quantized.as_ref(), train, cfg.estimator);
            let mut dev = crate::ops::linear::GpuLinear::new(ctx, &samples, &train.target, &loss)?;
            dev.set_rounding(cfg.model, cfg.grad, cfg.seed)?;
            Some(dev)
        }
        None => None,
    };
    // Steps taken before this epoch: the rounding's random streams.
    let mut steps = 0u64;
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        let lr = if cfg.decay {
            cfg.lr / epoch as f32
        } else {
            cfg.lr
        };
        let order = crate::data::dataset::shuffled(n, cfg.seed, 0x11ea + epoch as u32);
        if cfg.resample && epoch > 1 {
            quantized = draw(epoch_seed(cfg.seed, epoch, true));
            if let (Some(dev), Some(q)) = (device.as_mut(), quantized.as_ref()) {
                dev.set_up_bits(q)?;
            }
        }
        let samples = as_samples(quantized.as_ref(), train, cfg.estimator);
        let refetched = match device.as_mut() {
            Some(dev) => {
                let r = dev.epoch(&order, batch, lr, steps)?;
                w = dev.weights()?;
                r
            }
            None => {
                let mut r = 0;
                for (k, rows) in order.chunks(batch).enumerate() {
                    let step = steps + k as u64;
                    let (mut g, full) = batch_gradient(&samples, &train.target, rows, &w, &loss);
                    if let Some(spec) = &cfg.grad {
                        g = fake_quantize(&g, &step_spec(spec, cfg.seed, step, 0)).0;
                    }
                    sgd_step(&mut w, &g, lr);
                    if let Some(spec) = &cfg.model {
                        w = fake_quantize(&w, &step_spec(spec, cfg.seed, step, 1)).0;
                    }
                    r += full as u64;
                }
                r
            }
        };
        steps += n.div_ceil(batch) as u64;
        let refetching = cfg.estimator == Estimator::Refetch;
        let m = EpochMetrics {
            epoch,
            train_loss: objective(train, &w),
            test_loss: test.map(|t| objective(t, &w)),
            test_accuracy: test.and_then(|t| accuracy_of(t, &w, cfg.task)),
            lr,
            bits_per_sample: stored_bits + 32.0 * d as f64 * refetched as f64 / n.max(1) as f64,
            refetched: refetching.then_some(refetched),
            seconds: start.elapsed().as_secs_f64(),
        };
        each(&m, &w);
        if !m.train_loss.is_finite() {
            return Err(LinearError::Diverged {
                epoch,
                loss: m.train_loss,
            });
        }
    }
    Ok(w)
}

/// Refuses a table whose targets are not the labels -1 and +1.
fn check_labels(t: &Table, task: &str) -> Result<(), LinearError> {
    match t.target.iter().find(|&&y| y != 1.0 && y != -1.0) {
        Some(y) => Err(LinearError::Invalid(format!(
            "{task} takes labels -1 and +1, not {y}"
        ))),
        None => Ok(()),
    }
}

/// A synthetic least-squares problem with a known optimum: `n` rows of `d` features
/// uniform in [-1, 1] (the last is the intercept, 1), targets a^T w* plus Gaussian-ish noise
/// of standard deviation `noise`; returns the table and w*.
pub fn synthetic_lsq(n: usize, d: usize, noise: f32, seed: u64) -> (Table, Vec<f32>) {
    use crate::rng::random_bits;
    let u = |s: u32, i: u64| random_bits(seed, s, i) as f64 / 4294967296.0;
    let w: Vec<f32> = (0..d)
        .map(|c| (2.0 * u(1, c as u64) - 1.0) as f32)
        .collect();
    let mut features = Vec::with_capacity(n * d);
    let mut target = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<f32> = (0..d)
            .map(|c| {
                if c + 1 == d {
                    1.0
                } else {
                    (2.0 * u(2, (i * d + c) as u64) - 1.0) as f32
                }
            })
            .collect();
        // The sum of four uniforms, centred and scaled to unit variance.
        let z = ((0..4).map(|k| u(3, (4 * i + k) as u64)).sum::<f64>() - 2.0) * 3f64.sqrt();
        let y: f64 = row
            .iter()
            .zip(&w)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum::<f64>()
            + noise as f64 * z;
        features.extend(row);
        target.push(y as f32);
    }
    let mut names: Vec<String> = (1..d).map(|c| format!("x{c}")).collect();
    names.push("intercept".into());
    (
        Table {
            features,
            target,
            names,
        },
        w,
    )
}

/// `synthetic_lsq`'s set with its feature columns (the intercept aside) scaled
/// geometrically from 1 down to 1 / `spread`, the target unchanged: the smallest
/// eigenvalue of A^T A / N falls about as 1 / spread^2, so the condition number grows with
/// it.
pub fn synthetic_lsq_conditioned(n: usize, d: usize, noise: f32, spread: f64, seed: u64) -> Table {
    let (mut t, _) = synthetic_lsq(n, d, noise, seed);
    let scaled = d.saturating_sub(1);
    let s: Vec<f32> = (0..d)
        .map(|c| match c < scaled {
            true => spread.powf(-(c as f64) / (scaled.max(2) - 1) as f64) as f32,
            false => 1.0,
        })
        .collect();
    for row in t.features.chunks_mut(d.max(1)) {
        row.iter_mut().zip(&s).for_each(|(v, sc)| *v *= sc);
    }
    t
}
