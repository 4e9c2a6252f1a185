// Rounding into formats and decoding codes: the twin of src/quant.rs and src/format.rs.

const CANONICAL_NAN: u32 = 0x7fc00000u;
const OVERFLOW: u32 = 0xffffffffu;
const FLAG_OVERFLOW: u32 = 1u;
const FLAG_UNDERFLOW: u32 = 2u;
const FLAG_NAN: u32 = 4u;

fn low_mask(n: u32) -> u32 {
    if (n >= 32u) {
        return 0xffffffffu;
    }
    return (1u << n) - 1u;
}

// Significand of nonzero finite |x| bits: |x| = sig * 2^exp2.
fn f32_sig(mag: u32) -> u32 {
    if ((mag >> 23u) == 0u) {
        return mag;
    }
    return (mag & 0x7fffffu) | 0x800000u;
}

fn f32_exp2(mag: u32) -> i32 {
    let e = mag >> 23u;
    if (e == 0u) {
        return -149;
    }
    return i32(e) - 150;
}

// floor(log2 |x|) of nonzero finite f32 bits.
fn floor_log2_bits(bits: u32) -> i32 {
    let e = (bits >> 23u) & 0xffu;
    if (e == 0u) {
        return i32(firstLeadingBit(bits & 0x7fffffu)) - 149;
    }
    return i32(e) - 127;
}

// Rounds sig / 2^shift to an integer (exact when shift <= 0).
fn round_shifted(sig_in: u32, shift_in: i32, mode: u32, k: u32, rand: u32) -> u32 {
    if (shift_in <= 0) {
        return sig_in << u32(-shift_in);
    }
    var sig = sig_in;
    var shift = u32(shift_in);
    if (shift > 32u) {
        let d = shift - 32u;
        if (d >= 32u) {
            sig = select(0u, 1u, sig != 0u);
        } else {
            sig = (sig >> d) | select(0u, 1u, (sig & low_mask(d)) != 0u);
        }
        shift = 32u;
    }
    var int_part = 0u;
    if (shift < 32u) {
        int_part = sig >> shift;
    }
    let frac = sig & low_mask(shift);
    let half = 1u << (shift - 1u);
    var away = false;
    switch mode {
        case 0u: {
            away = frac > half || (frac == half && (int_part & 1u) == 1u);
        }
        case 1u: {
            away = frac >= half;
        }
        case 3u: {
            var d: u32;
            if (shift <= k) {
                d = frac << (k - shift);
            } else {
                let t = shift - k;
                let q = frac >> t;
                let rem = frac & low_mask(t);
                let h = 1u << (t - 1u);
                d = q + select(0u, 1u, rem > h || (rem == h && (q & 1u) == 1u));
            }
            let r = rand >> (32u - k);
            away = d + r >= (1u << k);
        }
        default: {}
    }
    return int_part + select(0u, 1u, away);
}

// Magnitude code of sig * 2^exp2 (sig != 0) in a float format, or OVERFLOW.
fn float_magnitude(sig: u32, exp2: i32, m: u32, emin: i32, subnormals: bool, top_field_exp: i32, max_code: u32, mode: u32, k: u32, rand: u32) -> u32 {
    let u = exp2 + i32(firstLeadingBit(sig));
    if (u > top_field_exp) {
        return OVERFLOW;
    }
    let mi = i32(m);
    var code: u32;
    if (u >= emin) {
        code = (u32(u - emin) << m) + round_shifted(sig, u - mi - exp2, mode, k, rand);
    } else if (subnormals) {
        code = round_shifted(sig, emin - mi - exp2, mode, k, rand);
    } else {
        code = round_shifted(sig, emin - exp2, mode, k, rand) << m;
    }
    if (code > max_code) {
        return OVERFLOW;
    }
    return code;
}

// The f32 bits nearest to (-1)^neg * sig * 2^exp2, ties to even.
fn make_f32_bits(neg: bool, sig: u32, exp2: i32) -> u32 {
    let sign = select(0u, 0x80000000u, neg);
    if (sig == 0u) {
        return sign;
    }
    let c = float_magnitude(sig, exp2, 23u, -126, true, 128, 0x7f7fffffu, 0u, 0u, 0u);
    if (c == OVERFLOW) {
        return sign | 0x7f800000u;
    }
    return sign | c;
}

fn overflow_code(f: Fmt, sign: u32, saturate: bool, finite_rtz: bool) -> u32 {
    if (saturate || finite_rtz) {
        return sign | f.max_code;
    }
    if (f.inf_code != NONE) {
        return sign | f.inf_code;
    }
    if (f.nan_code != NONE) {
        return f.nan_code;
    }
    return sign | f.max_code;
}

// Whether f's codes are f32's own bits (IEEE binary32): unscaled, rounding into it keeps
// every finite value and decoding returns the code (NaNs made canonical).
fn is_binary32(f: Fmt) -> bool {
    return f.kind == 0u && f.bits == 32u && f.m == 23u && f.bias == 127 && f.specials == 0u && f.subnormals != 0u;
}

// `round_float` unscaled into a format where `decodes_narrow` holds, without branches
// on the value: the normal code and the one below the normals each from `round_shifted`
// with `float_magnitude`'s arguments, then the one that applies and the specials selected.
// (An f32 in the format's normal range is a normal f32: its significand's leading bit is
// bit 23.)
fn round_narrow(f: Fmt, bits: u32, mode: u32, k: u32, sat: bool, rand: u32) -> vec2<u32> {
    let sign = select(0u, f.sign_bit, (bits >> 31u) == 1u);
    let mag = bits & 0x7fffffffu;
    let sig = select((mag & 0x7fffffu) | 0x800000u, mag, (mag >> 23u) == 0u);
    let exp2 = select(i32(mag >> 23u) - 150, -149, (mag >> 23u) == 0u);
    let u = exp2 + i32(firstLeadingBit(sig));
    let emin = 1 - f.bias;
    let mi = i32(f.m);
    let normal = (u32(u - emin) << f.m) + round_shifted(sig, 23 - mi, mode, k, rand);
    let subnormals = f.subnormals != 0u;
    // At least 1 wherever it applies (u < emin); raised to 1 elsewhere.
    let shift = max(emin - exp2 - select(0, mi, subnormals), 1);
    let below = round_shifted(sig, shift, mode, k, rand) << select(f.m, 0u, subnormals);
    let c = select(normal, below, u < emin);
    let overflow = u > f.top_field_exp || c > f.max_code;
    var r = vec2(sign | c, select(0u, FLAG_UNDERFLOW, c == 0u));
    let saturate = sat || f.specials == 2u;
    r = select(r, vec2(overflow_code(f, sign, saturate, mode == 2u), FLAG_OVERFLOW), overflow);
    r = select(r, vec2(overflow_code(f, sign, saturate, false), FLAG_OVERFLOW), mag == 0x7f800000u);
    r = select(r, vec2(sign, 0u), mag == 0u);
    let nan = vec2(select(0u, f.nan_code, f.nan_code != NONE), FLAG_NAN);
    return select(r, nan, mag > 0x7f800000u);
}

// (code, flags) of f32 bits rounded into a float format.
fn round_float(f: Fmt, bits: u32, scale_exp: i32, mode: u32, k: u32, sat: bool, rand: u32) -> vec2<u32> {
    if (scale_exp == 0 && decodes_narrow(f)) {
        return round_narrow(f, bits, mode, k, sat, rand);
    }
    let neg = (bits >> 31u) == 1u;
    let sign = select(0u, f.sign_bit, neg);
    let mag = bits & 0x7fffffffu;
    let saturate = sat || f.specials == 2u;
    if (mag > 0x7f800000u) {
        return vec2<u32>(select(0u, f.nan_code, f.nan_code != NONE), FLAG_NAN);
    }
    if (mag == 0x7f800000u) {
        return vec2<u32>(overflow_code(f, sign, saturate, false), FLAG_OVERFLOW);
    }
    if (mag == 0u) {
        return vec2<u32>(sign, 0u);
    }
    if (scale_exp == 0 && is_binary32(f)) {
        return vec2<u32>(bits, 0u);
    }
    let c = float_magnitude(f32_sig(mag), f32_exp2(mag) - scale_exp, f.m, 1 - f.bias, f.subnormals != 0u, f.top_field_exp, f.max_code, mode, k, rand);
    if (c == OVERFLOW) {
        return vec2<u32>(overflow_code(f, sign, saturate, mode == 2u), FLAG_OVERFLOW);
    }
    return vec2<u32>(sign | c, select(0u, FLAG_UNDERFLOW, c == 0u));
}

// (code, flags) of f32 bits rounded into a fixed-point format (always saturating).
fn round_fixed(f: Fmt, bits: u32, scale_exp: i32, mode: u32, k: u32, rand: u32) -> vec2<u32> {
    let neg = (bits >> 31u) == 1u;
    let mag = bits & 0x7fffffffu;
    if (mag > 0x7f800000u) {
        return vec2<u32>(0u, FLAG_NAN);
    }
    if (mag == 0u) {
        return vec2<u32>(0u, 0u);
    }
    let limit = select(f.max_int, f.min_int_mag, neg);
    var n = limit;
    var flags = FLAG_OVERFLOW;
    if (mag != 0x7f800000u) {
        let sig = f32_sig(mag);
        let exp2 = f32_exp2(mag) - scale_exp;
        let qexp = -i32(f.fl);
        let top = exp2 + i32(firstLeadingBit(sig)) - qexp;
        if (top < 32) {
            // Two's-complement stochastic rounding: complemented bits for negatives.
            let r = select(rand, ~rand, neg);
            let v = round_shifted(sig, qexp - exp2, mode, k, r);
            if (v <= limit) {
                n = v;
                flags = 0u;
            }
        }
    }
    if (n == 0u) {
        flags = flags | FLAG_UNDERFLOW;
    }
    var code = n;
    if (neg) {
        code = 0u - n;
    }
    return vec2<u32>(code & low_mask(f.bits), flags);
}

fn round_element(f: Fmt, bits: u32, scale_exp: i32, mode: u32, k: u32, sat: bool, rand: u32) -> vec2<u32> {
    if (f.kind == 0u) {
        return round_float(f, bits, scale_exp, mode, k, sat, rand);
    }
    return round_fixed(f, bits, scale_exp, mode, k, rand);
}

// Whether every code of float format f decodes, unscaled, to a normal f32 or zero: its
// significand narrower than f32's, its values' exponents within f32's normal range.
fn decodes_narrow(f: Fmt) -> bool {
    let all_field = i32((f.sign_bit - 1u) >> f.m);
    return f.kind == 0u && f.m < 23u && 1 - f.bias - i32(f.m) >= -126 && all_field - f.bias <= 127;
}

// `decode_float` of an unscaled code of a format where `decodes_narrow` holds, without
// branches (a CPU adapter runs every side of a branch some lane takes): a normal's fields
// moved into place, a subnormal's significand times its unit (one exact f32 product, a
// normal f32), the specials selected.
fn decode_narrow(f: Fmt, code: u32) -> u32 {
    let sign = select(0u, 0x80000000u, (code & f.sign_bit) != 0u);
    let mag = code & (f.sign_bit - 1u);
    let field = mag >> f.m;
    let mant = mag & low_mask(f.m);
    let normal = (mag << (23u - f.m)) + (u32(127 - f.bias) << 23u);
    let unit = bitcast<f32>(u32(128 - f.bias - i32(f.m)) << 23u);
    let sub = select(0u, bitcast<u32>(f32(mant) * unit), f.subnormals != 0u);
    var v = sign | select(normal, sub, field == 0u);
    if (f.specials == 0u) {
        let top = field == (f.sign_bit - 1u) >> f.m;
        v = select(v, select(CANONICAL_NAN, sign | 0x7f800000u, mant == 0u), top);
    }
    if (f.specials == 1u) {
        v = select(v, CANONICAL_NAN, mag == f.nan_code);
    }
    return v;
}

// f32 bits of a float code times 2^scale_exp.
fn decode_float(f: Fmt, code: u32, scale_exp: i32) -> u32 {
    if (scale_exp == 0 && is_binary32(f)) {
        return select(code, CANONICAL_NAN, (code & 0x7fffffffu) > 0x7f800000u);
    }
    if (scale_exp == 0 && decodes_narrow(f)) {
        return decode_narrow(f, code);
    }
    let neg = (code & f.sign_bit) != 0u;
    let mag = code & (f.sign_bit - 1u);
    let field = mag >> f.m;
    let mant = mag & low_mask(f.m);
    let all_field = (f.sign_bit - 1u) >> f.m;
    if (f.specials == 0u && field == all_field) {
        if (mant == 0u) {
            return select(0u, 0x80000000u, neg) | 0x7f800000u;
        }
        return CANONICAL_NAN;
    }
    if (f.specials == 1u && mag == f.nan_code) {
        return CANONICAL_NAN;
    }
    if (field == 0u) {
        if (f.subnormals == 0u || mant == 0u) {
            return select(0u, 0x80000000u, neg);
        }
    }
    // The value sig * 2^exp2, sig's leading bit at `lead`: where it is a normal f32 (every
    // code of a format narrower than f32, unscaled), its bits directly; else rounded.
    var sig = mant | (1u << f.m);
    var exp2 = i32(field) - f.bias - i32(f.m) + scale_exp;
    if (field == 0u) {
        sig = mant;
        exp2 = 1 - f.bias - i32(f.m) + scale_exp;
    }
    let lead = firstLeadingBit(sig);
    let biased = exp2 + i32(lead) + 127;
    if (lead <= 23u && biased >= 1 && biased <= 254) {
        let frac = (sig << (23u - lead)) & 0x7fffffu;
        return select(0u, 0x80000000u, neg) | (u32(biased) << 23u) | frac;
    }
    return make_f32_bits(neg, sig, exp2);
}

// The integer k of a two's-complement fixed-point code (value k * 2^-fl).
fn fixed_int(f: Fmt, code: u32) -> i32 {
    let shift = 32u - f.bits;
    return bitcast<i32>(code << shift) >> shift;
}

// f32 bits of a two's-complement code times 2^(scale_exp - fl).
fn decode_fixed(f: Fmt, code: u32, scale_exp: i32) -> u32 {
    let k = fixed_int(f, code);
    return make_f32_bits(k < 0, bitcast<u32>(abs(k)), scale_exp - i32(f.fl));
}

fn decode_code(f: Fmt, code: u32, scale_exp: i32) -> u32 {
    if (f.kind == 0u) {
        return decode_float(f, code, scale_exp);
    }
    return decode_fixed(f, code, scale_exp);
}

// E8M0 exponent of an MX block from its finite amax: floor(log2 amax) - emax, clipped to [-127, 127].
fn mx_scale_exp(amax_bits: u32, emax: i32) -> i32 {
    if (amax_bits == 0u) {
        return -127;
    }
    return clamp(floor_log2_bits(amax_bits) - emax, -127, 127);
}

// Smallest power-of-two exponent s with amax / 2^s <= max.
fn tensor_scale_exp(amax_bits: u32, f: Fmt) -> i32 {
    if (amax_bits == 0u || amax_bits >= 0x7f800000u) {
        return 0;
    }
    let s = floor_log2_bits(amax_bits) - f.emax;
    let sig = f32_sig(amax_bits);
    let norm = (sig << countLeadingZeros(sig)) >> 8u;
    let moved = (u32(f.emax + 127) << 23u) | (norm & 0x7fffffu);
    return s + select(0, 1, moved > f.max_bits);
}

// The w-bit code starting at bit `off` of word `lo` (continuing into `hi`).
fn extract_code(lo: u32, hi: u32, off: u32, w: u32) -> u32 {
    var code = lo >> off;
    if (off + w > 32u) {
        code |= hi << (32u - off);
    }
    return code & low_mask(w);
}

// How element i of a tensor is scaled: by 2^exp, or (mul) by an E4M3 block's scale and the
// tensor's fp32 scale (f32 bits).
struct ElemScale {
    exp: i32,
    mul: bool,
    block: u32,
    tensor: u32,
}

// The word of a tensor's scales that holds element i's scale; `scaling` is the scaling word
// of src/gpu/params.rs's scaling_id (kind in bits 0-3, block size from bit 8).
fn scale_word_index(scaling: u32, i: u32) -> u32 {
    let kind = scaling & 15u;
    if (kind < 2u) {
        return 0u;
    }
    return (i / (scaling >> 8u)) / 4u + select(0u, 1u, kind == 3u);
}

// f32 bits of an E4M3 scale byte (0x7e = 448 at most).
fn e4m3_value(byte: u32) -> u32 {
    let e = (byte >> 3u) & 15u;
    let m = byte & 7u;
    if (e == 0u) {
        return make_f32_bits(false, m, -9);
    }
    return make_f32_bits(false, 8u | m, i32(e) - 10);
}

// The scale of element i from the scale word `sw` that holds it and, for E4M3 blocks, the
// tensor scale `tw` (the scales' word 0).
fn element_scale(scaling: u32, sw: u32, tw: u32, i: u32) -> ElemScale {
    let kind = scaling & 15u;
    var s = ElemScale(0, false, 0u, 0u);
    if (kind == 1u) {
        s.exp = bitcast<i32>(sw);
    } else if (kind >= 2u) {
        let byte = (sw >> (8u * ((i / (scaling >> 8u)) % 4u))) & 0xffu;
        if (kind == 2u) {
            s.exp = i32(byte) - 127;
        } else {
            s.mul = true;
            s.block = e4m3_value(byte);
            s.tensor = tw;
        }
    }
    return s;
}

// (code, flags) of f32 bits v rounded into f under scale s; an E4M3-scaled element is
// v / (block x tensor) rounded, zero where that scale is zero (the twin of
// quant::round_block_element). One rounding call, so that it is inlined once.
fn round_scaled(f: Fmt, v: u32, s: ElemScale, mode: u32, k: u32, sat: bool, rand: u32) -> vec2<u32> {
    var x = v;
    if (s.mul) {
        x = e4m3_prescale(v, s);
    }
    var r = round_element(f, x, s.exp, mode, k, sat, rand);
    let mag = v & 0x7fffffffu;
    if (s.mul && mag != 0u && mag < 0x7f800000u && (x & 0x7fffffffu) == 0u) {
        r.y |= FLAG_UNDERFLOW;
    }
    return r;
}

// f32 bits of a code of f under scale s: (value x block) x tensor for E4M3 blocks.
fn decode_scaled(f: Fmt, code: u32, s: ElemScale) -> u32 {
    let v = decode_code(f, code, s.exp);
    if (s.mul) {
        return e4m3_postscale(v, s);
    }
    return v;
}

// The fp32 tensor scale of E4M3 blocks of element f: finite amax / (448 x f's max), 1 where
// that is 0 (the twin of quant::e4m3_tensor_scale).
fn e4m3_tensor_scale(finite_amax: u32, f: Fmt) -> u32 {
    let s = sf_div(finite_amax, sf_mul(0x43e00000u, f.max_bits));
    return select(s, 0x3f800000u, s == 0u);
}

// The E4M3 byte of a block with finite amax under tensor scale t: (amax / max) / t to
// nearest, saturating at 448 (the twin of quant::e4m3_block_byte).
fn e4m3_block_byte(block_amax: u32, t: u32, f: Fmt) -> u32 {
    let v = sf_div(sf_div(block_amax, f.max_bits), t);
    if (v >= 0x7f800000u) {
        return 0x7eu;
    }
    if (v == 0u) {
        return 0u;
    }
    let c = float_magnitude(f32_sig(v), f32_exp2(v), 3u, -6, true, 8, 0x7eu, 0u, 0u, 0u);
    return select(c, 0x7eu, c == OVERFLOW);
}
