//! Optimizer updates (SGD with momentum, Adam) on packed tensors, decoded as they load and
//! rounded as they store, and the loss-scale kernels that drive them, all in soft-float so
//! that they equal their reference twins (`reference::optim`) bit for bit.

use super::elementwise::{Work, record_io, record_io_quads, record_io_with};
use super::packed_io::{Dst, Src};
use crate::gpu::Encoder;
use crate::gpu::dispatch::record;
use crate::gpu::params::ElemParams;
use crate::gpu::{GpuContext, GpuError};
pub use crate::optim::{AdamStep, STEP_STATE_WORDS, Sgd, loss_scale_state};

/// The rule of an optimizer step and its constants.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// SGD with momentum, weight decay and optional Nesterov.
    Sgd(Sgd),
    /// Adam.
    Adam(AdamStep),
}

/// The value of a step an update dispatch stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The new weights (for the parameter and for its master copy).
    Weights = 0,
    /// The new velocity (Adam: first moment).
    Velocity = 1,
    /// Adam's new second moment.
    Moment2 = 2,
}

/// The operands one step reads: gradient, the weights it starts from (the master copy
/// where there is one), velocity (Adam's first moment), Adam's second moment.
#[derive(Clone, Copy)]
pub struct StepInputs<'a> {
    /// The gradient, times the loss scale.
    pub g: Src<'a>,
    /// The weights the step starts from.
    pub w: Src<'a>,
    /// The velocity, or Adam's first moment.
    pub v: Src<'a>,
    /// Adam's second moment.
    pub moment2: Option<Src<'a>>,
}

/// Records one optimizer step over `n` values, storing the value `which` into `out`: the
/// inputs decoded as they load, the gradient unscaled by (and the step skipped as) the
/// loss-scale state `ls` says (a skipped step stores the old value), the result rounded as
/// it is stored. The inputs are read, not written: `out` must be another buffer.
#[allow(clippy::too_many_arguments)]
pub fn record_update<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    rule: &Rule,
    ins: &StepInputs<'a>,
    ls: &wgpu::Buffer,
    n: usize,
    which: Stored,
    out: impl Into<Dst<'a>>,
) -> Result<(), GpuError> {
    let (entry, p, srcs) = match rule {
        Rule::Sgd(s) => (
            "sgd",
            ElemParams {
                lr: s.lr.to_bits(),
                mu: s.momentum.to_bits(),
                wd: s.weight_decay.to_bits(),
                nesterov: s.nesterov as u32,
                ..Default::default()
            },
            vec![ins.g, ins.w, ins.v],
        ),
        Rule::Adam(a) => {
            let m2 = ins
                .moment2
                .ok_or_else(|| GpuError::Invalid("an Adam step needs the second moment".into()))?;
            let p = ElemParams {
                lr: a.lr.to_bits(),
                mu: a.beta1.to_bits(),
                wd: a.weight_decay.to_bits(),
                beta1c: a.beta1c.to_bits(),
                beta2: a.beta2.to_bits(),
                beta2c: a.beta2c.to_bits(),
                eps: a.eps.to_bits(),
                ..Default::default()
            };
            ("adam", p, vec![ins.g, ins.w, ins.v, m2])
        }
    };
    if which == Stored::Moment2 && matches!(rule, Rule::Sgd(_)) {
        return Err(GpuError::Invalid("an SGD step has no second moment".into()));
    }
    let p = ElemParams {
        n: n as u32,
        which: which as u32,
        ..p
    };
    let own = [(4, ls)];
    let out = Some(out.into());
    // What is stored and how, compiled into the pipeline (update.wgsl).
    let nesterov = matches!(rule, Rule::Sgd(s) if s.nesterov);
    let constants = [
        ("WHICH", which as u32 as f64),
        ("DECAY", (f32::from_bits(p.wd) != 0.0) as u32 as f64),
        ("NESTEROV", nesterov as u32 as f64),
    ];
    let kernel = ("update", entry, &constants[..]);
    record_io_with(ctx, enc, kernel, Work::Quads, p, &own, &srcs, out)
}

/// Records SGD's new weights (without Nesterov) from the new velocity `v_new` as stored:
/// w - lr v', the old `w` where the loss-scale state `ls` skips the step; equal to
/// [`record_update`]'s weights where the velocity's store keeps every f32 value
/// ([`QuantSpec::holds_f32`](crate::quant::QuantSpec::holds_f32)). `out` must be another
/// buffer than `w`.
pub fn record_sgd_weights<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    lr: f32,
    (w, v_new): (Src<'a>, Src<'a>),
    ls: &wgpu::Buffer,
    n: usize,
    out: impl Into<Dst<'a>>,
) -> Result<(), GpuError> {
    let p = ElemParams {
        n: n as u32,
        lr: lr.to_bits(),
        ..Default::default()
    };
    let own = [(4, ls)];
    let (ins, out) = ([w, v_new], Some(out.into()));
    record_io_quads(ctx, enc, ("update", "sgd_weights"), p, &own, &ins, out)
}

/// A value bit-centred SVRG (HALP) stores for one parameter (S the loss scale of the
/// step state).
#[derive(Clone, Copy)]
pub enum SvrgValue<'a> {
    /// x itself (the centre, rounded as the parameter is).
    Copy(Src<'a>),
    /// a + b (the centre plus the offset).
    Sum(Src<'a>, Src<'a>),
    /// (g / S) times `factor` (1: a gradient kept; 1 / batches: a share of the full
    /// gradient, accumulated by an accumulating store).
    Unscaled(Src<'a>, f32),
    /// z - lr ((g / S - gc) + full): the offset's step.
    Step {
        /// The gradient at the point (times S).
        g: Src<'a>,
        /// The offset.
        z: Src<'a>,
        /// The gradient at the centre on the same batch (unscaled).
        gc: Src<'a>,
        /// The full gradient at the centre.
        full: Src<'a>,
        /// The step size.
        lr: f32,
    },
    /// Zero (the offset after re-centring); `like` is any operand of `n` values.
    Zero(Src<'a>),
}

/// Records one SVRG value over `n` values into `out` (inputs read, not written: `out` must
/// be another buffer), in soft-float; the twin of `reference::optim::svrg_value`.
pub fn record_svrg<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    value: &SvrgValue<'a>,
    ls: &wgpu::Buffer,
    n: usize,
    out: impl Into<Dst<'a>>,
) -> Result<(), GpuError> {
    let base = ElemParams {
        n: n as u32,
        ..Default::default()
    };
    let (entry, p, srcs) = match *value {
        SvrgValue::Copy(x) => ("svrg1", base, vec![x]),
        SvrgValue::Zero(x) => ("svrg1", ElemParams { which: 5, ..base }, vec![x]),
        SvrgValue::Unscaled(g, f) => (
            "svrg1",
            ElemParams {
                which: 3,
                mu: f.to_bits(),
                ..base
            },
            vec![g],
        ),
        SvrgValue::Sum(a, b) => ("svrg2", base, vec![a, b]),
        SvrgValue::Step { g, z, gc, full, lr } => (
            "svrg4",
            ElemParams {
                lr: lr.to_bits(),
                ..base
            },
            vec![g, z, gc, full],
        ),
    };
    // svrg2 does not read the step state (its layout has no binding for it).
    let own = [(4, ls)];
    let own = if entry == "svrg2" {
        &own[..0]
    } else {
        &own[..]
    };
    record_io(
        ctx,
        enc,
        ("update", entry),
        n,
        p,
        own,
        &srcs,
        Some(out.into()),
    )
}

/// Records x *= S over `n` values (S from the loss-scale state `ls`).
pub fn record_loss_scale_apply(
    ctx: &GpuContext,
    enc: &mut Encoder,
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
    enc: &mut Encoder,
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
