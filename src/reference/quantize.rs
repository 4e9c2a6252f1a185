//! CPU quantize, dequantize and fake-quantize of whole tensors.

use super::pack::{pack, unpack};
use crate::format::{BlockFormat, BlockScale, Format};
use crate::quant::{
    ElementRounding, Exceptions, QuantSpec, Rounded, Scaling, amax_bits, decode_block_element,
    e4m3_block_byte, e4m3_tensor_scale, e4m3_value, finite_amax_bits, mx_scale_exp,
    round_block_element, round_element, tensor_scale_exp,
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
    /// Block scales as `BlockFormat::scale_words` lays them out (empty for other formats).
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

    /// The scale byte of block `b` (E8M0 or E4M3).
    pub fn block_scale_byte(&self, b: usize) -> u8 {
        let block = self.spec.format.block().expect("a block format");
        block_byte(&block, &self.scales, b) as u8
    }
}

/// The scale byte of block `b` in the scale words `scales` of a `block` tensor.
pub fn block_byte(block: &BlockFormat, scales: &[u32], b: usize) -> u32 {
    (scales[block.scale_word_of_block(b)] >> (8 * (b % 4))) & 0xff
}

/// f32 bits of element `i` (code `code`) of a tensor stored as `format` with scale words
/// `scales`: block scales, else the per-tensor exponent `scale_exp`.
pub fn decode_stored(format: &Format, scales: &[u32], scale_exp: i32, i: usize, code: u32) -> u32 {
    let el = format.element();
    match format.block() {
        Some(b) => {
            let byte = block_byte(&b, scales, i / b.size as usize);
            match b.scale {
                BlockScale::E8m0 => el.decode_bits(code, byte as i32 - 127),
                BlockScale::E4m3 => decode_block_element(&el, code, e4m3_value(byte), scales[0]),
            }
        }
        None => el.decode_bits(code, scale_exp),
    }
}

/// Quantizes `x` as `spec` says.
///
/// # Panics
/// If `spec` fails [`QuantSpec::validate`] (stochastic rounding with 0 or more than 24 bits).
pub fn quantize(x: &[f32], spec: &QuantSpec) -> Quantized {
    quantize_with(x, spec, false)
}

/// [`quantize`]'s result, faster where `x` repeats values (images' pixels): under
/// deterministic rounding without block scales each distinct value is rounded once.
///
/// # Panics
/// As [`quantize`].
pub fn quantize_repeating(x: &[f32], spec: &QuantSpec) -> Quantized {
    quantize_with(x, spec, true)
}

/// Slots of [`quantize_repeating`]'s table of recent roundings (a power of two).
const MEMO_SLOTS: usize = 4096;

/// The table slot of f32 bits (Fibonacci hashing).
fn memo_slot(bits: u32) -> usize {
    (bits.wrapping_mul(0x9e37_79b9) >> (32 - MEMO_SLOTS.trailing_zeros())) as usize
}

/// [`quantize`], with `memo` keeping each deterministic rounding's result for values that
/// come again (the same function of the bits within one call: one format, one scale).
fn quantize_with(x: &[f32], spec: &QuantSpec, memo: bool) -> Quantized {
    if let Err(e) = spec.validate() {
        panic!("invalid quantization spec: {e}");
    }
    let el = spec.format.element();
    let amax = amax_bits(x);
    let block = spec.format.block();
    let scale_exp = match (block, spec.scaling) {
        (None, Scaling::Tensor) => tensor_scale_exp(amax, &el),
        _ => 0,
    };
    let mut er = ElementRounding {
        rounding: spec.rounding,
        saturate: spec.saturate || block.is_some(),
        scale_exp,
    };
    let mut exc = Exceptions {
        amax: f32::from_bits(amax),
        ..Exceptions::default()
    };
    let mut codes = vec![0u32; x.len()];
    let mut scale_bytes = Vec::new();
    let stochastic = spec.rounding.sr_bits() > 0;
    let chunk = block.map_or(4096, |b| b.size as usize);
    // E4M3 scales: the tensor's scale first, from the finite amax of the whole tensor.
    let tensor = match block {
        Some(b) if b.scale == BlockScale::E4m3 => Some(e4m3_tensor_scale(finite_amax_bits(x), &el)),
        _ => None,
    };
    let mut d = 0;
    let mut rand = vec![0u32; chunk];
    let mut table: Vec<Option<(u32, Rounded)>> = match memo && !stochastic && block.is_none() {
        true => vec![None; MEMO_SLOTS],
        false => Vec::new(),
    };
    for (c, (xs, out)) in x.chunks(chunk).zip(codes.chunks_mut(chunk)).enumerate() {
        let start = c * chunk;
        if stochastic {
            random_block(spec.seed, spec.stream, start as u64, &mut rand[..xs.len()]);
        }
        match (block, tensor) {
            (Some(_), Some(t)) => {
                let byte = e4m3_block_byte(finite_amax_bits(xs), t, &el);
                scale_bytes.push(byte);
                d = crate::softfloat::mul(e4m3_value(byte), t);
            }
            (Some(_), None) => {
                er.scale_exp = mx_scale_exp(finite_amax_bits(xs), el.emax());
                scale_bytes.push((er.scale_exp + 127) as u32);
            }
            _ => {}
        }
        for (j, (&v, o)) in xs.iter().zip(out.iter_mut()).enumerate() {
            let bits = v.to_bits();
            let r = match (tensor, table.is_empty()) {
                (Some(_), _) => round_block_element(&el, bits, d, &er, rand[j]),
                (None, true) => round_element(&el, bits, &er, rand[j]),
                (None, false) => {
                    let slot = &mut table[memo_slot(bits)];
                    match *slot {
                        Some((k, r)) if k == bits => r,
                        _ => {
                            let r = round_element(&el, bits, &er, 0);
                            *slot = Some((bits, r));
                            r
                        }
                    }
                }
            };
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
        scales: tensor.into_iter().chain(pack(&scale_bytes, 8)).collect(),
        scale_exp,
        exceptions: exc,
    }
}

/// Decodes a quantized tensor back to f32 (scales applied).
pub fn dequantize(q: &Quantized) -> Vec<f32> {
    let codes = unpack(&q.words, q.spec.format.bits(), q.len);
    codes
        .iter()
        .enumerate()
        .map(|(i, &c)| f32::from_bits(decode_stored(&q.spec.format, &q.scales, q.scale_exp, i, c)))
        .collect()
}

/// Rounds `x` through the format and back to f32, with the exception counts.
pub fn fake_quantize(x: &[f32], spec: &QuantSpec) -> (Vec<f32>, Exceptions) {
    let q = quantize(x, spec);
    (dequantize(&q), q.exceptions)
}
