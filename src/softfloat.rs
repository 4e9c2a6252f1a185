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

/// `(sig, exp2)` of nonzero finite |x| bits with sig normalized to [2^23, 2^24).
fn split_normalized(mag: u32) -> (u32, i32) {
    let (s, e) = split(mag);
    let shift = s.leading_zeros() - 8;
    (s << shift, e - shift as i32)
}

/// `a / b` of f32 bit patterns, as IEEE binary32 division.
pub fn div(a: u32, b: u32) -> u32 {
    let sign = (a ^ b) & 0x8000_0000;
    let (ma, mb) = (a & 0x7fff_ffff, b & 0x7fff_ffff);
    if is_nan(a) || is_nan(b) || (ma == INF && mb == INF) || (ma == 0 && mb == 0) {
        return CANONICAL_NAN;
    }
    if ma == INF || mb == 0 {
        return sign | INF;
    }
    if ma == 0 || mb == INF {
        return sign;
    }
    let ((sa, ea), (sb, eb)) = (split_normalized(ma), split_normalized(mb));
    // 27 quotient bits of sa * 2^26 / sb (sa / sb lies in (1/2, 2)), and a sticky bit.
    let num = (sa as u64) << 26;
    let q = (num / sb as u64) as u32;
    let sticky = !num.is_multiple_of(sb as u64) as u32;
    make_f32_bits(sign != 0, q | sticky, ea - eb - 26)
}

/// The square root of f32 bits, as IEEE binary32 `sqrt` (correctly rounded).
pub fn sqrt(a: u32) -> u32 {
    let mag = a & 0x7fff_ffff;
    if is_nan(a) || (a >> 31 == 1 && mag != 0) {
        return CANONICAL_NAN;
    }
    if mag == 0 || mag == INF {
        return a;
    }
    let (mut sig, mut e) = split_normalized(mag);
    // An even exponent, with sig in [2^24, 2^26).
    let shift = if e % 2 != 0 { 1 } else { 2 };
    sig <<= shift;
    e -= shift;
    // sqrt(sig * 2^26) has 26 bits: 24 significant, a round bit and one the sticky bit joins.
    let radicand = (sig as u64) << 26;
    let root = radicand.isqrt();
    let sticky = (root * root != radicand) as u32;
    make_f32_bits(false, root as u32 | sticky, (e - 26) / 2)
}

/// The nearest integer to f32 bits x (ties to even); |x| must be below 2^30.
pub fn round_to_int(x: u32) -> i32 {
    let mag = x & 0x7fff_ffff;
    if mag < 0x3f00_0000 {
        return 0; // |x| < 0.5
    }
    let (sig, exp2) = split(mag);
    let n = if exp2 >= 0 {
        sig << exp2
    } else {
        crate::quant::round_shifted(sig, -exp2, crate::quant::Rounding::Nearest, 0)
    } as i32;
    if x >> 31 == 1 { -n } else { n }
}

const LOG2E: u32 = 0x3fb8_aa3b; // 1.44269504
const LN2_HI: u32 = 0x3f31_7200; // 0.693145751953125, 16 significant bits: n * LN2_HI is exact
const LN2_LO: u32 = 0x35bf_be8e; // 1.42860677e-6 = ln 2 - LN2_HI
/// 1/6!, 1/5!, 1/4!, 1/3!, 1/2!, 1, 1: Horner coefficients of e^r, highest first.
const EXP_POLY: [u32; 7] = [
    0x3ab6_0b61, // 1/720
    0x3c08_8889, // 1/120
    0x3d2a_aaab, // 1/24
    0x3e2a_aaab, // 1/6
    0x3f00_0000, // 1/2
    0x3f80_0000, // 1
    0x3f80_0000, // 1
];

/// e^x of f32 bits, deterministic: the same operations in the same order on every device.
///
/// x = n ln2 + r with n = round(x log2 e) and |r| <= 0.35, e^r by a degree-6 Taylor
/// polynomial (truncation below 0.35^7/7! < 1.3e-7 relative), scaled by 2^n exactly.
pub fn exp(x: u32) -> u32 {
    if is_nan(x) {
        return CANONICAL_NAN;
    }
    let v = f32::from_bits(x);
    if v > 88.72284 {
        return INF;
    }
    if v < -103.97209 {
        return 0;
    }
    let n = round_to_int(mul(x, LOG2E));
    let nf = make_f32_bits(n < 0, n.unsigned_abs(), 0);
    let r = add(
        add(x, mul(nf, LN2_HI) ^ 0x8000_0000),
        mul(nf, LN2_LO) ^ 0x8000_0000,
    );
    let mut p = EXP_POLY[0];
    for &c in &EXP_POLY[1..] {
        p = add(mul(p, r), c);
    }
    let (sig, e) = split(p & 0x7fff_ffff);
    make_f32_bits(false, sig, e + n)
}

/// 1/11!, 1/10!, ..., 1/2 (f32 bits): expm1's Taylor coefficients beyond x, Horner order.
const EXPM1_POLY: [u32; 10] = [
    0x32d7_322b, // 1/11!
    0x3493_f27e, // 1/10!
    0x3638_ef1d, // 1/9!
    0x37d0_0d01, // 1/8!
    0x3950_0d01, // 1/7!
    0x3ab6_0b61, // 1/6!
    0x3c08_8889, // 1/5!
    0x3d2a_aaab, // 1/4!
    0x3e2a_aaab, // 1/3!
    0x3f00_0000, // 1/2
];

/// e^x - 1 of f32 bits, deterministic, accurate where e^x is near 1 (Adam's bias
/// corrections 1 - beta^t = -expm1(t ln beta)).
///
/// |x| < 0.6875: x + x^2 (1/2 + x/3! + ... + x^9/11!) (truncation below 0.69^12/12! <
/// 3e-11); beyond, e^x - 1, where e^x is at most 0.51 or at least 1.98 and the
/// subtraction cancels at most one bit.
pub fn expm1(x: u32) -> u32 {
    if is_nan(x) {
        return CANONICAL_NAN;
    }
    let mag = x & 0x7fff_ffff;
    if mag == 0 {
        return x;
    }
    if mag >= 0x3f30_0000 {
        return add(exp(x), 0xbf80_0000);
    }
    let mut q = EXPM1_POLY[0];
    for &c in &EXPM1_POLY[1..] {
        q = add(mul(q, x), c);
    }
    add(x, mul(mul(x, x), q))
}

/// A u32 that orders f32 bit patterns as their values (-0 just below +0; NaNs at the
/// ends): compared as integers, so no device's float comparison can differ.
pub fn order_key(b: u32) -> u32 {
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}
