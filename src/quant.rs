//! Rounding f32 values into formats: rounding modes, saturation, scaling and exception flags.
//!
//! Everything here is integer arithmetic on f32 bit patterns, so that the WGSL twin in
//! `shaders/lib/quant.wgsl` computes exactly the same codes on any GPU.

use crate::format::{FixedFormat, FloatFormat, Format, ScalarFormat, Specials};
use crate::softfloat;
use std::fmt;
use std::str::FromStr;

/// The canonical NaN every NaN decodes to.
pub const CANONICAL_NAN: u32 = 0x7fc0_0000;

/// Default number of random bits for stochastic rounding.
pub const DEFAULT_SR_BITS: u32 = 16;

/// How a value between two representable neighbours is rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Round to nearest, ties to even.
    Nearest,
    /// Round to nearest, ties away from zero (QPyTorch's "nearest" for floats).
    NearestAway,
    /// Round toward zero (truncate).
    TowardZero,
    /// Stochastic rounding with `bits` random bits (1..=24), as gfloat's `Stochastic`.
    Stochastic {
        /// Number of random bits compared against the rounded fraction.
        bits: u32,
    },
}

impl Rounding {
    /// Numeric mode id shared with the WGSL kernels.
    pub fn mode_id(self) -> u32 {
        match self {
            Rounding::Nearest => 0,
            Rounding::NearestAway => 1,
            Rounding::TowardZero => 2,
            Rounding::Stochastic { .. } => 3,
        }
    }

    /// Random bits used (0 for deterministic modes).
    pub fn sr_bits(self) -> u32 {
        match self {
            Rounding::Stochastic { bits } => bits,
            _ => 0,
        }
    }
}

/// Why a rounding mode's text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RoundingError(pub String);

impl FromStr for Rounding {
    type Err = RoundingError;

    fn from_str(s: &str) -> Result<Rounding, RoundingError> {
        let s = s.trim().to_ascii_lowercase();
        let bad = || {
            RoundingError(format!(
                "unknown rounding '{s}'; allowed: nearest, nearest-away, toward-zero, stochastic, stochastic:K (K random bits, 1..=24)"
            ))
        };
        match s.as_str() {
            "nearest" | "nearest-even" => Ok(Rounding::Nearest),
            "nearest-away" => Ok(Rounding::NearestAway),
            "toward-zero" => Ok(Rounding::TowardZero),
            "stochastic" => Ok(Rounding::Stochastic {
                bits: DEFAULT_SR_BITS,
            }),
            _ => {
                let k = s.strip_prefix("stochastic:").ok_or_else(bad)?;
                let bits: u32 = k.parse().map_err(|_| bad())?;
                if !(1..=24).contains(&bits) {
                    return Err(RoundingError(format!(
                        "stochastic:{bits}: the number of random bits must be 1..=24"
                    )));
                }
                Ok(Rounding::Stochastic { bits })
            }
        }
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rounding::Nearest => f.write_str("nearest"),
            Rounding::NearestAway => f.write_str("nearest-away"),
            Rounding::TowardZero => f.write_str("toward-zero"),
            Rounding::Stochastic { bits } if *bits == DEFAULT_SR_BITS => f.write_str("stochastic"),
            Rounding::Stochastic { bits } => write!(f, "stochastic:{bits}"),
        }
    }
}

/// How values are scaled before rounding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scaling {
    /// No scaling (block formats still use their block scales).
    #[default]
    None,
    /// One power-of-two scale per tensor, the smallest that keeps amax within the format's max.
    Tensor,
}

/// Everything that decides how a tensor is quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QuantSpec {
    /// Target format.
    pub format: Format,
    /// Rounding mode.
    pub rounding: Rounding,
    /// Clamp overflow to ±max instead of Inf/NaN.
    pub saturate: bool,
    /// Per-tensor scaling (ignored for block formats, which scale per block).
    pub scaling: Scaling,
    /// Seed of the random bits for stochastic rounding.
    pub seed: u64,
    /// Stream id, so that tensors quantized with one seed get independent bits.
    pub stream: u32,
}

impl QuantSpec {
    /// Nearest-even, non-saturating, unscaled quantization to `format`.
    pub fn new(format: Format) -> QuantSpec {
        QuantSpec {
            format,
            rounding: Rounding::Nearest,
            saturate: false,
            scaling: Scaling::None,
            seed: 0,
            stream: 0,
        }
    }

    /// Whether storing an f32 value this way leaves it as it is (fp32, no scale, no
    /// saturation): rounding it again into another spec is then rounding the value itself.
    pub fn holds_f32(&self) -> bool {
        self.format == Format::FP32 && self.scaling == Scaling::None && !self.saturate
    }

    /// Bytes a tensor of `n` elements quantized this way occupies: packed codes, block
    /// scales, and the 4-byte exponent of a per-tensor scale.
    pub fn stored_bytes(&self, n: usize) -> usize {
        let tensor_scale = self.format.block().is_none() && self.scaling == Scaling::Tensor;
        self.format.stored_bytes(n) + if tensor_scale { 4 } else { 0 }
    }

    /// Checks what the type cannot: stochastic rounding needs 1..=24 random bits.
    pub fn validate(&self) -> Result<(), RoundingError> {
        match self.rounding {
            Rounding::Stochastic { bits } if !(1..=24).contains(&bits) => {
                Err(RoundingError(format!(
                    "stochastic rounding with {bits} random bits: the number of bits must be 1..=24"
                )))
            }
            _ if self.scaling == Scaling::Tensor
                && matches!(self.format, Format::Float(f) if f.beyond_f32()) =>
            {
                Err(RoundingError(format!(
                    "per-tensor scaling aims a tensor's amax at the format's largest binade, but \
                     {}'s lies beyond f32 (2^128); its range already holds every f32",
                    self.format
                )))
            }
            _ => Ok(()),
        }
    }

    /// Whether overflow clamps (asked for, or forced by the format).
    pub fn saturates(&self) -> bool {
        self.saturate || self.format.always_saturates()
    }
}

/// Per-tensor exception counts and the absolute maximum, as every quantize reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exceptions {
    /// Elements that were ±Inf or rounded beyond the largest finite value.
    pub overflow: u64,
    /// Nonzero finite elements that rounded to zero.
    pub underflow: u64,
    /// NaN elements.
    pub nan: u64,
    /// Largest |x| over the non-NaN inputs.
    pub amax: f32,
}

impl Exceptions {
    /// Adds the counts of another part of the same tensor.
    pub fn merge(&mut self, o: &Exceptions) {
        self.overflow += o.overflow;
        self.underflow += o.underflow;
        self.nan += o.nan;
        if o.amax > self.amax {
            self.amax = o.amax;
        }
    }
}

/// The result of rounding one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rounded {
    /// The element's code.
    pub code: u32,
    /// It was ±Inf or rounded past the largest finite value.
    pub overflow: bool,
    /// It was nonzero and finite and rounded to zero.
    pub underflow: bool,
    /// It was NaN.
    pub nan: bool,
}

/// Rounding parameters for one element.
#[derive(Clone, Copy, Debug)]
pub struct ElementRounding {
    /// Rounding mode.
    pub rounding: Rounding,
    /// Clamp overflow to ±max.
    pub saturate: bool,
    /// The element is divided by `2^scale_exp` before rounding (exactly).
    pub scale_exp: i32,
}

/// `floor(log2 |x|)` of nonzero finite f32 bits.
pub fn floor_log2_bits(bits: u32) -> i32 {
    let e = (bits >> 23) & 0xff;
    if e == 0 {
        let m = bits & 0x7f_ffff;
        31 - m.leading_zeros() as i32 - 149
    } else {
        e as i32 - 127
    }
}

fn low_mask(n: u32) -> u32 {
    if n >= 32 { u32::MAX } else { (1u32 << n) - 1 }
}

/// Rounds the integer `sig / 2^shift` to an integer by `mode` (exact when shift <= 0).
///
/// `rand` holds the random bits for stochastic rounding (its top `k` bits are used).
pub fn round_shifted(sig: u32, shift: i32, rounding: Rounding, rand: u32) -> u32 {
    if shift <= 0 {
        return sig << (-shift) as u32;
    }
    let (mut sig, mut shift) = (sig, shift as u32);
    if shift > 32 {
        // Keep one sticky bit for everything shifted out below 2^-32.
        let d = shift - 32;
        sig = if d >= 32 {
            (sig != 0) as u32
        } else {
            (sig >> d) | ((sig & low_mask(d)) != 0) as u32
        };
        shift = 32;
    }
    let int = if shift >= 32 { 0 } else { sig >> shift };
    let frac = sig & low_mask(shift);
    let half = 1u32 << (shift - 1);
    let away = match rounding {
        Rounding::TowardZero => false,
        Rounding::Nearest => frac > half || (frac == half && int & 1 == 1),
        Rounding::NearestAway => frac >= half,
        Rounding::Stochastic { bits: k } => {
            // The fraction rounded (ties to even) to k bits, d in [0, 2^k].
            let d = if shift <= k {
                frac << (k - shift)
            } else {
                let t = shift - k;
                let q = frac >> t;
                let rem = frac & low_mask(t);
                let h = 1u32 << (t - 1);
                q + (rem > h || (rem == h && q & 1 == 1)) as u32
            };
            let r = rand >> (32 - k);
            d + r >= (1u32 << k)
        }
    };
    int + away as u32
}

/// Rounds `(-1)^neg * sig * 2^exp2` (sig nonzero) into a float format's magnitude code.
///
/// Returns `None` on overflow (beyond the largest finite value on the extended grid).
fn float_magnitude(f: &FloatFormat, sig: u32, exp2: i32, r: Rounding, rand: u32) -> Option<u32> {
    let lead = 31 - sig.leading_zeros() as i32;
    let u = exp2 + lead;
    if u > f.top_field_exp() {
        return None;
    }
    let emin = f.emin();
    let m = f.m as i32;
    let code = if u >= emin {
        let n = round_shifted(sig, u - m - exp2, r, rand);
        (((u - emin) as u32) << m) + n
    } else if f.subnormals {
        round_shifted(sig, emin - m - exp2, r, rand)
    } else {
        // Flush: the neighbours are 0 and the smallest normal.
        round_shifted(sig, emin - exp2, r, rand) << m
    };
    (code <= f.max_code()).then_some(code)
}

fn round_float(f: &FloatFormat, bits: u32, er: &ElementRounding, rand: u32) -> Rounded {
    let neg = bits >> 31 == 1;
    let sign = if neg { f.sign_bit() } else { 0 };
    let mag = bits & 0x7fff_ffff;
    let mut out = Rounded {
        code: sign,
        overflow: false,
        underflow: false,
        nan: false,
    };
    let saturate = er.saturate || f.specials == Specials::None;
    if mag > 0x7f80_0000 {
        out.nan = true;
        out.code = f.nan_code().unwrap_or(0);
        return out;
    }
    let overflow_code = |finite_rtz: bool| -> u32 {
        if saturate || finite_rtz {
            sign | f.max_code()
        } else if let Some(inf) = f.inf_code() {
            sign | inf
        } else {
            f.nan_code().unwrap_or(sign | f.max_code())
        }
    };
    if mag == 0x7f80_0000 {
        out.overflow = true;
        out.code = overflow_code(false);
        return out;
    }
    if mag == 0 {
        return out;
    }
    let (sig, exp2) = split_f32(mag);
    match float_magnitude(f, sig, exp2 - er.scale_exp, er.rounding, rand) {
        Some(c) => {
            out.code = sign | c;
            out.underflow = c == 0;
        }
        None => {
            out.overflow = true;
            out.code = overflow_code(er.rounding == Rounding::TowardZero);
        }
    }
    out
}

fn round_fixed(x: &FixedFormat, bits: u32, er: &ElementRounding, rand: u32) -> Rounded {
    let neg = bits >> 31 == 1;
    let mag = bits & 0x7fff_ffff;
    let mut out = Rounded {
        code: 0,
        overflow: false,
        underflow: false,
        nan: false,
    };
    if mag > 0x7f80_0000 {
        out.nan = true;
        return out;
    }
    if mag == 0 {
        return out;
    }
    let limit = if neg { x.min_int_mag() } else { x.max_int() };
    let n = if mag == 0x7f80_0000 {
        None
    } else {
        let (sig, exp2) = split_f32(mag);
        let exp2 = exp2 - er.scale_exp;
        let qexp = -(x.fl as i32);
        let top = exp2 + 31 - sig.leading_zeros() as i32 - qexp;
        if top >= 32 {
            None
        } else {
            // Fixed-point stochastic rounding works on the two's-complement value: the
            // fraction is measured from the value below (floor), as in QPyTorch. For a
            // negative value that is the sign-magnitude rule with the random bits complemented.
            let rand = if neg { !rand } else { rand };
            let n = round_shifted(sig, qexp - exp2, er.rounding, rand);
            (n <= limit).then_some(n)
        }
    };
    let n = n.unwrap_or_else(|| {
        out.overflow = true;
        limit
    });
    out.underflow = n == 0;
    out.code = if neg { n.wrapping_neg() } else { n } & low_mask(x.wl);
    out
}

/// Splits nonzero finite |x| bits into `(sig, exp2)` with `|x| = sig * 2^exp2`.
fn split_f32(mag: u32) -> (u32, i32) {
    let e = mag >> 23;
    if e == 0 {
        (mag, -149)
    } else {
        ((mag & 0x7f_ffff) | 0x80_0000, e as i32 - 150)
    }
}

/// Rounds one f32 (as bits) into an element format.
///
/// `rand` holds the 32 random bits of the element; stochastic rounding with k bits uses
/// the top k of them.
pub fn round_element(fmt: &ScalarFormat, bits: u32, er: &ElementRounding, rand: u32) -> Rounded {
    match fmt {
        ScalarFormat::Float(f) => round_float(f, bits, er, rand),
        ScalarFormat::Fixed(x) => round_fixed(x, bits, er, rand),
    }
}

/// The f32 (bits) nearest to `(-1)^neg * sig * 2^exp2`, ties to even.
pub fn make_f32_bits(neg: bool, sig: u32, exp2: i32) -> u32 {
    let sign = (neg as u32) << 31;
    if sig == 0 {
        return sign;
    }
    match float_magnitude(&FloatFormat::FP32, sig, exp2, Rounding::Nearest, 0) {
        Some(c) => sign | c,
        None => sign | 0x7f80_0000,
    }
}

/// Largest |x| (as f32 bits) over the non-NaN values of a slice; 0 if there are none.
pub fn amax_bits(xs: &[f32]) -> u32 {
    xs.iter()
        .map(|x| x.to_bits() & 0x7fff_ffff)
        .filter(|&b| b <= 0x7f80_0000)
        .max()
        .unwrap_or(0)
}

/// Largest finite |x| (as f32 bits) of a slice: what an MX block's scale is computed from,
/// so that a ±Inf element saturates instead of flushing the rest of its block.
pub fn finite_amax_bits(xs: &[f32]) -> u32 {
    xs.iter()
        .map(|x| x.to_bits() & 0x7fff_ffff)
        .filter(|&b| b < 0x7f80_0000)
        .max()
        .unwrap_or(0)
}

/// The E8M0 scale exponent of an MX block with the given finite amax:
/// `floor(log2 amax) - emax`, clipped to [-127, 127]; -127 for an all-zero block.
pub fn mx_scale_exp(amax_bits: u32, emax: i32) -> i32 {
    if amax_bits == 0 {
        return -127;
    }
    (floor_log2_bits(amax_bits) - emax).clamp(-127, 127)
}

/// The fp32 tensor scale of an E4M3-scaled block format, as f32 bits: the tensor's finite
/// amax / (448 x the element's max), so the largest block scale lands on E4M3's 448; 1
/// where that is 0 (an all-zero tensor).
pub fn e4m3_tensor_scale(finite_amax: u32, el: &ScalarFormat) -> u32 {
    let limit = softfloat::mul(448f32.to_bits(), el.max().to_bits());
    match softfloat::div(finite_amax, limit) {
        0 => 1f32.to_bits(),
        s => s,
    }
}

/// The E4M3 scale byte of a block with finite amax `block_amax` under tensor scale
/// `tensor` (f32 bits): (amax / element max) / tensor, to nearest E4M3, saturating at 448.
pub fn e4m3_block_byte(block_amax: u32, tensor: u32, el: &ScalarFormat) -> u32 {
    let t = softfloat::div(softfloat::div(block_amax, el.max().to_bits()), tensor);
    let er = ElementRounding {
        rounding: Rounding::Nearest,
        saturate: true,
        scale_exp: 0,
    };
    round_element(&ScalarFormat::Float(FloatFormat::E4M3), t, &er, 0).code
}

/// f32 bits of an E4M3 scale byte.
pub fn e4m3_value(byte: u32) -> u32 {
    FloatFormat::E4M3.decode_bits(byte & 0x7f, 0)
}

/// Rounds `bits` into `el` as an element of an E4M3-scaled block whose decode scale (block
/// scale x tensor scale, f32 bits) is `d`: `bits / d` rounded; a zero scale stores zeros.
pub fn round_block_element(
    el: &ScalarFormat,
    bits: u32,
    d: u32,
    er: &ElementRounding,
    rand: u32,
) -> Rounded {
    let mag = bits & 0x7fff_ffff;
    let x = if mag >= 0x7f80_0000 {
        bits
    } else if d & 0x7fff_ffff == 0 {
        bits & 0x8000_0000
    } else {
        softfloat::div(bits, d)
    };
    let mut r = round_element(el, x, er, rand);
    // A value the division took to zero underflowed as surely as one the rounding did.
    r.underflow |= mag != 0 && mag < 0x7f80_0000 && x & 0x7fff_ffff == 0;
    r
}

/// f32 bits of code `code` of `el` in an E4M3-scaled block: (value x block scale) x tensor
/// scale, each product rounded as f32 (the first is exact for elements of up to 20 bits).
pub fn decode_block_element(el: &ScalarFormat, code: u32, block: u32, tensor: u32) -> u32 {
    softfloat::mul(softfloat::mul(el.decode_bits(code, 0), block), tensor)
}

/// The per-tensor power-of-two scale exponent: the smallest `s` with `amax / 2^s <= max`.
///
/// An all-zero (or all-NaN) tensor, or one whose amax is Inf, gets scale 1 (`s = 0`).
pub fn tensor_scale_exp(amax_bits: u32, fmt: &ScalarFormat) -> i32 {
    if amax_bits == 0 || amax_bits >= 0x7f80_0000 {
        return 0;
    }
    let emax = fmt.emax();
    let s = floor_log2_bits(amax_bits) - emax;
    // amax moved into emax's binade keeps its significand: compare it with max there.
    let (sig, _) = split_f32(amax_bits);
    let norm = (sig << sig.leading_zeros()) >> 8; // 24-bit significand, leading one at bit 23
    let moved = (((emax + 127) as u32) << 23) | (norm & 0x7f_ffff);
    let max_bits = fmt.max().to_bits();
    s + (moved > max_bits) as i32
}
