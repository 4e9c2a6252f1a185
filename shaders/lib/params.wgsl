// Parameters shared by the quantization kernels; mirrors src/gpu/params.rs field for field.

// A format, flattened (16 words).
struct Fmt {
    kind: u32,          // 0 float, 1 fixed point
    bits: u32,          // code width
    m: u32,             // mantissa bits (float)
    bias: i32,          // exponent bias (float)
    specials: u32,      // 0 ieee, 1 nan, 2 none
    subnormals: u32,    // 1 if the zero exponent field holds subnormals
    max_code: u32,      // magnitude code of the largest finite value (float)
    top_field_exp: i32, // exponent of the all-ones exponent field (float)
    sign_bit: u32,      // the sign bit of a code (float)
    inf_code: u32,      // magnitude code of Inf, or NONE
    nan_code: u32,      // canonical NaN code, or NONE
    fl: u32,            // fractional bits (fixed)
    max_int: u32,       // largest positive integer (fixed)
    min_int_mag: u32,   // magnitude of the most negative integer (fixed)
    emax: i32,          // floor(log2(max))
    max_bits: u32,      // f32 bits of the largest finite value
}

// One dispatch's parameters (32 words).
struct QuantParams {
    fmt: Fmt,
    n: u32,         // elements in the tensor
    mode: u32,      // 0 nearest, 1 nearest-away, 2 toward-zero, 3 stochastic
    sr_bits: u32,   // random bits for stochastic rounding
    saturate: u32,  // 1 to clamp overflow to max
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    scaling: u32,   // 0 none, 1 per tensor, 2 MX blocks
    groups_x: u32,  // workgroups along x in this dispatch
    count: u32,     // work items in this dispatch
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
    _pad5: u32,
}

// Every kernel takes its parameters at binding 0.
@group(0) @binding(0) var<uniform> P: QuantParams;

const NONE: u32 = 0xffffffffu;
const WG: u32 = 256u;

// The work item of an invocation in a (possibly two-dimensional) dispatch.
fn item_index(gid: vec3<u32>, groups_x: u32) -> u32 {
    return gid.x + gid.y * groups_x * WG;
}
