//! Number formats: parsing, printing, properties and decoding of codes.
//!
//! Every format stores each element as a code of a fixed bit width in the standard
//! layout (sign | exponent | mantissa for floats, two's complement for fixed point).
//! Rounding values *into* a format lives in `quant.rs`; this file says what the codes
//! mean.

use std::fmt;
use std::str::FromStr;

/// How a minifloat uses its top exponent code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Specials {
    /// IEEE-like: the all-ones exponent holds ±Inf (mantissa 0) and NaN (otherwise).
    Ieee,
    /// Only the all-ones code (per sign) is NaN; no Inf (OCP E4M3 style).
    Nan,
    /// Every code is finite: no Inf, no NaN.
    None,
}

impl Specials {
    fn as_str(self) -> &'static str {
        match self {
            Specials::Ieee => "ieee",
            Specials::Nan => "nan",
            Specials::None => "none",
        }
    }
}

/// A general minifloat `float(e, m, bias, specials, subnormals)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FloatFormat {
    /// Exponent bits (1..=8).
    pub e: u32,
    /// Mantissa (trailing significand) bits (0..=23).
    pub m: u32,
    /// Exponent bias.
    pub bias: i32,
    /// Special-value policy.
    pub specials: Specials,
    /// Whether the zero exponent field holds subnormals (else those codes flush to zero).
    pub subnormals: bool,
}

/// Signed two's-complement fixed point: value `k * 2^-fl`, `wl` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FixedFormat {
    /// Word length in bits (1..=32).
    pub wl: u32,
    /// Fractional bits (0..=wl).
    pub fl: u32,
}

/// How the blocks of a block format are scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockScale {
    /// One E8M0 byte a block, the power of two `2^(floor(log2 amax) - emax)` (OCP MX).
    E8m0,
    /// One E4M3 byte a block times one fp32 scale for the tensor (NVIDIA's NVFP4).
    E4m3,
}

impl BlockScale {
    fn as_str(self) -> &'static str {
        match self {
            BlockScale::E8m0 => "e8m0",
            BlockScale::E4m3 => "e4m3",
        }
    }
}

/// A block format: elements of one scalar format, each `size` consecutive ones sharing a scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockFormat {
    /// The format of each element.
    pub element: ScalarFormat,
    /// Elements a scale covers (1..=MAX_BLOCK).
    pub size: u32,
    /// How each block is scaled.
    pub scale: BlockScale,
}

/// Elements in an OCP MX block.
pub const MX_BLOCK: usize = 32;

/// The largest block a block format may have (one GPU invocation gathers a block's amax).
pub const MAX_BLOCK: u32 = 1024;

impl BlockFormat {
    /// OCP MX: `element` in blocks of 32 under an E8M0 scale.
    pub const fn mx(element: ScalarFormat) -> BlockFormat {
        BlockFormat {
            element,
            size: MX_BLOCK as u32,
            scale: BlockScale::E8m0,
        }
    }

    /// NVFP4: E2M1 in blocks of 16, an E4M3 scale a block and an fp32 scale a tensor.
    pub const NVFP4: BlockFormat = BlockFormat {
        element: ScalarFormat::Float(FloatFormat::E2M1),
        size: 16,
        scale: BlockScale::E4m3,
    };

    /// Blocks in a tensor of `n` elements.
    pub fn blocks(&self, n: usize) -> usize {
        n.div_ceil(self.size as usize)
    }

    /// Words of the scales before the block bytes: the fp32 tensor scale's for E4M3 scales.
    pub fn scale_header(&self) -> usize {
        match self.scale {
            BlockScale::E8m0 => 0,
            BlockScale::E4m3 => 1,
        }
    }

    /// u32 words of scales for `n` elements: the header, then the block bytes four to a word.
    pub fn scale_words(&self, n: usize) -> usize {
        self.scale_header() + self.blocks(n).div_ceil(4)
    }

    /// The word of the scales that holds block `b`'s byte.
    pub fn scale_word_of_block(&self, b: usize) -> usize {
        self.scale_header() + b / 4
    }

    /// Checks what the type cannot: the block size, and an element format the scale can aim.
    pub fn validate(&self) -> Result<(), FormatError> {
        if !(1..=MAX_BLOCK).contains(&self.size) {
            return Err(FormatError(format!(
                "block size {} is out of range; it must be 1..={MAX_BLOCK}",
                self.size
            )));
        }
        if let ScalarFormat::Float(f) = self.element
            && f.beyond_f32()
        {
            return Err(FormatError(format!(
                "element {} reaches beyond f32 (2^128); a block scale aims each block's \
                 amax at the element's largest binade, which must lie within f32",
                Format::Float(f)
            )));
        }
        if self.scale == BlockScale::E4m3 && !(self.element.max() * 448.0).is_finite() {
            return Err(FormatError(format!(
                "element {} is too wide for an E4M3 scale: the tensor scale divides amax by \
                 448 x the element's max ({:e}), which must be a finite f32",
                self.element,
                self.element.max()
            )));
        }
        Ok(())
    }
}

impl fmt::Display for BlockFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = NAMED_BLOCKS.iter().find(|(_, b)| b == self) {
            return f.write_str(name);
        }
        write!(
            f,
            "block(elem={},size={},scale={})",
            self.element,
            self.size,
            self.scale.as_str()
        )
    }
}

/// The named block formats: OCP MX's six and NVFP4, in the order `lowp formats` lists them.
pub const NAMED_BLOCKS: [(&str, BlockFormat); 7] = [
    (
        "mxfp8_e4m3",
        BlockFormat::mx(ScalarFormat::Float(FloatFormat::E4M3)),
    ),
    (
        "mxfp8_e5m2",
        BlockFormat::mx(ScalarFormat::Float(FloatFormat::E5M2)),
    ),
    (
        "mxfp6_e3m2",
        BlockFormat::mx(ScalarFormat::Float(FloatFormat::E3M2)),
    ),
    (
        "mxfp6_e2m3",
        BlockFormat::mx(ScalarFormat::Float(FloatFormat::E2M3)),
    ),
    (
        "mxfp4_e2m1",
        BlockFormat::mx(ScalarFormat::Float(FloatFormat::E2M1)),
    ),
    (
        "mxint8",
        BlockFormat::mx(ScalarFormat::Fixed(FixedFormat { wl: 8, fl: 6 })),
    ),
    ("nvfp4", BlockFormat::NVFP4),
];

/// A format a single element is coded in: a minifloat or fixed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScalarFormat {
    /// Minifloat (IEEE-like, OCP, or general).
    Float(FloatFormat),
    /// Signed fixed point.
    Fixed(FixedFormat),
}

/// Any number format lowp can store a tensor in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Minifloat (IEEE-like, OCP, or general).
    Float(FloatFormat),
    /// Signed fixed point.
    Fixed(FixedFormat),
    /// A block format (OCP MX, NVFP4, or any element, block size and scale).
    Block(BlockFormat),
}

/// Why a format's text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

impl FloatFormat {
    /// IEEE binary32.
    pub const FP32: FloatFormat = FloatFormat::ieee(8, 23);
    /// bfloat16.
    pub const BF16: FloatFormat = FloatFormat::ieee(8, 7);
    /// IEEE binary16.
    pub const FP16: FloatFormat = FloatFormat::ieee(5, 10);
    /// OCP FP8 E5M2.
    pub const E5M2: FloatFormat = FloatFormat::ieee(5, 2);
    /// OCP FP8 E4M3 (NaN only, max 448).
    pub const E4M3: FloatFormat = FloatFormat {
        specials: Specials::Nan,
        ..FloatFormat::ieee(4, 3)
    };
    /// OCP FP6 E3M2.
    pub const E3M2: FloatFormat = FloatFormat {
        specials: Specials::None,
        ..FloatFormat::ieee(3, 2)
    };
    /// OCP FP6 E2M3.
    pub const E2M3: FloatFormat = FloatFormat {
        specials: Specials::None,
        ..FloatFormat::ieee(2, 3)
    };
    /// OCP FP4 E2M1.
    pub const E2M1: FloatFormat = FloatFormat {
        specials: Specials::None,
        ..FloatFormat::ieee(2, 1)
    };

    /// `float(e, m)` with the default bias, IEEE specials and subnormals.
    pub const fn ieee(e: u32, m: u32) -> FloatFormat {
        FloatFormat {
            e,
            m,
            bias: (1 << (e - 1)) - 1,
            specials: Specials::Ieee,
            subnormals: true,
        }
    }

    /// Checks that the parameters describe a format lowp can hold exactly in f32.
    pub fn validate(&self) -> Result<(), FormatError> {
        let (e, m) = (self.e, self.m);
        if e == 0 {
            return Err(FormatError(
                "e=0 is not allowed: a float needs 1 to 8 exponent bits (for integers use fixed(wl=W,fl=0))".into(),
            ));
        }
        if e > 8 {
            return Err(FormatError(format!(
                "e={e} is too wide: exponent bits must be 1..=8 (values must fit in f32)"
            )));
        }
        if m > 23 {
            return Err(FormatError(format!(
                "m={m} is too wide: mantissa bits must be 0..=23 (values must fit in f32)"
            )));
        }
        if 1 + e + m > 32 {
            return Err(FormatError(format!(
                "float(e={e},m={m}) is {} bits wide; the width 1+e+m must be at most 32",
                1 + e + m
            )));
        }
        if self.specials == Specials::Ieee && m == 0 {
            return Err(FormatError(
                "specials=ieee needs m >= 1 (with m=0 the top exponent has no room for NaN); use specials=nan or specials=none".into(),
            ));
        }
        if !self.fits_f32() {
            let ok: Vec<i32> = (-400..=400)
                .filter(|&b| FloatFormat { bias: b, ..*self }.fits_f32())
                .collect();
            let allowed = match (ok.first(), ok.last()) {
                (Some(lo), Some(hi)) if lo == hi => format!("the only bias that fits is {lo}"),
                (Some(lo), Some(hi)) => format!("allowed biases are {lo}..={hi}"),
                _ => "no bias fits: use fewer exponent or mantissa bits".into(),
            };
            return Err(FormatError(format!(
                "bias={} makes no sense for e={e},m={m}: its smallest values would fall below f32's \
                 (2^-149) or its largest at 2^129 or beyond; {allowed}",
                self.bias,
            )));
        }
        Ok(())
    }

    /// Whether every value is exact in f32, except that a top binade at 2^128 (as
    /// QPyTorch's float_quantize(x, 8, M) has, every exponent code in use) is allowed: its
    /// values' f32 images are ±Inf.
    fn fits_f32(&self) -> bool {
        let top = self.top_exp() as i64;
        let low = if self.subnormals {
            self.emin() as i64 - self.m as i64
        } else {
            self.emin() as i64
        };
        let has_finite_top = self.max_code() > 0;
        has_finite_top && top <= 128 && low >= -149
    }

    /// Whether its largest values lie at 2^128 or beyond, where their f32 images are ±Inf.
    pub fn beyond_f32(&self) -> bool {
        self.top_exp() > 127
    }

    /// Its largest finite value, exactly (in f64, which also holds the values beyond f32).
    pub fn max_f64(&self) -> f64 {
        let mag = self.max_code();
        let (field, mant) = (mag >> self.m, mag & ((1u32 << self.m) - 1));
        if field == 0 {
            mant as f64 * 2f64.powi(self.emin() - self.m as i32)
        } else {
            (mant | (1 << self.m)) as f64 * 2f64.powi(field as i32 - self.bias - self.m as i32)
        }
    }

    /// Smallest normal exponent, `1 - bias`.
    pub fn emin(&self) -> i32 {
        1 - self.bias
    }

    /// The exponent of the all-ones exponent field (reserved or not).
    pub fn top_field_exp(&self) -> i32 {
        ((1i32 << self.e) - 1) - self.bias
    }

    /// Exponent of the largest finite value, `floor(log2(max))`.
    pub fn top_exp(&self) -> i32 {
        let field = self.max_code() >> self.m;
        if field == 0 {
            // largest value is subnormal: its exponent is emin - m + bit length - 1
            let mant = self.max_code() & ((1u32 << self.m) - 1);
            self.emin() - self.m as i32 + (31 - mant.leading_zeros() as i32)
        } else {
            field as i32 - self.bias
        }
    }

    /// Bit width of a code.
    pub fn bits(&self) -> u32 {
        1 + self.e + self.m
    }

    /// Magnitude code (sign bit clear) of the largest finite value.
    pub fn max_code(&self) -> u32 {
        let all = ((1u64 << (self.e + self.m)) - 1) as u32;
        match self.specials {
            Specials::Ieee => ((((1u64 << self.e) - 1) << self.m) - 1) as u32,
            Specials::Nan => all - 1,
            Specials::None => all,
        }
    }

    /// Magnitude code of +Inf, if the format has Inf.
    pub fn inf_code(&self) -> Option<u32> {
        (self.specials == Specials::Ieee).then(|| (((1u64 << self.e) - 1) << self.m) as u32)
    }

    /// The canonical (positive, quiet) NaN code, if the format has NaN.
    pub fn nan_code(&self) -> Option<u32> {
        match self.specials {
            Specials::Ieee => Some(self.inf_code().unwrap() | (1 << (self.m - 1))),
            Specials::Nan => Some(((1u64 << (self.e + self.m)) - 1) as u32),
            Specials::None => None,
        }
    }

    /// The sign bit of a code.
    pub fn sign_bit(&self) -> u32 {
        1 << (self.e + self.m)
    }

    /// Decodes a code to f32 bits (exact; NaN becomes the canonical 0x7fc00000).
    pub fn decode_bits(&self, code: u32, scale_exp: i32) -> u32 {
        let neg = code & self.sign_bit() != 0;
        let mag = code & (self.sign_bit() - 1);
        let field = mag >> self.m;
        let mant = mag & ((1u32 << self.m) - 1);
        let all_field = (1u32 << self.e) - 1;
        match self.specials {
            Specials::Ieee if field == all_field => {
                return if mant == 0 {
                    (neg as u32) << 31 | 0x7f80_0000
                } else {
                    crate::quant::CANONICAL_NAN
                };
            }
            Specials::Nan if mag == self.nan_code().unwrap() => return crate::quant::CANONICAL_NAN,
            _ => {}
        }
        let (sig, exp2) = if field == 0 {
            if !self.subnormals {
                return (neg as u32) << 31;
            }
            (mant, self.emin() - self.m as i32)
        } else {
            (
                mant | (1 << self.m),
                field as i32 - self.bias - self.m as i32,
            )
        };
        crate::quant::make_f32_bits(neg, sig, exp2 + scale_exp)
    }
}

impl FixedFormat {
    /// Checks `1 <= wl <= 32` and `fl <= wl`.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.wl == 0 || self.wl > 32 {
            return Err(FormatError(format!(
                "fixed(wl={},fl={}): word length must be 1..=32 bits",
                self.wl, self.fl
            )));
        }
        if self.fl > self.wl {
            return Err(FormatError(format!(
                "fixed(wl={},fl={}): fl must not exceed wl",
                self.wl, self.fl
            )));
        }
        Ok(())
    }

    /// Largest positive integer `k` (value `k * 2^-fl`).
    pub fn max_int(&self) -> u32 {
        ((1u64 << (self.wl - 1)) - 1) as u32
    }

    /// Magnitude of the most negative integer, `2^(wl-1)`.
    pub fn min_int_mag(&self) -> u32 {
        (1u64 << (self.wl - 1)) as u32
    }

    /// Decodes a two's-complement code to f32 bits (rounded to nearest even above 24 bits).
    pub fn decode_bits(&self, code: u32, scale_exp: i32) -> u32 {
        let shift = 32 - self.wl;
        let k = ((code << shift) as i32) >> shift;
        crate::quant::make_f32_bits(k < 0, k.unsigned_abs(), scale_exp - self.fl as i32)
    }
}

impl ScalarFormat {
    /// Bit width of a code.
    pub fn bits(&self) -> u32 {
        match self {
            ScalarFormat::Float(f) => f.bits(),
            ScalarFormat::Fixed(x) => x.wl,
        }
    }

    /// Decodes a code (times `2^scale_exp`) to f32 bits.
    pub fn decode_bits(&self, code: u32, scale_exp: i32) -> u32 {
        match self {
            ScalarFormat::Float(f) => f.decode_bits(code, scale_exp),
            ScalarFormat::Fixed(x) => x.decode_bits(code, scale_exp),
        }
    }

    /// Largest finite value.
    pub fn max(&self) -> f32 {
        match self {
            ScalarFormat::Float(f) => f32::from_bits(f.decode_bits(f.max_code(), 0)),
            ScalarFormat::Fixed(x) => f32::from_bits(x.decode_bits(x.max_int(), 0)),
        }
    }

    /// `floor(log2(max))`: the exponent MX and per-tensor scaling aim the block maximum at.
    pub fn emax(&self) -> i32 {
        match self {
            ScalarFormat::Float(f) => f.top_exp(),
            ScalarFormat::Fixed(x) => 31 - x.max_int().max(1).leading_zeros() as i32 - x.fl as i32,
        }
    }
}

impl Format {
    /// IEEE binary32.
    pub const FP32: Format = Format::Float(FloatFormat::FP32);

    /// The named formats, in the order `lowp formats` lists them.
    pub fn named() -> Vec<Format> {
        let mut v: Vec<Format> = NAMED_FLOATS
            .iter()
            .map(|(_, f)| Format::Float(*f))
            .collect();
        v.extend(NAMED_BLOCKS.iter().map(|(_, b)| Format::Block(*b)));
        v
    }

    /// The element format (for a block format, the format of the block's elements).
    pub fn element(&self) -> ScalarFormat {
        match self {
            Format::Float(f) => ScalarFormat::Float(*f),
            Format::Fixed(x) => ScalarFormat::Fixed(*x),
            Format::Block(b) => b.element,
        }
    }

    /// The block format, if this is one.
    pub fn block(&self) -> Option<BlockFormat> {
        match self {
            Format::Block(b) => Some(*b),
            _ => None,
        }
    }

    /// Bits per element code (not counting block scales).
    pub fn bits(&self) -> u32 {
        self.element().bits()
    }

    /// Largest finite element value (for a block format, before the scales).
    pub fn max(&self) -> f32 {
        self.element().max()
    }

    /// Whether values beyond the range always clamp (no Inf or NaN to overflow into).
    pub fn always_saturates(&self) -> bool {
        match self {
            Format::Float(f) => f.specials == Specials::None,
            Format::Fixed(_) | Format::Block(_) => true,
        }
    }

    /// Bytes a dense-packed tensor of `n` elements occupies (codes in u32 words, plus block scales).
    pub fn stored_bytes(&self, n: usize) -> usize {
        let words = packed_words(n, self.bits());
        let scales = self.block().map_or(0, |b| b.scale_words(n));
        (words + scales) * 4
    }

    /// A one-paragraph list of the properties of this format.
    pub fn properties(&self) -> Properties {
        let el = self.element();
        let (min_normal, min_sub, eps, inf, nan) = match el {
            ScalarFormat::Float(f) => {
                let normal = f32::from_bits(make(f.emin(), 1));
                let sub = if f.subnormals {
                    f32::from_bits(make(f.emin() - f.m as i32, 1))
                } else {
                    normal
                };
                (
                    Some(normal),
                    sub,
                    f32::from_bits(make(-(f.m as i32), 1)),
                    f.specials == Specials::Ieee,
                    f.specials != Specials::None,
                )
            }
            ScalarFormat::Fixed(x) => {
                let q = f32::from_bits(make(-(x.fl as i32), 1));
                (None, q, q, false, false)
            }
        };
        Properties {
            bits: el.bits(),
            max: el.max(),
            min_normal,
            min_subnormal: min_sub,
            epsilon: eps,
            has_inf: inf,
            has_nan: nan,
            emax: el.emax(),
        }
    }
}

fn make(exp2: i32, sig: u32) -> u32 {
    crate::quant::make_f32_bits(false, sig, exp2)
}

/// What `lowp formats` reports about a format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Properties {
    /// Bits per element.
    pub bits: u32,
    /// Largest finite value.
    pub max: f32,
    /// Smallest positive normal value (floats only).
    pub min_normal: Option<f32>,
    /// Smallest positive value.
    pub min_subnormal: f32,
    /// Spacing of values just above 1 (floats) or the resolution (fixed point).
    pub epsilon: f32,
    /// Whether the format has ±Inf.
    pub has_inf: bool,
    /// Whether the format has NaN.
    pub has_nan: bool,
    /// `floor(log2(max))`.
    pub emax: i32,
}

const NAMED_FLOATS: [(&str, FloatFormat); 8] = [
    ("fp32", FloatFormat::FP32),
    ("bf16", FloatFormat::BF16),
    ("fp16", FloatFormat::FP16),
    ("e5m2", FloatFormat::E5M2),
    ("e4m3", FloatFormat::E4M3),
    ("e3m2", FloatFormat::E3M2),
    ("e2m3", FloatFormat::E2M3),
    ("e2m1", FloatFormat::E2M1),
];

impl fmt::Display for FloatFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((name, _)) = NAMED_FLOATS.iter().find(|(_, n)| n == self) {
            return f.write_str(name);
        }
        write!(f, "float(e={},m={}", self.e, self.m)?;
        if self.bias != FloatFormat::ieee(self.e, self.m).bias {
            write!(f, ",bias={}", self.bias)?;
        }
        if self.specials != Specials::Ieee {
            write!(f, ",specials={}", self.specials.as_str())?;
        }
        if !self.subnormals {
            f.write_str(",subnormals=false")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for ScalarFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarFormat::Float(x) => x.fmt(f),
            ScalarFormat::Fixed(x) => write!(f, "fixed(wl={},fl={})", x.wl, x.fl),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Float(x) => x.fmt(f),
            Format::Fixed(x) => ScalarFormat::Fixed(*x).fmt(f),
            Format::Block(b) => b.fmt(f),
        }
    }
}

const ALLOWED: &str = "fp32, bf16, fp16, e5m2, e4m3, e3m2, e2m3, e2m1, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4_e2m1, mxint8, nvfp4, block(elem=FORMAT,size=N,scale=e8m0|e4m3), float(e=E,m=M[,bias=B][,specials=ieee|nan|none][,subnormals=true|false]), fixed(wl=W,fl=F)";

impl FromStr for Format {
    type Err = FormatError;

    fn from_str(text: &str) -> Result<Format, FormatError> {
        let s: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some((_, f)) = NAMED_FLOATS.iter().find(|(n, _)| *n == s) {
            return Ok(Format::Float(*f));
        }
        if let Some((_, b)) = NAMED_BLOCKS.iter().find(|(n, _)| *n == s) {
            return Ok(Format::Block(*b));
        }
        if let Some(args) = s.strip_prefix("block(").and_then(|r| r.strip_suffix(')')) {
            return parse_block(text, args).map(Format::Block);
        }
        let (head, args) = match s.split_once('(') {
            Some((h, rest)) if rest.ends_with(')') => (h, &rest[..rest.len() - 1]),
            _ => {
                return Err(FormatError(format!(
                    "unknown format '{text}'; allowed: {ALLOWED}"
                )));
            }
        };
        let mut kv = Vec::new();
        for part in args.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                FormatError(format!(
                    "in '{text}': '{part}' is not of the form key=value"
                ))
            })?;
            if kv.iter().any(|(k2, _): &(&str, &str)| *k2 == k) {
                return Err(FormatError(format!("in '{text}': '{k}' is given twice")));
            }
            kv.push((k, v));
        }
        let get_int = |key: &str| -> Result<Option<i64>, FormatError> {
            kv.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| {
                    v.parse::<i64>().map_err(|_| {
                        FormatError(format!("in '{text}': {key}={v} is not an integer"))
                    })
                })
                .transpose()
        };
        let check_keys = |allowed: &[&str]| -> Result<(), FormatError> {
            for (k, _) in &kv {
                if !allowed.contains(k) {
                    return Err(FormatError(format!(
                        "in '{text}': unknown key '{k}'; {head}(...) takes {}",
                        allowed.join(", ")
                    )));
                }
            }
            Ok(())
        };
        match head {
            "float" => {
                check_keys(&["e", "m", "bias", "specials", "subnormals"])?;
                let e = get_int("e")?.ok_or_else(|| {
                    FormatError(format!("in '{text}': float(...) needs e=EXPONENT_BITS"))
                })?;
                let m = get_int("m")?.ok_or_else(|| {
                    FormatError(format!("in '{text}': float(...) needs m=MANTISSA_BITS"))
                })?;
                if !(0..=8).contains(&e) {
                    return Err(FormatError(format!(
                        "in '{text}': e={e} is out of range; exponent bits must be 1..=8"
                    )));
                }
                if !(0..=23).contains(&m) {
                    return Err(FormatError(format!(
                        "in '{text}': m={m} is out of range; mantissa bits must be 0..=23"
                    )));
                }
                if e == 0 {
                    return Err(FormatError(format!(
                        "in '{text}': e=0 is not allowed: a float needs 1 to 8 exponent bits (for integers use fixed(wl=W,fl=0))"
                    )));
                }
                let mut f = FloatFormat::ieee(e as u32, m as u32);
                if let Some(b) = get_int("bias")? {
                    f.bias = i32::try_from(b).map_err(|_| {
                        FormatError(format!("in '{text}': bias={b} is out of range"))
                    })?;
                }
                if let Some((_, v)) = kv.iter().find(|(k, _)| *k == "specials") {
                    f.specials = match *v {
                        "ieee" => Specials::Ieee,
                        "nan" => Specials::Nan,
                        "none" => Specials::None,
                        _ => {
                            return Err(FormatError(format!(
                                "in '{text}': specials={v} is not one of ieee, nan, none"
                            )));
                        }
                    };
                }
                if let Some((_, v)) = kv.iter().find(|(k, _)| *k == "subnormals") {
                    f.subnormals = match *v {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(FormatError(format!(
                                "in '{text}': subnormals={v} is not true or false"
                            )));
                        }
                    };
                }
                f.validate()
                    .map_err(|e| FormatError(format!("in '{text}': {}", e.0)))?;
                Ok(Format::Float(f))
            }
            "fixed" => {
                check_keys(&["wl", "fl"])?;
                let wl = get_int("wl")?.ok_or_else(|| {
                    FormatError(format!("in '{text}': fixed(...) needs wl=WORD_BITS"))
                })?;
                let fl = get_int("fl")?.ok_or_else(|| {
                    FormatError(format!("in '{text}': fixed(...) needs fl=FRACTION_BITS"))
                })?;
                if !(1..=32).contains(&wl) {
                    return Err(FormatError(format!(
                        "in '{text}': wl={wl} is out of range; word length must be 1..=32 bits"
                    )));
                }
                if fl < 0 || fl > wl {
                    return Err(FormatError(format!(
                        "in '{text}': fl={fl} must be between 0 and wl={wl}"
                    )));
                }
                Ok(Format::Fixed(FixedFormat {
                    wl: wl as u32,
                    fl: fl as u32,
                }))
            }
            _ => Err(FormatError(format!(
                "unknown format '{text}'; allowed: {ALLOWED}"
            ))),
        }
    }
}

/// `block(elem=FORMAT,size=N,scale=e8m0|e4m3)`'s arguments (`args`, lowercase, no spaces).
fn parse_block(text: &str, args: &str) -> Result<BlockFormat, FormatError> {
    // Split at the commas outside parentheses: the element may be `float(e=3,m=2)`.
    let mut parts = Vec::new();
    let (mut depth, mut from) = (0i32, 0);
    for (i, c) in args.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&args[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&args[from..]);
    let (mut element, mut size, mut scale) = (None, None, None);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            FormatError(format!(
                "in '{text}': '{part}' is not of the form key=value"
            ))
        })?;
        let twice = || FormatError(format!("in '{text}': '{k}' is given twice"));
        match k {
            "elem" => {
                let f: Format = v
                    .parse()
                    .map_err(|e: FormatError| FormatError(format!("in '{text}': {}", e.0)))?;
                let el = match f {
                    Format::Float(x) => ScalarFormat::Float(x),
                    Format::Fixed(x) => ScalarFormat::Fixed(x),
                    Format::Block(_) => {
                        return Err(FormatError(format!(
                            "in '{text}': the element must be a float or fixed-point format, not the block format {f}"
                        )));
                    }
                };
                if element.replace(el).is_some() {
                    return Err(twice());
                }
            }
            "size" => {
                let n: u32 = v.parse().map_err(|_| {
                    FormatError(format!(
                        "in '{text}': size={v} is not a whole number in 1..={MAX_BLOCK}"
                    ))
                })?;
                if size.replace(n).is_some() {
                    return Err(twice());
                }
            }
            "scale" => {
                let sc = match v {
                    "e8m0" => BlockScale::E8m0,
                    "e4m3" => BlockScale::E4m3,
                    _ => {
                        return Err(FormatError(format!(
                            "in '{text}': scale={v} is not one of e8m0 (a power of two a block), e4m3 (an E4M3 byte a block and an fp32 scale a tensor)"
                        )));
                    }
                };
                if scale.replace(sc).is_some() {
                    return Err(twice());
                }
            }
            _ => {
                return Err(FormatError(format!(
                    "in '{text}': unknown key '{k}'; block(...) takes elem, size, scale"
                )));
            }
        }
    }
    let b = BlockFormat {
        element: element
            .ok_or_else(|| FormatError(format!("in '{text}': block(...) needs elem=FORMAT")))?,
        size: size.unwrap_or(MX_BLOCK as u32),
        scale: scale.unwrap_or(BlockScale::E8m0),
    };
    b.validate()
        .map_err(|e| FormatError(format!("in '{text}': {}", e.0)))?;
    Ok(b)
}

/// Number of u32 words holding `n` codes of `w` bits, densely packed.
pub fn packed_words(n: usize, w: u32) -> usize {
    (n * w as usize).div_ceil(32)
}

/// Packs `w`-bit codes (1..=32) densely into u32 words.
pub fn pack(codes: &[u32], w: u32) -> Vec<u32> {
    assert!((1..=32).contains(&w), "code width must be 1..=32, got {w}");
    let mask = if w == 32 { u32::MAX } else { (1u32 << w) - 1 };
    let mut words = vec![0u32; packed_words(codes.len(), w)];
    for (i, &c) in codes.iter().enumerate() {
        let c = (c & mask) as u64;
        let bit = i * w as usize;
        let (word, off) = (bit / 32, bit % 32);
        let v = c << off;
        words[word] |= v as u32;
        if off + w as usize > 32 {
            words[word + 1] |= (v >> 32) as u32;
        }
    }
    words
}
