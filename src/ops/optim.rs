//! Optimizer updates on f32 GPU buffers (SGD with momentum, Adam) and the loss-scale
//! kernels that drive them, all in soft-float so that they equal their reference twins
//! (`reference::optim`) bit for bit.

use crate::gpu::dispatch::record;
use crate::gpu::params::ElemParams;
use crate::gpu::{GpuContext, GpuError};
pub use crate::optim::{AdamStep, STEP_STATE_WORDS, Sgd, loss_scale_state};

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
