//! HALP (De Sa et al., arXiv 1803.03383) and the methods it is measured against, for linear
//! models: SGD, LP-SGD (the iterate in b-bit scaled fixed point, one fixed scale), SVRG,
//! LP-SVRG (SVRG with such an iterate) and HALP (SVRG whose low-precision offset z from a
//! full-precision centre is re-centred and re-scaled every epoch: delta = |g~| / (mu
//! (2^(b-1) - 1))), for least squares, logistic and softmax regression. The inner loop
//! runs on the GPU (`ops::halp`) or on its CPU reference (`reference::halp`), bit for bit
//! alike; the driver here is one for both.

use super::linear::{LinearError, Task};
use super::optimum::{gradient_norm, objective, strong_convexity};
use crate::data::table::Table;
use crate::glm::{InnerSteps, Rows};
use crate::gpu::GpuContext;
use crate::ops::halp::GpuHalp;
use crate::reference::halp::{self as cpu, Centre};
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

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt()
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

/// Where the inner loop runs: the CPU reference (holding its centre) or the GPU.
enum Engine<'c, 'r> {
    Cpu(Rows<'r>, Option<Centre>),
    Gpu(Box<GpuHalp<'c>>),
}

impl Engine<'_, '_> {
    /// Sets the centre; the full gradient there.
    fn set_centre(&mut self, w: &[f32], task: Task) -> Result<Vec<f32>, LinearError> {
        match self {
            Engine::Cpu(rows, c) => {
                let made = cpu::centre(rows, w, &task);
                let full = made.full.clone();
                *c = Some(made);
                Ok(full)
            }
            Engine::Gpu(g) => g.set_centre(w).map_err(gpu_error),
        }
    }

    fn inner(
        &mut self,
        start: &[f32],
        s: &InnerSteps,
        task: Task,
    ) -> Result<(Vec<f32>, u64), LinearError> {
        match self {
            Engine::Cpu(rows, c) => Ok(cpu::inner(rows, &task, c.as_ref(), start, s)),
            Engine::Gpu(g) => g.inner(start, s).map_err(gpu_error),
        }
    }
}

fn gpu_error(e: crate::gpu::GpuError) -> LinearError {
    LinearError::Invalid(format!("on the GPU: {e}"))
}

/// Checks the targets fit the task: labels +-1 for logistic regression, class indices
/// below the classes for softmax.
fn check_targets(t: &Table, task: Task) -> Result<(), LinearError> {
    let bad = match task {
        Task::Lsq => t.target.iter().find(|y| !y.is_finite()),
        Task::Logistic { .. } | Task::Svm { .. } => {
            t.target.iter().find(|&&y| y != 1.0 && y != -1.0)
        }
        Task::Softmax { classes, .. } => t
            .target
            .iter()
            .find(|&&y| !(y >= 0.0 && y < classes as f32 && y.fract() == 0.0)),
    };
    match bad {
        Some(y) => Err(LinearError::Invalid(format!(
            "the target {y} does not fit {}",
            match task {
                Task::Lsq => "least squares (a finite value)".to_string(),
                Task::Logistic { .. } | Task::Svm { .. } =>
                    "two classes (labels -1 and +1)".to_string(),
                Task::Softmax { classes, .. } =>
                    format!("softmax over classes 0 to {}", classes - 1),
            }
        ))),
        None => Ok(()),
    }
}

/// Trains `cfg.method` on `train` (scaled, with its intercept; labels +-1 for logistic
/// regression, class indices for softmax) from zero weights, on the GPU `gpu` or on the CPU
/// reference where it is None (the same bits); `optimum_loss` is the f64 optimum the gap is
/// measured from. Calls `each` after every epoch with its figures and the weights.
pub fn train_halp(
    cfg: &HalpConfig,
    train: &Table,
    optimum_loss: f64,
    gpu: Option<&GpuContext>,
    mut each: impl FnMut(&HalpEpoch, &[f32]),
) -> Result<Vec<f32>, LinearError> {
    let (n, d) = (train.rows(), train.cols());
    if n == 0 || d == 0 {
        return Err(LinearError::Invalid("no training rows".into()));
    }
    if let Task::Softmax { classes, .. } = cfg.task
        && classes < 2
    {
        return Err(LinearError::Invalid(format!(
            "softmax over {classes} classes: at least 2 are needed"
        )));
    }
    if let Task::Svm { .. } = cfg.task {
        return Err(LinearError::Invalid(
            "the SVM's hinge is not smooth, which HALP's and SVRG's analysis needs: train it \
             with ZipML's estimators (--estimator fp32|naive|double|refetch)"
                .into(),
        ));
    }
    check_targets(train, cfg.task)?;
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
    let rows = Rows {
        x: &train.features,
        cols: d,
        y: &train.target,
    };
    let mut engine = match gpu {
        Some(ctx) => Engine::Gpu(Box::new(
            GpuHalp::new(ctx, &rows, &cfg.task).map_err(gpu_error)?,
        )),
        None => Engine::Cpu(rows, None),
    };
    let batch = cfg.batch.clamp(1, n);
    let inner = cfg.inner.unwrap_or(n.div_ceil(batch)).max(1);
    let weights = d * cfg.task.outputs();
    // The centre (SVRG, HALP) or the iterate (SGD, LP-SGD), from zero.
    let mut w = vec![0f32; weights];
    // LP-SGD and LP-SVRG keep the grid HALP starts with: the one of the first full gradient.
    let fixed = match cfg.method {
        Method::LpSgd | Method::LpSvrg => {
            Some(grid_for(&engine.set_centre(&w, cfg.task)?, mu, cfg.bits)?)
        }
        _ => None,
    };
    let mut step: u64 = 0;
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        let order = crate::data::dataset::shuffled(n, cfg.seed, 0x4a1f + epoch as u32);
        let svrg = matches!(cfg.method, Method::Svrg | Method::LpSvrg | Method::Halp);
        let halp = cfg.method == Method::Halp;
        let mut grid = fixed;
        if svrg {
            let full = engine.set_centre(&w, cfg.task)?;
            if halp {
                grid = Some(grid_for(&full, mu, cfg.bits)?);
            }
        }
        let steps = InnerSteps {
            order: &order,
            batch,
            steps: inner,
            lr: cfg.lr,
            svrg,
            offset: halp,
            grid,
            seed: cfg.seed,
            step0: step,
        };
        // HALP steps the offset z from the centre, from zero; the others the point itself.
        let from = if halp { vec![0f32; weights] } else { w.clone() };
        let (x, saturated) = engine.inner(&from, &steps, cfg.task)?;
        step += inner as u64;
        w = match halp {
            true => w.iter().zip(&x).map(|(c, z)| c + z).collect(),
            false => x,
        };
        let train_loss = objective(train, &w, cfg.task);
        let m = HalpEpoch {
            epoch,
            train_loss,
            gap: train_loss - optimum_loss,
            grad_norm: gradient_norm(train, &w, cfg.task),
            scale: grid.map(|g| g.scale),
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
