//! Accumulator models of a GEMM: in what precision products are summed.

use crate::format::Format;
use std::fmt;
use std::str::FromStr;

/// How a GEMM sums its products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accumulator {
    /// Hardware f32 in any order (fused multiply-add allowed). Fixed-point operands
    /// instead accumulate exactly in 64-bit integers and round to f32 once.
    Fp32,
    /// An emulated accumulator: within a chunk of `chunk` products the running sum is
    /// held in f32 (each product and addition rounded to nearest even, in order of k);
    /// after every chunk it is rounded (nearest even) to `format`.
    Emulated {
        /// The accumulator's format (not an MX format).
        format: Format,
        /// Products per chunk (>= 1).
        chunk: usize,
    },
}

/// Why accumulator text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AccumulatorError(pub String);

impl FromStr for Accumulator {
    type Err = AccumulatorError;

    /// `fp32`, or `FORMAT[:CHUNK]` for an emulated accumulator (chunk 1 by default).
    fn from_str(s: &str) -> Result<Accumulator, AccumulatorError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("fp32") {
            return Ok(Accumulator::Fp32);
        }
        let (f, chunk) = match s.rsplit_once(':') {
            Some((f, c)) if !c.contains(')') => {
                let chunk: usize = c.parse().map_err(|_| {
                    AccumulatorError(format!(
                        "accumulator '{s}': chunk '{c}' is not a whole number"
                    ))
                })?;
                (f, chunk)
            }
            _ => (s, 1),
        };
        if chunk == 0 {
            return Err(AccumulatorError(format!(
                "accumulator '{s}': the chunk must be at least 1"
            )));
        }
        let format: Format = f
            .parse()
            .map_err(|e| AccumulatorError(format!("accumulator '{s}': {e}")))?;
        if format.block().is_some() {
            return Err(AccumulatorError(format!(
                "accumulator '{s}': a block format (MX, NVFP4) cannot be an accumulator"
            )));
        }
        Ok(Accumulator::Emulated { format, chunk })
    }
}

impl fmt::Display for Accumulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accumulator::Fp32 => f.write_str("fp32"),
            Accumulator::Emulated { format, chunk } => write!(f, "{format}:{chunk}"),
        }
    }
}

/// Everything that decides what a GEMM computes: C = op(A) op(B) (+ bias), quantized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmSpec {
    /// Use A transposed (A is stored K x M).
    pub trans_a: bool,
    /// Use B transposed (B is stored N x K).
    pub trans_b: bool,
    /// How products are summed.
    pub acc: Accumulator,
    /// The output's format, rounding, saturation, scaling and random stream.
    pub out: crate::quant::QuantSpec,
}

/// How a GEMM runs, decided from its spec and operand formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmMode {
    /// Hardware f32 accumulation.
    Fp32,
    /// Fixed-point operands: exact 64-bit integer accumulation.
    ExactInteger,
    /// An emulated accumulator format.
    Emulated,
}

/// Why a GEMM cannot run as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GemmError(pub String);

impl GemmSpec {
    /// fp32 accumulation, fp32 output, nothing transposed.
    pub fn new() -> GemmSpec {
        GemmSpec {
            trans_a: false,
            trans_b: false,
            acc: Accumulator::Fp32,
            out: crate::quant::QuantSpec::new(Format::FP32),
        }
    }

    /// `(m, n, k)` of op(A) op(B) from the stored 2-D shapes (and the bias length, if any).
    pub fn dims(
        &self,
        a: &[usize],
        b: &[usize],
        bias: Option<usize>,
    ) -> Result<(usize, usize, usize), GemmError> {
        let two = |s: &[usize], name: &str| -> Result<(usize, usize), GemmError> {
            match s {
                [r, c] if *r > 0 && *c > 0 => Ok((*r, *c)),
                _ => Err(GemmError(format!(
                    "{name} must be a non-empty 2-D matrix, got shape {s:?}"
                ))),
            }
        };
        let (ar, ac) = two(a, "A")?;
        let (br, bc) = two(b, "B")?;
        let (m, ka) = if self.trans_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if self.trans_b { (bc, br) } else { (br, bc) };
        if ka != kb {
            return Err(GemmError(format!(
                "inner dimensions differ: op(A) is {m}x{ka}, op(B) is {kb}x{n}"
            )));
        }
        match bias {
            Some(len) if len != n => Err(GemmError(format!(
                "bias has {len} values, C has {n} columns"
            ))),
            _ => Ok((m, n, ka)),
        }
    }

    /// The way this GEMM runs for operands in formats `fa` and `fb` with inner dimension `k`.
    pub fn mode(&self, fa: &Format, fb: &Format, k: usize) -> Result<GemmMode, GemmError> {
        match (self.acc, fa, fb) {
            (Accumulator::Emulated { .. }, _, _) => Ok(GemmMode::Emulated),
            (Accumulator::Fp32, Format::Fixed(x), Format::Fixed(y)) => {
                // |sum| <= k * 2^(wl_a - 1) * 2^(wl_b - 1) must stay below 2^63.
                let bits = (x.wl - 1) + (y.wl - 1) + usize::BITS - (k.max(1) - 1).leading_zeros();
                if bits > 63 {
                    return Err(GemmError(format!(
                        "{fa} x {fb} over k={k} can exceed 64-bit exact accumulation; use an emulated accumulator (--acc FORMAT:CHUNK)"
                    )));
                }
                Ok(GemmMode::ExactInteger)
            }
            _ => Ok(GemmMode::Fp32),
        }
    }
}

impl Default for GemmSpec {
    fn default() -> GemmSpec {
        GemmSpec::new()
    }
}
