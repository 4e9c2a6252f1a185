// The packed operands of a fused kernel: the formats it decodes its inputs from as it loads
// them and rounds its output into as it stores it; mirrors src/gpu/params.rs IoParams.

// An input: its element format and scaling (20 words).
struct InFmt {
    fmt: Fmt,
    scaling: u32,   // 0 none, 1 per tensor, 2 MX blocks
    raw: u32,       // 1: plain f32 words, read as they are
    _p0: u32,
    _p1: u32,
}

// The output: its element format and rounding (28 words).
struct OutFmt {
    fmt: Fmt,
    mode: u32,      // 0 nearest, 1 nearest-away, 2 toward-zero, 3 stochastic
    sr_bits: u32,
    saturate: u32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    phase: u32,     // 0 round and store; 1 plain f32 words, stored as they are (no
                    // rounding, no counts); 2 only the amax a scale needs (see packed_store);
                    // 3 plain f32 words added to the words there
    scaling: u32,   // 0 none, 1 per tensor, 2 MX blocks
    add: u32,       // 1: out_addend[i] is added to each value before it is stored
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

struct IoParams {
    out: OutFmt,
    in0: InFmt,
    in1: InFmt,
    in2: InFmt,
    in3: InFmt,
}

@group(0) @binding(20) var<uniform> IO: IoParams;
