//! GEMM on the GPU over packed operands: C = op(A) op(B) (+ bias), quantized to its format.

use super::quantize::quantize_buffer;
use crate::accum::{Accumulator, GemmMode, GemmSpec};
use crate::gpu::buffers::{upload_f32, zeroed};
use crate::gpu::dispatch::{record, record_groups};
use crate::gpu::params::{DispatchParams, FmtParams, GemmParams, scaling_id};
use crate::gpu::{GpuContext, GpuError, Tensor};
use crate::quant::{Exceptions, QuantSpec};

/// Output tile of the f32 kernel (`TM` x `TN` in `shaders/gemm_f32.wgsl`).
const TILE: usize = 64;

/// A GEMM-shaped dispatch: which kernels, which mode, the view's rows and columns.
#[derive(Clone, Copy, Debug)]
pub struct GemmView {
    /// (f32 kernel, exact kernel).
    pub kernel: (&'static str, &'static str),
    /// How it accumulates.
    pub mode: GemmMode,
    /// Rows of the view.
    pub m: usize,
    /// Columns of the view.
    pub n: usize,
}

/// The id of a mode in the kernels' parameters.
pub(crate) fn mode_id(mode: GemmMode) -> u32 {
    match mode {
        GemmMode::Fp32 => 0,
        GemmMode::ExactInteger => 1,
        GemmMode::Emulated => 2,
    }
}

/// The accumulator format's parameters and chunk (zeros for fp32).
pub(crate) fn acc_params(acc: &Accumulator) -> (FmtParams, u32) {
    match acc {
        Accumulator::Emulated { format, chunk } => (
            FmtParams::new(&format.element()),
            (*chunk).min(u32::MAX as usize) as u32,
        ),
        Accumulator::Fp32 => (FmtParams::default(), 0),
    }
}

/// Checks a GEMM of `a` and `b` and builds its dispatch: `(view, params, k)`.
pub fn prepare_gemm(
    a: &Tensor,
    b: &Tensor,
    bias_len: Option<usize>,
    spec: &GemmSpec,
) -> Result<(GemmView, GemmParams, usize), GpuError> {
    let invalid = |e: crate::accum::GemmError| GpuError::Invalid(e.0);
    let (m, n, k) = spec.dims(a.shape(), b.shape(), bias_len).map_err(invalid)?;
    let mode = spec
        .mode(&a.spec().format, &b.spec().format, k)
        .map_err(invalid)?;
    let (facc, chunk) = acc_params(&spec.acc);
    let params = GemmParams {
        fa: FmtParams::new(&a.spec().format.element()),
        fb: FmtParams::new(&b.spec().format.element()),
        facc,
        m: m as u32,
        n: n as u32,
        k: k as u32,
        trans_a: spec.trans_a as u32,
        trans_b: spec.trans_b as u32,
        a_scaling: scaling_id(a.spec()),
        b_scaling: scaling_id(b.spec()),
        mode: mode_id(mode),
        chunk,
        has_bias: bias_len.is_some() as u32,
        ..Default::default()
    };
    let view = GemmView {
        kernel: ("gemm_f32", "gemm_exact"),
        mode,
        m,
        n,
    };
    Ok((view, params, k))
}

/// Multiplies two packed tensors on the GPU; returns C (shape m x n) and its exception counts.
pub fn gemm(
    ctx: &GpuContext,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&[f32]>,
    spec: &GemmSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let (view, params, _) = prepare_gemm(a, b, bias.map(<[f32]>::len), spec)?;
    finish_view(ctx, &view, params, a, b, bias, &[view.m, view.n], &spec.out)
}

/// Records a GEMM view's sums (bias added) into the f32 buffer `c` (m x n words).
#[allow(clippy::too_many_arguments)]
pub fn record_view<P: DispatchParams>(
    ctx: &GpuContext,
    enc: &mut wgpu::CommandEncoder,
    view: &GemmView,
    params: P,
    a: &Tensor,
    b: &Tensor,
    bias: &wgpu::Buffer,
    c: &wgpu::Buffer,
) -> Result<(), GpuError> {
    let (m, n) = (view.m, view.n);
    let cells = m as u64 * n as u64;
    if cells >= 1 << 32
        || m.div_ceil(TILE) > u16::MAX as usize
        || n.div_ceil(TILE) > u16::MAX as usize
    {
        return Err(GpuError::TooLarge {
            what: format!("a {m}x{n} GEMM result"),
            bytes: cells * 4,
            limit: u32::MAX as u64,
        });
    }
    let none = zeroed(ctx, "no scales", 1)?;
    let bindings = [
        (1, a.words()),
        (2, a.scales().unwrap_or(&none)),
        (3, b.words()),
        (4, b.scales().unwrap_or(&none)),
        (5, bias),
        (6, c),
    ];
    match view.mode {
        GemmMode::Fp32 => {
            let grid = (n.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32);
            record_groups(ctx, enc, view.kernel.0, "main", grid, &params, &bindings)
        }
        _ => record(
            ctx,
            enc,
            view.kernel.1,
            "main",
            cells as u32,
            params,
            &bindings,
        ),
    }
}

/// Runs a GEMM view and quantizes its sums into a tensor of `out_shape`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_view<P: DispatchParams>(
    ctx: &GpuContext,
    view: &GemmView,
    params: P,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&[f32]>,
    out_shape: &[usize],
    out: &QuantSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let c = zeroed(ctx, "gemm sums", view.m * view.n)?;
    let bias_buf = upload_f32(ctx, "bias", bias.unwrap_or(&[0.0]))?;
    let mut enc = ctx.device.create_command_encoder(&Default::default());
    record_view(ctx, &mut enc, view, params, a, b, &bias_buf, &c)?;
    ctx.queue.submit([enc.finish()]);
    quantize_buffer(ctx, &c, out_shape, out)
}
