//! f32 addition and multiplication in integer arithmetic, rounded to nearest even with
//! subnormals: the same bits on every GPU (no fused multiply-add, no flush to zero).
//! The WGSL twin is `shaders/lib/softfloat.wgsl`.

use crate::quant::{CANONICAL_NAN, make_f32_bits};

const INF: u32 = 0x7f80_0000;

fn is_nan(b: u32) -> bool {
    b & 0x7fff_ffff > INF
}

/// `(sig, exp2)` of nonzero finite |x| bits: |x| = sig * 2^exp2 with sig < 2^24.
fn split(mag: u32) -> (u32, i32) {
    let e = mag >> 23;
    if e == 0 {
        (mag, -149)
    } else {
        ((mag & 0x7f_ffff) | 0x80_0000, e as i32 - 150)
    }
}

/// `a * b` of f32 bit patterns, as IEEE binary32 multiplication.
pub fn mul(a: u32, b: u32) -> u32 {
    let sign = (a ^ b) & 0x8000_0000;
    let (ma, mb) = (a & 0x7fff_ffff, b & 0x7fff_ffff);
    if is_nan(a) || is_nan(b) {
        return CANONICAL_NAN;
    }
    if ma == INF || mb == INF {
        return if ma == 0 || mb == 0 {
            CANONICAL_NAN
        } else {
            sign | INF
        };
    }
    if ma == 0 || mb == 0 {
        return sign;
    }
    let ((sa, ea), (sb, eb)) = (split(ma), split(mb));
    let p = sa as u64 * sb as u64; // < 2^48
    let (sig, shift) = compress64((p >> 32) as u32, p as u32);
    make_f32_bits(sign != 0, sig, ea + eb + shift)
}

/// `a + b` of f32 bit patterns, as IEEE binary32 addition.
pub fn add(a: u32, b: u32) -> u32 {
    if is_nan(a) || is_nan(b) {
        return CANONICAL_NAN;
    }
    let (ma, mb) = (a & 0x7fff_ffff, b & 0x7fff_ffff);
    if ma == INF || mb == INF {
        if ma == INF && mb == INF && (a ^ b) >> 31 == 1 {
            return CANONICAL_NAN;
        }
        return if ma == INF { a } else { b };
    }
    if ma == 0 && mb == 0 {
        return a & b; // -0 only when both are -0
    }
    if mb == 0 {
        return a;
    }
    if ma == 0 {
        return b;
    }
    // big has the larger magnitude.
    let (big, small) = if ma >= mb { (a, b) } else { (b, a) };
    let ((sb, eb), (ss, es)) = (split(big & 0x7fff_ffff), split(small & 0x7fff_ffff));
    // Seven guard bits below the 24-bit significand, and a sticky bit below those.
    let big7 = sb << 7;
    let d = (eb - es) as u32;
    let small7 = if d >= 32 {
        1 // nonzero, entirely below the guard bits
    } else {
        let s = ss << 7;
        (s >> d) | ((s & ((1u32 << d) - 1)) != 0) as u32
    };
    let same_sign = (a ^ b) >> 31 == 0;
    let sum = if same_sign {
        big7 + small7
    } else {
        big7 - small7
    };
    if sum == 0 {
        return 0; // x + (-x) = +0 under round to nearest
    }
    make_f32_bits(big >> 31 == 1, sum, eb - 7)
}

/// The f32 nearest (ties to even) to the 64-bit integer `v` times `2^exp2`.
pub fn i64_to_f32_bits(v: i64, exp2: i32) -> u32 {
    let mag = v.unsigned_abs();
    let (hi, lo) = ((mag >> 32) as u32, mag as u32);
    let (sig, shift) = compress64(hi, lo);
    make_f32_bits(v < 0, sig, exp2 + shift)
}

/// The top 32 significant bits of a 64-bit magnitude, with a sticky bit for the rest,
/// and how far they were shifted down.
pub fn compress64(hi: u32, lo: u32) -> (u32, i32) {
    if hi == 0 {
        return (lo, 0);
    }
    let s = 32 - hi.leading_zeros(); // 1..=32
    if s == 32 {
        return (hi | (lo != 0) as u32, 32);
    }
    let kept = (hi << (32 - s)) | (lo >> s);
    (kept | ((lo & ((1u32 << s) - 1)) != 0) as u32, s as i32)
}
