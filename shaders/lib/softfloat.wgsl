// f32 arithmetic rounded to nearest even with subnormals, as IEEE binary32, whatever the
// device flushes or fuses: the twin of src/softfloat.rs. Needs quant.wgsl (make_f32_bits) and rng.wgsl (mulhilo).
// sf_mul and sf_add come before this file, in one of three forms the shader assembly picks
// per adapter class: softfloat_gate.wgsl (the hardware's f32 result where it is exact, else
// the integer path here), softfloat_f64.wgsl (through f64, branch-free, subnormals built by
// hand) or softfloat_f64_native.wgsl (through f64 and the device's conversions, where they
// keep subnormals).

fn sf_is_nan(b: u32) -> bool {
    return (b & 0x7fffffffu) > 0x7f800000u;
}

// Whether f32 bits are a normal finite number.
fn sf_normal(b: u32) -> bool {
    let e = (b >> 23u) & 0xffu;
    return e != 0u && e != 0xffu;
}

// Whether f32 bits are zero or a normal finite number.
fn sf_plain(b: u32) -> bool {
    return sf_normal(b) || (b & 0x7fffffffu) == 0u;
}

fn sf_mul_exact(a: u32, b: u32) -> u32 {
    let sign = (a ^ b) & 0x80000000u;
    let ma = a & 0x7fffffffu;
    let mb = b & 0x7fffffffu;
    if (sf_is_nan(a) || sf_is_nan(b)) {
        return CANONICAL_NAN;
    }
    if (ma == 0x7f800000u || mb == 0x7f800000u) {
        if (ma == 0u || mb == 0u) {
            return CANONICAL_NAN;
        }
        return sign | 0x7f800000u;
    }
    if (ma == 0u || mb == 0u) {
        return sign;
    }
    let p = mulhilo(f32_sig(ma), f32_sig(mb));
    let c = compress64(p.x, p.y);
    return make_f32_bits(sign != 0u, c.x, f32_exp2(ma) + f32_exp2(mb) + i32(c.y));
}

fn sf_add_exact(a: u32, b: u32) -> u32 {
    if (sf_is_nan(a) || sf_is_nan(b)) {
        return CANONICAL_NAN;
    }
    let ma = a & 0x7fffffffu;
    let mb = b & 0x7fffffffu;
    if (ma == 0x7f800000u || mb == 0x7f800000u) {
        if (ma == 0x7f800000u && mb == 0x7f800000u && ((a ^ b) >> 31u) == 1u) {
            return CANONICAL_NAN;
        }
        return select(b, a, ma == 0x7f800000u);
    }
    if (ma == 0u && mb == 0u) {
        return a & b;
    }
    if (mb == 0u) {
        return a;
    }
    if (ma == 0u) {
        return b;
    }
    var big = a;
    var small = b;
    if (mb > ma) {
        big = b;
        small = a;
    }
    let bm = big & 0x7fffffffu;
    let smm = small & 0x7fffffffu;
    let eb = f32_exp2(bm);
    let big7 = f32_sig(bm) << 7u;
    let d = u32(eb - f32_exp2(smm));
    var small7 = 1u;
    if (d < 32u) {
        let s = f32_sig(smm) << 7u;
        small7 = (s >> d) | select(0u, 1u, (s & low_mask(d)) != 0u);
    }
    var sum: u32;
    if (((a ^ b) >> 31u) == 0u) {
        sum = big7 + small7;
    } else {
        sum = big7 - small7;
    }
    if (sum == 0u) {
        return 0u;
    }
    return make_f32_bits((big >> 31u) == 1u, sum, eb - 7);
}

// The top 32 significant bits of the 64-bit magnitude (hi, lo), with a sticky bit for
// the rest, and how far they were shifted down: vec2(sig, shift).
fn compress64(hi: u32, lo: u32) -> vec2<u32> {
    if (hi == 0u) {
        return vec2<u32>(lo, 0u);
    }
    let s = firstLeadingBit(hi) + 1u; // 1..=32
    if (s == 32u) {
        return vec2<u32>(hi | select(0u, 1u, lo != 0u), 32u);
    }
    let kept = (hi << (32u - s)) | (lo >> s);
    return vec2<u32>(kept | select(0u, 1u, (lo & ((1u << s) - 1u)) != 0u), s);
}

// 64-bit two's-complement integers as vec2(lo, hi).
fn i64_neg(v: vec2<u32>) -> vec2<u32> {
    let lo = ~v.x + 1u;
    return vec2<u32>(lo, ~v.y + select(0u, 1u, lo == 0u));
}

fn i64_add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

// The exact 64-bit product of two i32.
fn i32_mul_wide(a: i32, b: i32) -> vec2<u32> {
    let p = mulhilo(bitcast<u32>(abs(a)), bitcast<u32>(abs(b)));
    let v = vec2<u32>(p.y, p.x);
    if ((a < 0) != (b < 0)) {
        return i64_neg(v);
    }
    return v;
}

// The f32 nearest (ties to even) to the 64-bit integer v times 2^exp2.
fn i64_to_f32_bits(v: vec2<u32>, exp2: i32) -> u32 {
    let neg = (v.y >> 31u) == 1u;
    var mag = v;
    if (neg) {
        mag = i64_neg(v);
    }
    let c = compress64(mag.y, mag.x);
    return make_f32_bits(neg, c.x, exp2 + i32(c.y));
}

// f32 bits of a / b, as IEEE binary32 division (restoring long division, 27 quotient bits).
fn sf_div(a: u32, b: u32) -> u32 {
    let sign = (a ^ b) & 0x80000000u;
    let ma = a & 0x7fffffffu;
    let mb = b & 0x7fffffffu;
    if (sf_is_nan(a) || sf_is_nan(b) || (ma == 0x7f800000u && mb == 0x7f800000u) || (ma == 0u && mb == 0u)) {
        return CANONICAL_NAN;
    }
    if (ma == 0x7f800000u || mb == 0u) {
        return sign | 0x7f800000u;
    }
    if (ma == 0u || mb == 0x7f800000u) {
        return sign;
    }
    let za = countLeadingZeros(f32_sig(ma)) - 8u;
    let zb = countLeadingZeros(f32_sig(mb)) - 8u;
    let sa = f32_sig(ma) << za;
    let sb = f32_sig(mb) << zb;
    var r = sa;
    var q = 0u;
    for (var i = 0u; i < 27u; i++) {
        let bit = r >= sb;
        if (bit) {
            r -= sb;
        }
        q = (q << 1u) | select(0u, 1u, bit);
        r = r << 1u;
    }
    let e = (f32_exp2(ma) - i32(za)) - (f32_exp2(mb) - i32(zb)) - 26;
    return make_f32_bits(sign != 0u, q | select(0u, 1u, r != 0u), e);
}

// f32 bits of sqrt(a), as IEEE binary32 sqrt: a 26-bit integer root of sig * 2^26, found
// two radicand bits at a time (restoring), then rounded with a sticky bit.
fn sf_sqrt(a: u32) -> u32 {
    let mag = a & 0x7fffffffu;
    if (sf_is_nan(a) || ((a >> 31u) == 1u && mag != 0u)) {
        return CANONICAL_NAN;
    }
    if (mag == 0u || mag == 0x7f800000u) {
        return a;
    }
    let z = countLeadingZeros(f32_sig(mag)) - 8u;
    var sig = f32_sig(mag) << z;
    var e = f32_exp2(mag) - i32(z);
    // An even exponent, with sig in [2^24, 2^26).
    let shift = select(2u, 1u, (e & 1) != 0);
    sig = sig << shift;
    e -= i32(shift);
    // The radicand sig * 2^26: pair j (bits 2j+1, 2j) is sig's bits 2j-26.. for j >= 13, else 0.
    var q = 0u;
    var r = 0u;
    for (var j = 25i; j >= 0; j--) {
        var pair = 0u;
        if (j >= 13) {
            pair = (sig >> u32(2 * j - 26)) & 3u;
        }
        r = (r << 2u) | pair;
        let trial = (q << 2u) | 1u;
        if (r >= trial) {
            r -= trial;
            q = (q << 1u) | 1u;
        } else {
            q = q << 1u;
        }
    }
    return make_f32_bits(false, q | select(0u, 1u, r != 0u), (e - 26) / 2);
}

// The nearest integer to f32 bits x (ties to even); |x| < 2^30.
fn sf_round_to_int(x: u32) -> i32 {
    let mag = x & 0x7fffffffu;
    if (mag < 0x3f000000u) {
        return 0;
    }
    let e = f32_exp2(mag);
    var n: u32;
    if (e >= 0) {
        n = f32_sig(mag) << u32(e);
    } else {
        n = round_shifted(f32_sig(mag), -e, 0u, 0u, 0u);
    }
    if ((x >> 31u) == 1u) {
        return -i32(n);
    }
    return i32(n);
}

// e^x of f32 bits, deterministic: the twin of softfloat::exp in src/softfloat.rs.
fn sf_exp(x: u32) -> u32 {
    if (sf_is_nan(x)) {
        return CANONICAL_NAN;
    }
    if (bitcast<f32>(x) > 88.72284) {
        return 0x7f800000u;
    }
    if (bitcast<f32>(x) < -103.97209) {
        return 0u;
    }
    let n = sf_round_to_int(sf_mul(x, 0x3fb8aa3bu));
    let nf = make_f32_bits(n < 0, u32(abs(n)), 0);
    let r = sf_add(sf_add(x, sf_mul(nf, 0x3f317200u) ^ 0x80000000u), sf_mul(nf, 0x35bfbe8eu) ^ 0x80000000u);
    // Horner's steps in a loop, not unrolled: each sf_mul and sf_add carries its integer
    // path, and the shader compiler inlines every call (six copies took seconds to compile).
    var c = array<u32, 6>(0x3c088889u, 0x3d2aaaabu, 0x3e2aaaabu, 0x3f000000u, 0x3f800000u, 0x3f800000u);
    var p = 0x3ab60b61u;
    for (var i = 0u; i < 6u; i++) {
        p = sf_add(sf_mul(p, r), c[i]);
    }
    let pm = p & 0x7fffffffu;
    return make_f32_bits(false, f32_sig(pm), f32_exp2(pm) + n);
}

// e^x - 1 of f32 bits, accurate near 0: the twin of softfloat::expm1 in src/softfloat.rs.
fn sf_expm1(x: u32) -> u32 {
    if (sf_is_nan(x)) {
        return CANONICAL_NAN;
    }
    let mag = x & 0x7fffffffu;
    if (mag == 0u) {
        return x;
    }
    if (mag >= 0x3f300000u) {
        return sf_add(sf_exp(x), 0xbf800000u);
    }
    // Horner's steps in a loop, as in sf_exp.
    var c = array<u32, 9>(
        0x3493f27eu, 0x3638ef1du, 0x37d00d01u, 0x39500d01u, 0x3ab60b61u,
        0x3c088889u, 0x3d2aaaabu, 0x3e2aaaabu, 0x3f000000u,
    );
    var q = 0x32d7322bu;
    for (var i = 0u; i < 9u; i++) {
        q = sf_add(sf_mul(q, x), c[i]);
    }
    return sf_add(x, sf_mul(sf_mul(x, x), q));
}

// A u32 that orders f32 bit patterns as their values (-0 just below +0; NaNs at the ends),
// compared as integers so that no device's float comparison (or flushing) can differ.
fn order_key(b: u32) -> u32 {
    if ((b >> 31u) == 1u) {
        return ~b;
    }
    return b | 0x80000000u;
}
