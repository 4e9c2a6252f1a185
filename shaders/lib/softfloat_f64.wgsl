// sf_mul and sf_add through f64, without a branch: for CPU adapters, which run both sides of
// every branch (so softfloat_gate.wgsl's integer path costs on every element there) and
// have fast f64. Bit for bit the same as the integer path:
// - a product of two f32 values is exact in f64 (48 significant bits, exponents within
//   f64's normal range), so rounding it to f32 is the one rounding IEEE asks for;
// - a sum is rounded to f64 first, then to f32; with 53 >= 2 * 24 + 2 bits that double
//   rounding gives the correctly rounded f32 (Figueroa, 1995), and a sum in f32's subnormal
//   range is a multiple of 2^-149 below 2^-126, exact in both.
// Vulkan requires f64 add and multiply and f32/f64 conversions to be correctly rounded, but
// lets a device flush f32 subnormals: they are built and rounded in integers here, and
// infinities and NaN are decided on the bits.

// The exact value of finite f32 bits b (a subnormal from its integer significand).
fn sf_to_f64(b: u32) -> f64 {
    let mag = b & 0x7fffffffu;
    // mag * 2^-149: exact (mag < 2^23 here). Through i32: a CPU adapter converts signed
    // integers to f64 a vector at a time, unsigned ones lane by lane.
    let tiny = f64(i32(mag)) * 1.4012984643248171e-45lf;
    let sub = select(tiny, -tiny, (b >> 31u) != 0u);
    return select(f64(bitcast<f32>(b)), sub, mag < 0x00800000u);
}

// The f32 bits nearest (ties to even) to x, an exact or f64-rounded result whose sign, when
// it is zero, is `zero_sign`.
fn sf_from_f64(x: f64, zero_sign: u32) -> u32 {
    let sign = select(select(0u, 0x80000000u, x < 0.0lf), zero_sign, x == 0.0lf);
    let ax = abs(x);
    // Below 2^-126: the nearest multiple of 2^-149, ties to even, whose integer is the code
    // (2^23 when it rounds up to the least normal). Rounded by hand from the floor (t and
    // its parts are exact) and converted through i32, as in sf_to_f64: a CPU adapter
    // converts f64 to unsigned integers lane by lane, and lavapipe's round() to an integer
    // breaks some ties away from even. Only taken below 2^-126, where t < 2^23.
    let t = ax * 713623846352979940529142984724747568191373312.0lf;
    let fl = floor(t);
    let frac = t - fl;
    let lo = u32(i32(fl));
    let up = frac > 0.5lf || (frac == 0.5lf && (lo & 1u) == 1u);
    let sub = lo + select(0u, 1u, up);
    var r = select(bitcast<u32>(f32(ax)), sub, ax < 1.1754943508222875e-38lf);
    // From 2^128 - 2^103 (half an ulp above the largest finite f32) up: infinity.
    r = select(r, 0x7f800000u, ax >= 3.4028235677973366e38lf);
    return sign | r;
}

fn sf_inf(b: u32) -> bool {
    return (b & 0x7fffffffu) == 0x7f800000u;
}

fn sf_zero(b: u32) -> bool {
    return (b & 0x7fffffffu) == 0u;
}

fn sf_mul(a: u32, b: u32) -> u32 {
    let nan = sf_is_nan(a) || sf_is_nan(b) || (sf_inf(a) && sf_zero(b)) || (sf_zero(a) && sf_inf(b));
    let sign = (a ^ b) & 0x80000000u;
    let r = select(sf_from_f64(sf_to_f64(a) * sf_to_f64(b), sign), sign | 0x7f800000u, sf_inf(a) || sf_inf(b));
    return select(r, CANONICAL_NAN, nan);
}

fn sf_add(a: u32, b: u32) -> u32 {
    let nan = sf_is_nan(a) || sf_is_nan(b) || (sf_inf(a) && sf_inf(b) && ((a ^ b) >> 31u) != 0u);
    // A zero sum is -0 only from two negative zeros (x + -x is +0 under ties to even).
    var r = sf_from_f64(sf_to_f64(a) + sf_to_f64(b), a & b & 0x80000000u);
    r = select(r, b, sf_inf(b));
    r = select(r, a, sf_inf(a));
    return select(r, CANONICAL_NAN, nan);
}
