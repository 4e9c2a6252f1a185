//! A convolution's backward data pass by taps: the products of W and dY for every tap
//! (one GEMM of C KH KW rows, N OH OW columns and O products, dY its B operand as it is
//! stored), then each dX value the sum of its taps' products. Where the input is larger
//! than the output (valid convolutions, strides), that is fewer values than the im2col
//! view's (O KH KW x N H W), most of whose taps fall outside dY and read zero.

use super::gemm::{GemmView, Kernel, reads_input_rows, record_view};
use super::packed_io::{Dst, record_phases};
use crate::accum::GemmMode;
use crate::gpu::dispatch::record_with;
use crate::gpu::params::{ConvParams, SplitParams};
use crate::gpu::{Encoder, GpuContext, GpuError, Tensor};

/// Images per chunk of the tap products, when backward data pass `p` (a view `view`) runs
/// by taps on `ctx`; None where it runs as its im2col view: tap sums off, another pass or
/// accumulator, channel groups, no fewer values, or one image's products over the panel
/// budget.
pub fn tap_chunk(ctx: &GpuContext, view: &GemmView, p: &ConvParams) -> Option<usize> {
    let plain = p.pass == 1 && p.groups.max(1) == 1 && view.kernel == Kernel::TiledF32;
    if !ctx.tap_sums() || !plain || reads_input_rows(ctx, view, p) {
        return None;
    }
    let (cin, cout, taps) = (p.cin as usize, p.cout as usize, (p.kh * p.kw) as usize);
    let (sp, hw) = ((p.oh * p.ow) as usize, (p.h * p.w) as usize);
    // Per image: C KH KW x OH OW products against the im2col view's O KH KW x H W values.
    if cin * sp >= cout * hw {
        return None;
    }
    let chunk = ctx.panel_words() / (cin * taps * sp).max(1);
    (chunk >= 1).then(|| chunk.min(p.batch as usize))
}

/// Records backward data pass `p` by taps, `chunk` images at a time, into `dst`: W is `w`
/// ([O, C, KH, KW]), dY is `dy` ([N, O, OH, OW]).
pub fn record_by_taps<'c>(
    ctx: &GpuContext,
    enc: &mut Encoder,
    p: ConvParams,
    (w, dy): (&Tensor, &Tensor),
    chunk: usize,
    dst: impl Into<Dst<'c>>,
) -> Result<(), GpuError> {
    let (cin, cout, taps) = (p.cin as usize, p.cout as usize, (p.kh * p.kw) as usize);
    let (batch, sp, hw) = (
        p.batch as usize,
        (p.oh * p.ow) as usize,
        (p.h * p.w) as usize,
    );
    let products = ctx.scratch("convolution tap products", cin * taps * sp * chunk)?;
    let no_bias = ctx.scratch("no bias", 1)?;
    let (fa, fb) = (&w.spec().format, &dy.spec().format);
    // A scaled output takes two phases (its amax, then its stores): the products are
    // recomputed for each, as the im2col view's sums would be.
    record_phases(ctx, enc, &[], Some(dst.into()), |enc, io| {
        for img0 in (0..batch).step_by(chunk) {
            let images = chunk.min(batch - img0);
            let (m, n) = (cin * taps, images * sp);
            let tp = ConvParams {
                pass: 3,
                m: m as u32,
                n: n as u32,
                k: cout as u32,
                batch: images as u32,
                img0: img0 as u32,
                has_bias: 0,
                ..p
            };
            let view = GemmView::new("conv", GemmMode::Fp32, fa, fb, (m, n, cout));
            record_view(ctx, enc, &view, tp, w, dy, &no_bias, &*products)?;
            let values = images * cin * hw;
            let mut bindings = vec![(6, &*products)];
            bindings.extend(io.bindings());
            let constants = tp.constants();
            let kernel = ("conv_taps", "main", constants.as_slice());
            record_with(ctx, enc, kernel, &io.spec(), values as u32, tp, &bindings)?;
        }
        Ok(())
    })
}
