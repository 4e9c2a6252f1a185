//! Optimizer updates on f32 GPU buffers (SGD with momentum, Adam) and the loss-scale
//! kernels that drive them, all in soft-float so that they equal their reference twins
//! (`reference::optim`) bit for bit.

use crate::gpu::dispatch::record;
use crate::gpu::params::ElemParams;
use crate::gpu::{GpuContext, GpuError};

/// SGD hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum.
    pub momentum: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Adam's constants for one step. The bias corrections depend on how many updates were
/// applied (a step skipped by loss scaling does not count, as in PyTorch), which only the
/// device knows: the loss-scale update kernel keeps them in the step state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// beta1.
    pub beta1: f32,
    /// 1 - beta1.
    pub beta1c: f32,
    /// beta2.
    pub beta2: f32,
    /// 1 - beta2.
    pub beta2c: f32,
    /// epsilon.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
}

impl AdamStep {
    /// The constants of a step with learning rate `lr`.
    pub fn new(lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> Self {
        let (b1, b2) = (beta1 as f64, beta2 as f64);
        AdamStep {
            lr,
            beta1,
            beta1c: (1.0 - b1) as f32,
            beta2,
            beta2c: (1.0 - b2) as f32,
            eps,
            weight_decay,
        }
    }

    /// ln(beta1) and ln(beta2), from which the step state's bias corrections come.
    pub fn ln_betas(&self) -> [f32; 2] {
        [
            (self.beta1 as f64).ln() as f32,
            (self.beta2 as f64).ln() as f32,
        ]
    }
}

/// Words of the step state buffer: [loss scale S, skip this step's update, 1 / S of this
/// step, good steps since S last changed, updates applied, 1 / (1 - beta1^t),
/// 1 / sqrt(1 - beta2^t), 0], t being the updates applied (Adam's bias corrections).
pub const STEP_STATE_WORDS: usize = 8;

/// Records one SGD step over `n` weights `w` with velocity `v` and gradient `g` (in place),
/// the gradient unscaled by (and the step skipped as) the loss-scale state `ls` says.
#[allow(clippy::too_many_arguments)]
pub fn record_sgd(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    g: &wgpu::Buffer,
    w: &wgpu::Buffer,
    v: &wgpu::Buffer,
    ls: &wgpu::Buffer,
    n: usize,
    s: &Sgd,
) -> Result<(), GpuError> {
    let p = ElemParams {
        n: n as u32,
        lr: s.lr.to_bits(),
        mu: s.momentum.to_bits(),
        wd: s.weight_decay.to_bits(),
        nesterov: s.nesterov as u32,
        ..Default::default()
    };
    let bindings = [(1, g), (2, w), (3, v), (4, ls)];
    record(ctx, enc, "sgd", "main", n as u32, p, &bindings)
}

/// Records one Adam step over `n` weights `w` with moments `m`, `v` and gradient `g`
/// (in place), unscaled and skipped as the loss-scale state `ls` says.
#[allow(clippy::too_many_arguments)]
pub fn record_adam(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    g: &wgpu::Buffer,
    w: &wgpu::Buffer,
    (m, v): (&wgpu::Buffer, &wgpu::Buffer),
    ls: &wgpu::Buffer,
    n: usize,
    a: &AdamStep,
) -> Result<(), GpuError> {
    let p = ElemParams {
        n: n as u32,
        lr: a.lr.to_bits(),
        mu: a.beta1.to_bits(),
        wd: a.weight_decay.to_bits(),
        beta1c: a.beta1c.to_bits(),
        beta2: a.beta2.to_bits(),
        beta2c: a.beta2c.to_bits(),
        eps: a.eps.to_bits(),
        ..Default::default()
    };
    let bindings = [(1, g), (2, w), (3, m), (4, ls), (5, v)];
    record(ctx, enc, "adam", "main", n as u32, p, &bindings)
}

/// The step state before the first step, with loss scale `scale` (a power of two): no
/// update applied yet (see [`STEP_STATE_WORDS`]).
pub fn loss_scale_state(scale: f32) -> [u32; STEP_STATE_WORDS] {
    [scale.to_bits(), 0, (1.0 / scale).to_bits(), 0, 0, 0, 0, 0]
}

/// Records x *= S over `n` values (S from the loss-scale state `ls`).
pub fn record_loss_scale_apply(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    ls: &wgpu::Buffer,
    n: usize,
) -> Result<(), GpuError> {
    let p = ElemParams {
        n: n as u32,
        ..Default::default()
    };
    record(
        ctx,
        enc,
        "loss_scale",
        "apply",
        n as u32,
        p,
        &[(1, x), (4, ls)],
    )
}

/// Records the step-state update from the gradients' exception counts `grad_stats`
/// (`dynamic`: halve on overflow and skip, double after `interval` good steps), counting
/// the update unless skipped and setting Adam's bias corrections for it from `ln_betas`.
pub fn record_loss_scale_update(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    ls: &wgpu::Buffer,
    grad_stats: &wgpu::Buffer,
    (dynamic, interval): (bool, u32),
    ln_betas: [f32; 2],
) -> Result<(), GpuError> {
    let p = ElemParams {
        n: 1,
        dynamic: dynamic as u32,
        interval: interval.max(1),
        ln_beta1: ln_betas[0].to_bits(),
        ln_beta2: ln_betas[1].to_bits(),
        ..Default::default()
    };
    crate::gpu::dispatch::record_groups(
        ctx,
        enc,
        "loss_scale",
        "update",
        (1, 1),
        &p,
        &[(4, ls), (5, grad_stats)],
    )
}
