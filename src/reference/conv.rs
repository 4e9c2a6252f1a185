//! CPU reference convolutions (NCHW): the GEMM-based twin of the GPU kernels, and a
//! direct-loop version in f64 that shares no index arithmetic with it.

use super::gemm::{GemmResult, Operand, sums};
use super::quantize::{Quantized, quantize};
use crate::accum::GemmError;
use crate::conv::{Conv2dSpec, ConvGeometry, ConvPass};

/// One pass as a GEMM over virtual operands: forward (a = W, b = X), backward data
/// (a = W, b = dY) or backward weight (a = dY, b = X). Bias (forward only) is per channel.
pub fn conv2d(
    pass: ConvPass,
    g: &ConvGeometry,
    a: &Quantized,
    b: &Quantized,
    bias: Option<&[f32]>,
    spec: &Conv2dSpec,
) -> Result<GemmResult, GemmError> {
    let c = conv2d_values(pass, g, a, b, bias, spec)?;
    let out = quantize(&c, &spec.out);
    Ok(GemmResult { c, out })
}

/// [`conv2d`]'s f32 sums (bias added), before the output quantization.
pub fn conv2d_values(
    pass: ConvPass,
    g: &ConvGeometry,
    a: &Quantized,
    b: &Quantized,
    bias: Option<&[f32]>,
    spec: &Conv2dSpec,
) -> Result<Vec<f32>, GemmError> {
    let (m, n, k) = g.gemm_dims(pass);
    g.check_bias(pass, bias.map(<[f32]>::len))?;
    let gs = spec.gemm_spec();
    let mode = gs.mode(&a.spec.format, &b.spec.format, k)?;
    let (oa, ob) = (Operand::new(a), Operand::new(b));
    let mut c = vec![0f32; m * n * g.groups];
    // One GEMM view per channel group, each writing its own outputs.
    for group in 0..g.groups {
        let g = g.for_group(group);
        let s = sums(
            (m, n, k),
            mode,
            gs.acc,
            &oa,
            |i, kk| g.flat_a(pass, i, kk),
            &ob,
            |kk, j| g.flat_b(pass, kk, j),
        );
        for i in 0..m {
            for j in 0..n {
                let b = bias.map_or(0.0, |b| b[g.out_channel(i)]);
                c[g.out_index(pass, i, j)] = s[i * n + j] + b;
            }
        }
    }
    Ok(c)
}

/// The three passes by direct loops over the forward convolution's taps, in f64:
/// returns each output's value and the sum of |products| (for error bounds).
/// `x`, `w`, `dy` are decoded f32 values; pass the ones the pass needs.
pub fn conv2d_direct(
    pass: ConvPass,
    g: &ConvGeometry,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let size = g.out_shape(pass).iter().product();
    let (mut out, mut mag) = (vec![0f64; size], vec![0f64; size]);
    for nb in 0..g.batch {
        for o in 0..g.cout {
            for oh in 0..g.oh {
                for ow in 0..g.ow {
                    let yi = ((nb * g.cout + o) * g.oh + oh) * g.ow + ow;
                    // The input channels of o's group.
                    let c0 = (o / g.cout_g()) * g.cin_g();
                    for c in c0..c0 + g.cin_g() {
                        for kh in 0..g.kh {
                            for kw in 0..g.kw {
                                let ih = (oh * g.stride[0] + kh * g.dilation[0]) as isize
                                    - g.padding[0] as isize;
                                let iw = (ow * g.stride[1] + kw * g.dilation[1]) as isize
                                    - g.padding[1] as isize;
                                if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
                                    continue;
                                }
                                let xi = ((nb * g.cin + c) * g.h + ih as usize) * g.w + iw as usize;
                                let wi = ((o * g.cin_g() + c - c0) * g.kh + kh) * g.kw + kw;
                                let (dst, p) = match pass {
                                    ConvPass::Forward => (yi, w[wi] as f64 * x[xi] as f64),
                                    ConvPass::BackwardData => (xi, w[wi] as f64 * dy[yi] as f64),
                                    ConvPass::BackwardWeight => (wi, dy[yi] as f64 * x[xi] as f64),
                                };
                                out[dst] += p;
                                mag[dst] += p.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (out, mag)
}

/// Backward data by taps (groups 1) in f32, in the GPU's order (src/ops/conv_taps.rs with
/// the panel kernel): each tap's product, summed over the output channels in order by
/// multiply-adds (`fused`: rounded once, as a fused multiply-add; else twice: WGSL's `fma`
/// may do either, and lavapipe rounds twice), then each dX value the sum of its taps'
/// products in tap order. `w` and `dy` are decoded values.
pub fn backward_data_by_taps(g: &ConvGeometry, w: &[f32], dy: &[f32], fused: bool) -> Vec<f32> {
    assert_eq!(g.groups, 1, "backward data by taps takes one channel group");
    let mut dx = vec![0f32; g.batch * g.cin * g.h * g.w];
    // The output position that tap (kh, kw) of input (ih, iw) comes from, if any.
    let from = |i: usize, k: usize, d: usize| {
        let t = (i + g.padding[d]).checked_sub(k * g.dilation[d])?;
        let o = t / g.stride[d];
        let extent = if d == 0 { g.oh } else { g.ow };
        (t % g.stride[d] == 0 && o < extent).then_some(o)
    };
    for nb in 0..g.batch {
        for c in 0..g.cin {
            for ih in 0..g.h {
                for iw in 0..g.w {
                    let mut s = 0f32;
                    for kh in 0..g.kh {
                        for kw in 0..g.kw {
                            let (Some(oh), Some(ow)) = (from(ih, kh, 0), from(iw, kw, 1)) else {
                                continue;
                            };
                            let mut t = 0f32;
                            for o in 0..g.cout {
                                let wv = w[((o * g.cin + c) * g.kh + kh) * g.kw + kw];
                                let yv = dy[((nb * g.cout + o) * g.oh + oh) * g.ow + ow];
                                t = if fused {
                                    wv.mul_add(yv, t)
                                } else {
                                    t + wv * yv
                                };
                            }
                            s += t;
                        }
                    }
                    dx[((nb * g.cin + c) * g.h + ih) * g.w + iw] = s;
                }
            }
        }
    }
    dx
}
