//! CPU reference GEMM: C = op(A) op(B) (+ bias) under each accumulator model, then quantized.

use super::pack::unpack;
use super::quantize::{Quantized, dequantize, quantize};
use crate::accum::{Accumulator, GemmError, GemmMode, GemmSpec};
use crate::format::Format;
use crate::quant::{ElementRounding, Rounding, round_element};
use crate::softfloat::i64_to_f32_bits;

/// A reference GEMM's result: the f32 sums (bias added) and their quantized output.
pub struct GemmResult {
    /// op(A) op(B) (+ bias) in f32, in the output's layout, before the output quantization.
    pub c: Vec<f32>,
    /// `c` quantized as the spec's output says.
    pub out: Quantized,
}

/// One GEMM operand, decoded: f32 values, and the integers of fixed-point codes.
pub struct Operand {
    /// Decoded values.
    pub values: Vec<f32>,
    /// Integer codes k (value k * 2^exp2) for exact integer accumulation.
    pub ints: Option<Vec<i64>>,
    /// The power of two the integers are scaled by.
    pub exp2: i32,
}

impl Operand {
    /// Decodes a quantized tensor (with integer codes when it is fixed point).
    pub fn new(q: &Quantized) -> Operand {
        let (ints, exp2) = match q.spec.format {
            Format::Fixed(f) => {
                let shift = 32 - f.wl;
                let ints = unpack(&q.words, f.wl, q.len)
                    .into_iter()
                    .map(|c| (((c << shift) as i32) >> shift) as i64)
                    .collect();
                (Some(ints), q.scale_exp - f.fl as i32)
            }
            _ => (None, 0),
        };
        Operand {
            values: dequantize(q),
            ints,
            exp2,
        }
    }
}

/// The sums of a GEMM view, row-major m x n (no bias): element (i, kk) of A is
/// `a.values[ia(i, kk)]`, element (kk, j) of B is `b.values[ib(kk, j)]` or zero if None.
#[allow(clippy::too_many_arguments)]
pub fn sums(
    (m, n, k): (usize, usize, usize),
    mode: GemmMode,
    acc: Accumulator,
    a: &Operand,
    ia: impl Fn(usize, usize) -> usize,
    b: &Operand,
    ib: impl Fn(usize, usize) -> Option<usize>,
) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    let bv = |kk: usize, j: usize| ib(kk, j).map_or(0.0, |x| b.values[x]);
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = match (mode, acc) {
                (GemmMode::ExactInteger, _) => {
                    let (xa, xb) = (a.ints.as_ref().unwrap(), b.ints.as_ref().unwrap());
                    let s: i64 = (0..k)
                        .map(|kk| xa[ia(i, kk)] * ib(kk, j).map_or(0, |x| xb[x]))
                        .sum();
                    f32::from_bits(i64_to_f32_bits(s, a.exp2 + b.exp2))
                }
                (_, Accumulator::Fp32) => {
                    (0..k).fold(0f32, |s, kk| s + a.values[ia(i, kk)] * bv(kk, j))
                }
                (_, Accumulator::Emulated { format, chunk }) => {
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
                            s += a.values[ia(i, kk)] * bv(kk, j);
                        }
                        acc = f32::from_bits(
                            el.decode_bits(round_element(&el, s.to_bits(), &er, 0).code, 0),
                        );
                    }
                    acc
                }
            };
        }
    }
    c
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
    let c = gemm_values(a, a_shape, b, b_shape, bias, spec)?;
    let out = quantize(&c, &spec.out);
    Ok(GemmResult { c, out })
}

/// [`gemm`]'s f32 sums (bias added), before the output quantization.
pub fn gemm_values(
    a: &Quantized,
    a_shape: &[usize],
    b: &Quantized,
    b_shape: &[usize],
    bias: Option<&[f32]>,
    spec: &GemmSpec,
) -> Result<Vec<f32>, GemmError> {
    let (m, n, k) = spec.dims(a_shape, b_shape, bias.map(<[f32]>::len))?;
    let mode = spec.mode(&a.spec.format, &b.spec.format, k)?;
    let ia = |i: usize, kk: usize| if spec.trans_a { kk * m + i } else { i * k + kk };
    let ib = |kk: usize, j: usize| Some(if spec.trans_b { j * k + kk } else { kk * n + j });
    let mut c = sums(
        (m, n, k),
        mode,
        spec.acc,
        &Operand::new(a),
        ia,
        &Operand::new(b),
        ib,
    );
    if let Some(bias) = bias {
        for (i, v) in c.iter_mut().enumerate() {
            *v += bias[i % n];
        }
    }
    Ok(c)
}
