// One quantization dispatch's parameters (32 words); mirrors src/gpu/params.rs.

struct QuantParams {
    fmt: Fmt,
    n: u32,         // elements in the tensor
    mode: u32,      // 0 nearest, 1 nearest-away, 2 toward-zero, 3 stochastic
    sr_bits: u32,   // random bits for stochastic rounding
    saturate: u32,  // 1 to clamp overflow to max
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    scaling: u32,   // scaling word: kind (0 none, 1 tensor, 2 E8M0, 3 E4M3 blocks) | block << 8
    groups_x: u32,  // workgroups along x in this dispatch
    count: u32,     // work items in this dispatch
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
    _pad5: u32,
}

// The quantization kernels take their parameters at binding 0.
@group(0) @binding(0) var<uniform> P: QuantParams;

