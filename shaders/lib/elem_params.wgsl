// Parameters of the elementwise training kernels (16 words); mirrors src/gpu/params.rs ElemParams.

struct ElemParams {
    n: u32,         // elements (or rows for per-row kernels)
    rows: u32,
    cols: u32,
    groups_x: u32,
    count: u32,     // work items in this dispatch
    lr: u32,        // f32 bits
    mu: u32,        // f32 bits: momentum
    wd: u32,        // f32 bits: weight decay
    nesterov: u32,
    scale: u32,     // f32 bits: 1 / batch for the loss gradient
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
    _pad5: u32,
}

@group(0) @binding(0) var<uniform> E: ElemParams;
