//! Scaled fixed point (delta, b): b-bit integers times any real scale delta, rounded
//! stochastically and saturating. HALP holds its low-precision iterates in it.

use crate::softfloat;

/// A scaled fixed-point grid: the values k delta for integers |k| <= 2^(b-1) - 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaledFixed {
    /// The grid step delta.
    pub scale: f32,
    /// Bits of each code (sign included).
    pub bits: u32,
}

/// A rounded value: its code, and whether it saturated at the grid's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// The integer k of k delta.
    pub k: i32,
    /// The value lay beyond the grid (or was NaN) and was clamped.
    pub saturated: bool,
}

impl ScaledFixed {
    /// The grid of step `scale` with `bits`-bit codes (2 to 24 bits; a positive, finite,
    /// normal scale).
    pub fn new(scale: f32, bits: u32) -> Result<ScaledFixed, String> {
        if !(2..=24).contains(&bits) {
            return Err(format!("scaled fixed point takes 2 to 24 bits, not {bits}"));
        }
        if !(scale.is_normal() && scale > 0.0) {
            return Err(format!(
                "a scaled fixed-point step must be positive, finite and normal, not {scale}"
            ));
        }
        Ok(ScaledFixed { scale, bits })
    }

    /// The largest code, 2^(b-1) - 1 (the grid is symmetric).
    pub fn max_code(&self) -> i32 {
        (1 << (self.bits - 1)) - 1
    }

    /// Rounds `x` onto the grid stochastically: t = x / delta (soft-float division, as
    /// the GPU computes it), then floor(t) + 1 with probability frac(t), decided by the top
    /// 24 bits of the random word `rand` (exact: frac(t) 2^24 and rand >> 8 are both whole
    /// f32 values, so the rounding is unbiased wherever t has at most 24 fractional bits),
    /// clamped to +-max_code (counted as saturation; NaN goes to 0, saturated).
    pub fn round(&self, x: f32, rand: u32) -> Code {
        let t = f32::from_bits(softfloat::div(x.to_bits(), self.scale.to_bits()));
        let m = self.max_code() as f32;
        if t.is_nan() {
            return Code {
                k: 0,
                saturated: true,
            };
        }
        if t >= m || t <= -m {
            let k = if t >= m {
                self.max_code()
            } else {
                -self.max_code()
            };
            return Code {
                k,
                saturated: t.abs() > m,
            };
        }
        let f = t.floor();
        let frac = t - f;
        let up = frac * 16_777_216.0 > (rand >> 8) as f32;
        Code {
            k: f as i32 + up as i32,
            saturated: false,
        }
    }

    /// The value k delta (soft-float product, as the GPU computes it).
    pub fn value(&self, k: i32) -> f32 {
        f32::from_bits(softfloat::mul((k as f32).to_bits(), self.scale.to_bits()))
    }
}
