//! 2-D convolutions (NCHW) on the GPU: forward, backward data, backward weight, each an
//! implicit GEMM over packed operands with the same accumulator and output options.

use super::conv_taps::{record_by_taps, tap_chunk};
use super::gemm::{GemmView, acc_params, finish_view, mode_id, record_view};
use super::packed_io::Dst;
use crate::conv::{Conv2dSpec, ConvGeometry, ConvPass};
use crate::gpu::params::{ConvParams, FmtParams, scaling_id};
use crate::gpu::{Encoder, GpuContext, GpuError, Tensor};
use crate::quant::Exceptions;

fn invalid(e: crate::accum::GemmError) -> GpuError {
    GpuError::Invalid(e.0)
}

/// Y = conv(X, W) (+ bias per output channel): `x` [N,C,H,W], `w` [O,C,KH,KW].
pub fn conv2d_forward(
    ctx: &GpuContext,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&[f32]>,
    spec: &Conv2dSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let g = spec.geometry(x.shape(), w.shape()).map_err(invalid)?;
    run(ctx, ConvPass::Forward, &g, w, x, bias, spec)
}

/// dX from dY [N,O,OH,OW] and W [O,C,KH,KW], for an input of height and width `input_hw`.
pub fn conv2d_backward_data(
    ctx: &GpuContext,
    dy: &Tensor,
    w: &Tensor,
    input_hw: [usize; 2],
    spec: &Conv2dSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let g = spec
        .geometry_backward_data(dy.shape(), w.shape(), input_hw)
        .map_err(invalid)?;
    run(ctx, ConvPass::BackwardData, &g, w, dy, None, spec)
}

/// dW from dY [N,O,OH,OW] and X [N,C,H,W], for a kernel of size `kernel_hw`.
pub fn conv2d_backward_weight(
    ctx: &GpuContext,
    dy: &Tensor,
    x: &Tensor,
    kernel_hw: [usize; 2],
    spec: &Conv2dSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let g = spec
        .geometry_backward_weight(dy.shape(), x.shape(), kernel_hw)
        .map_err(invalid)?;
    run(ctx, ConvPass::BackwardWeight, &g, dy, x, None, spec)
}

fn run(
    ctx: &GpuContext,
    pass: ConvPass,
    g: &ConvGeometry,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&[f32]>,
    spec: &Conv2dSpec,
) -> Result<(Tensor, Exceptions), GpuError> {
    let (view, params) = prepare_conv(pass, g, a, b, bias.map(<[f32]>::len), spec)?;
    let out_shape = g.out_shape(pass);
    finish_view(ctx, bias, &out_shape, &spec.out, |enc, bias, c| {
        record_conv(ctx, enc, &view, params, (a, b), bias, c)
    })
}

/// Records a convolution pass prepared by [`prepare_conv`] into `c`: its GEMM view, or, for
/// a backward data pass where that is fewer values, its per-tap products and their sums.
pub fn record_conv<'c>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    view: &GemmView,
    params: ConvParams,
    (a, b): (&Tensor, &Tensor),
    bias: &wgpu::Buffer,
    c: impl Into<Dst<'c>>,
) -> Result<(), GpuError> {
    match tap_chunk(ctx, view, &params) {
        Some(chunk) => record_by_taps(ctx, enc, params, (a, b), chunk, c),
        None => record_view(ctx, enc, view, params, a, b, bias, c),
    }
}

/// Checks one convolution pass with operands `a` (A of the GEMM view) and `b`, and builds
/// its dispatch.
pub fn prepare_conv(
    pass: ConvPass,
    g: &ConvGeometry,
    a: &Tensor,
    b: &Tensor,
    bias_len: Option<usize>,
    spec: &Conv2dSpec,
) -> Result<(GemmView, ConvParams), GpuError> {
    g.check_bias(pass, bias_len).map_err(invalid)?;
    let (m, n, k) = g.gemm_dims(pass);
    let gs = spec.gemm_spec();
    let mode = gs
        .mode(&a.spec().format, &b.spec().format, k)
        .map_err(invalid)?;
    let (facc, chunk) = acc_params(&spec.acc);
    let u = |v: usize| v as u32;
    let params = ConvParams {
        fa: FmtParams::new(&a.spec().format.element()),
        fb: FmtParams::new(&b.spec().format.element()),
        facc,
        m: u(m),
        n: u(n),
        k: u(k),
        pass: pass.id(),
        a_scaling: scaling_id(a.spec()),
        b_scaling: scaling_id(b.spec()),
        mode: mode_id(mode),
        chunk,
        has_bias: bias_len.is_some() as u32,
        batch: u(g.batch),
        cin: u(g.cin),
        h: u(g.h),
        w: u(g.w),
        cout: u(g.cout),
        kh: u(g.kh),
        kw: u(g.kw),
        oh: u(g.oh),
        ow: u(g.ow),
        stride_h: u(g.stride[0]),
        stride_w: u(g.stride[1]),
        pad_h: u(g.padding[0]),
        pad_w: u(g.padding[1]),
        dil_h: u(g.dilation[0]),
        dil_w: u(g.dilation[1]),
        groups: u(g.groups),
        ..Default::default()
    };
    let view = GemmView::new("conv", mode, &a.spec().format, &b.spec().format, (m, n, k));
    Ok((view, params))
}
