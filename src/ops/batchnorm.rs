//! 2-D batch normalization (NCHW), in soft-float: equal to the CPU twin
//! `reference::batchnorm` bit for bit. Per channel: statistics, normalization, and the
//! backward pass from per-channel gradient sums. x and g are read packed (decoded as they
//! load) or as f32 words, y and dx written packed (rounded as they store) or as f32.

use super::elementwise::{Work, record_io_with, shape_constants};
use super::elementwise::{record_col_sum, record_col_sum_of};
use super::packed_io::{Dst, Src};
use crate::gpu::Encoder;
use crate::gpu::dispatch::record;
use crate::gpu::params::ElemParams;
use crate::gpu::{GpuContext, GpuError};
pub use crate::layer_geometry::BatchNorm;

impl BatchNorm {
    fn params(&self, n: usize) -> ElemParams {
        let (inv_m, m, unbias, keep) = self.constants();
        ElemParams {
            n: n as u32,
            rows: self.batch as u32,
            cols: self.channels as u32,
            inner: self.pixels as u32,
            scale: inv_m.to_bits(),
            bn_m: m.to_bits(),
            bn_unbias: unbias.to_bits(),
            mu: self.momentum.to_bits(),
            bn_keep: keep.to_bits(),
            eps: self.eps.to_bits(),
            ..Default::default()
        }
    }
}

/// Records the per-channel statistics into `stat` ([6][C]: mean, 1 / sqrt(var + eps),
/// running mean, running variance, then the backward sums): from the batch `x` when
/// training (updating the running statistics), else from the running statistics.
pub fn record_bn_stats<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    stat: &wgpu::Buffer,
    bn: &BatchNorm,
    train: bool,
) -> Result<(), GpuError> {
    let c = bn.channels;
    let p = bn.params(c);
    if !train {
        return record(
            ctx,
            enc,
            "batchnorm",
            "set_running",
            c as u32,
            p,
            &[(5, stat)],
        );
    }
    let x = x.into();
    let shape = (bn.batch, c, bn.pixels);
    let sums = ctx.scratch("batch-norm sums", c)?;
    record_col_sum(ctx, enc, x, &sums, shape)?;
    record(
        ctx,
        enc,
        "batchnorm",
        "set_mean",
        c as u32,
        p,
        &[(2, &sums), (5, stat)],
    )?;
    record_col_sum_of(ctx, enc, ("partial_sq", &[x], Some(stat)), &sums, shape)?;
    record(
        ctx,
        enc,
        "batchnorm",
        "set_var",
        c as u32,
        p,
        &[(2, &sums), (5, stat)],
    )
}

/// Records y = gamma (x - mean) inv + beta (`gamma_beta`: gamma then beta, C each).
pub fn record_bn_forward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    x: impl Into<Src<'a>>,
    (gamma_beta, stat): (&wgpu::Buffer, &wgpu::Buffer),
    y: impl Into<Dst<'a>>,
    bn: &BatchNorm,
) -> Result<(), GpuError> {
    let n = bn.count() * bn.channels;
    let p = bn.params(n);
    let b = [(4, gamma_beta), (5, stat)];
    let (ins, out) = ([x.into()], Some(y.into()));
    let constants = bn_constants(ctx, bn);
    let kernel = ("batchnorm", "forward", constants.as_slice());
    record_io_with(ctx, enc, kernel, Work::Quads, p, &b, &ins, out)
}

/// The layer's channels and pixels as the per-element kernels' constants.
fn bn_constants(ctx: &GpuContext, bn: &BatchNorm) -> Vec<(&'static str, f64)> {
    let shape = [("BN_COLS", bn.channels), ("BN_INNER", bn.pixels)];
    shape_constants(ctx, "BN", &shape)
}

/// Records the backward pass: dbeta and dgamma into `stat`, dx into `dx`.
pub fn record_bn_backward<'a>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    (x, g): (impl Into<Src<'a>>, impl Into<Src<'a>>),
    (gamma_beta, stat): (&wgpu::Buffer, &wgpu::Buffer),
    dx: impl Into<Dst<'a>>,
    bn: &BatchNorm,
) -> Result<(), GpuError> {
    let (x, g) = (x.into(), g.into());
    let c = bn.channels;
    let n = bn.count() * c;
    let shape = (bn.batch, c, bn.pixels);
    let row = 4 * c as u64;
    let sums = ctx.scratch("batch-norm sums", c)?;
    record_col_sum(ctx, enc, g, &sums, shape)?;
    enc.copy_buffer_to_buffer(&sums, 0, stat, 4 * row, row);
    let p = bn.params(n);
    record_col_sum_of(
        ctx,
        enc,
        ("partial_gxhat", &[x, g], Some(stat)),
        &sums,
        shape,
    )?;
    enc.copy_buffer_to_buffer(&sums, 0, stat, 5 * row, row);
    let b = [(4, gamma_beta), (5, stat)];
    let out = Some(dx.into());
    let constants = bn_constants(ctx, bn);
    let kernel = ("batchnorm", "backward", constants.as_slice());
    record_io_with(ctx, enc, kernel, Work::Quads, p, &b, &[x, g], out)
}
