//! CPU reference GEMM: C = op(A) op(B) (+ bias) under each accumulator model, then quantized.

use super::pack::unpack;
use super::quantize::{Quantized, dequantize, quantize};
use crate::accum::{Accumulator, GemmError, GemmMode, GemmSpec};
use crate::format::Format;
use crate::quant::{ElementRounding, Rounding, round_element};
use crate::softfloat::i64_to_f32_bits;

/// A reference GEMM's result: the f32 sums (bias added) and their quantized output.
pub struct GemmResult {
    /// op(A) op(B) (+ bias) in f32, row-major m x n, before the output quantization.
    pub c: Vec<f32>,
    /// `c` quantized as the spec's output says.
    pub out: Quantized,
}

fn fixed_ints(q: &Quantized) -> Vec<i64> {
    let Format::Fixed(f) = q.spec.format else {
        unreachable!("exact integer GEMM needs fixed-point operands")
    };
    let shift = 32 - f.wl;
    unpack(&q.words, f.wl, q.len)
        .into_iter()
        .map(|c| (((c << shift) as i32) >> shift) as i64)
        .collect()
}

/// Multiplies two quantized matrices of the given stored shapes.
pub fn gemm(
    a: &Quantized,
    a_shape: &[usize],
    b: &Quantized,
    b_shape: &[usize],
    bias: Option<&[f32]>,
    spec: &GemmSpec,
) -> Result<GemmResult, GemmError> {
    let (m, n, k) = spec.dims(a_shape, b_shape, bias.map(<[f32]>::len))?;
    let ia = |i: usize, kk: usize| if spec.trans_a { kk * m + i } else { i * k + kk };
    let ib = |kk: usize, j: usize| if spec.trans_b { j * k + kk } else { kk * n + j };
    let mode = spec.mode(&a.spec.format, &b.spec.format, k)?;
    let mut c = vec![0f32; m * n];
    match mode {
        GemmMode::ExactInteger => {
            let (xa, xb) = (fixed_ints(a), fixed_ints(b));
            let fl = |q: &Quantized| match q.spec.format {
                Format::Fixed(f) => f.fl as i32,
                _ => 0,
            };
            let exp2 = a.scale_exp + b.scale_exp - fl(a) - fl(b);
            for i in 0..m {
                for j in 0..n {
                    let s: i64 = (0..k).map(|kk| xa[ia(i, kk)] * xb[ib(kk, j)]).sum();
                    c[i * n + j] = f32::from_bits(i64_to_f32_bits(s, exp2));
                }
            }
        }
        GemmMode::Fp32 | GemmMode::Emulated => {
            let (va, vb) = (dequantize(a), dequantize(b));
            for i in 0..m {
                for j in 0..n {
                    c[i * n + j] = match spec.acc {
                        Accumulator::Fp32 => {
                            (0..k).fold(0f32, |s, kk| s + va[ia(i, kk)] * vb[ib(kk, j)])
                        }
                        Accumulator::Emulated { format, chunk } => {
                            let el = format.element();
                            let er = ElementRounding {
                                rounding: Rounding::Nearest,
                                saturate: false,
                                scale_exp: 0,
                            };
                            let mut acc = 0f32;
                            for start in (0..k).step_by(chunk) {
                                let mut s = acc;
                                for kk in start..(start + chunk).min(k) {
                                    s += va[ia(i, kk)] * vb[ib(kk, j)];
                                }
                                let code = round_element(&el, s.to_bits(), &er, 0).code;
                                acc = f32::from_bits(el.decode_bits(code, 0));
                            }
                            acc
                        }
                    };
                }
            }
        }
    }
    if let Some(bias) = bias {
        for (i, v) in c.iter_mut().enumerate() {
            *v += bias[i % n];
        }
    }
    let out = quantize(&c, &spec.out);
    Ok(GemmResult { c, out })
}
