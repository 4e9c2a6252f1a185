//! CPU quantize, dequantize and fake-quantize of whole tensors.

use super::pack::{pack, unpack};
use crate::format::MX_BLOCK;
use crate::quant::{
    ElementRounding, Exceptions, QuantSpec, Scaling, amax_bits, finite_amax_bits, mx_scale_exp,
    round_element, tensor_scale_exp,
};
use crate::rng::random_block;

/// A tensor quantized on the CPU: packed codes plus whatever scales the format needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// How it was quantized.
    pub spec: QuantSpec,
    /// Number of elements.
    pub len: usize,
    /// Codes, densely packed at the format's width.
    pub words: Vec<u32>,
    /// MX block scales as E8M0 bytes, four to a word (empty for other formats).
    pub scales: Vec<u32>,
    /// Per-tensor scale exponent (0 unless per-tensor scaling was asked for).
    pub scale_exp: i32,
    /// Exception counts and amax of the input.
    pub exceptions: Exceptions,
}

impl Quantized {
    /// Bytes the packed codes and scales occupy.
    pub fn stored_bytes(&self) -> usize {
        self.spec.stored_bytes(self.len)
    }

    /// The E8M0 scale byte of block `b`.
    pub fn block_scale_byte(&self, b: usize) -> u8 {
        (self.scales[b / 4] >> (8 * (b % 4))) as u8
    }
}

/// Quantizes `x` as `spec` says.
///
/// # Panics
/// If `spec` fails [`QuantSpec::validate`] (stochastic rounding with 0 or more than 24 bits).
pub fn quantize(x: &[f32], spec: &QuantSpec) -> Quantized {
    if let Err(e) = spec.validate() {
        panic!("invalid quantization spec: {e}");
    }
    let el = spec.format.element();
    let amax = amax_bits(x);
    let mx = spec.format.mx();
    let scale_exp = match (mx, spec.scaling) {
        (None, Scaling::Tensor) => tensor_scale_exp(amax, &el),
        _ => 0,
    };
    let mut er = ElementRounding {
        rounding: spec.rounding,
        saturate: spec.saturate || mx.is_some(),
        scale_exp,
    };
    let mut exc = Exceptions {
        amax: f32::from_bits(amax),
        ..Exceptions::default()
    };
    let mut codes = vec![0u32; x.len()];
    let mut scale_bytes = Vec::new();
    let stochastic = spec.rounding.sr_bits() > 0;
    let chunk = if mx.is_some() { MX_BLOCK } else { 4096 };
    let mut rand = vec![0u32; chunk];
    for (c, (xs, out)) in x.chunks(chunk).zip(codes.chunks_mut(chunk)).enumerate() {
        let start = c * chunk;
        if stochastic {
            random_block(spec.seed, spec.stream, start as u64, &mut rand[..xs.len()]);
        }
        if mx.is_some() {
            er.scale_exp = mx_scale_exp(finite_amax_bits(xs), el.emax());
            scale_bytes.push((er.scale_exp + 127) as u32);
        }
        for (j, (&v, o)) in xs.iter().zip(out.iter_mut()).enumerate() {
            let r = round_element(&el, v.to_bits(), &er, rand[j]);
            *o = r.code;
            exc.overflow += r.overflow as u64;
            exc.underflow += r.underflow as u64;
            exc.nan += r.nan as u64;
        }
    }
    Quantized {
        spec: *spec,
        len: x.len(),
        words: pack(&codes, el.bits()),
        scales: pack(&scale_bytes, 8),
        scale_exp,
        exceptions: exc,
    }
}

/// Decodes a quantized tensor back to f32 (scales applied).
pub fn dequantize(q: &Quantized) -> Vec<f32> {
    let el = q.spec.format.element();
    let codes = unpack(&q.words, el.bits(), q.len);
    let mx = q.spec.format.mx().is_some();
    codes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let s = if mx {
                q.block_scale_byte(i / MX_BLOCK) as i32 - 127
            } else {
                q.scale_exp
            };
            f32::from_bits(el.decode_bits(c, s))
        })
        .collect()
}

/// Rounds `x` through the format and back to f32, with the exception counts.
pub fn fake_quantize(x: &[f32], spec: &QuantSpec) -> (Vec<f32>, Exceptions) {
    let q = quantize(x, spec);
    (dequantize(&q), q.exceptions)
}
