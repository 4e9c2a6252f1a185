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

/// Adam's constants for one step, bias corrections included.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// lr / (1 - beta1^t).
    pub lr_t: f32,
    /// beta1.
    pub beta1: f32,
    /// 1 - beta1.
    pub beta1c: f32,
    /// beta2.
    pub beta2: f32,
    /// 1 - beta2.
    pub beta2c: f32,
    /// 1 / sqrt(1 - beta2^t).
    pub bc2: f32,
    /// epsilon.
    pub eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
}

impl AdamStep {
    /// The constants of step `t` (1 for the first update), computed in f64 and rounded once.
    pub fn new(lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32, t: u64) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        let (b1, b2) = (beta1 as f64, beta2 as f64);
        AdamStep {
            lr_t: (lr as f64 / (1.0 - b1.powi(t))) as f32,
            beta1,
            beta1c: (1.0 - b1) as f32,
            beta2,
            beta2c: (1.0 - b2) as f32,
            bc2: (1.0 / (1.0 - b2.powi(t)).sqrt()) as f32,
            eps,
            weight_decay,
        }
    }
}

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
        lr: a.lr_t.to_bits(),
        mu: a.beta1.to_bits(),
        wd: a.weight_decay.to_bits(),
        beta1c: a.beta1c.to_bits(),
        beta2: a.beta2.to_bits(),
        beta2c: a.beta2c.to_bits(),
        bc2: a.bc2.to_bits(),
        eps: a.eps.to_bits(),
        ..Default::default()
    };
    let bindings = [(1, g), (2, w), (3, m), (4, ls), (5, v)];
    record(ctx, enc, "adam", "main", n as u32, p, &bindings)
}

/// The four words of a loss-scale state buffer with scale `scale` (a power of two):
/// [scale, skip, 1 / scale, good steps].
pub fn loss_scale_state(scale: f32) -> [u32; 4] {
    [scale.to_bits(), 0, (1.0 / scale).to_bits(), 0]
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

/// Records the loss-scale update from the gradients' exception counts `grad_stats`
/// (`dynamic`: halve on overflow and skip, double after `interval` good steps).
pub fn record_loss_scale_update(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    ls: &wgpu::Buffer,
    grad_stats: &wgpu::Buffer,
    dynamic: bool,
    interval: u32,
) -> Result<(), GpuError> {
    let p = ElemParams {
        n: 1,
        dynamic: dynamic as u32,
        interval: interval.max(1),
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
