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
    inner: u32,     // column sums: values per (row, column), e.g. a channel's pixels
    in_h: u32,      // pooling: input plane height
    in_w: u32,      // pooling: input plane width
    out_h: u32,     // pooling: output plane height
    out_w: u32,     // pooling: output plane width
    pool: u32,      // pooling: window size and stride
}

@group(0) @binding(0) var<uniform> E: ElemParams;
