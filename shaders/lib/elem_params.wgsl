// Parameters of the elementwise training kernels (32 words); mirrors src/gpu/params.rs ElemParams.

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
    beta1c: u32,    // Adam: 1 - beta1 (f32 bits; beta1 is mu)
    beta2: u32,     // Adam: beta2 (f32 bits)
    beta2c: u32,    // Adam: 1 - beta2 (f32 bits)
    eps: u32,       // Adam: epsilon (f32 bits)
    ln_beta1: u32,  // step-state update: ln(beta1) (f32 bits)
    dynamic: u32,   // loss-scale update: 1 for dynamic scaling
    interval: u32,  // loss-scale update: good steps before the scale doubles
    ln_beta2: u32,  // step-state update: ln(beta2) (f32 bits)
    offset: u32,    // channel maps: the output channel of source channel 0
    bn_m: u32,      // batch norm: M, values per channel's statistics (f32 bits)
    bn_unbias: u32, // batch norm: M / (M - 1) (f32 bits)
    bn_keep: u32,   // batch norm: 1 - momentum (f32 bits)
    which: u32,     // optimizer update: 0 weights, 1 velocity / first moment, 2 second moment
    reserved0: u32,
    reserved1: u32,
    reserved2: u32,
}

@group(0) @binding(0) var<uniform> E: ElemParams;

// Kernels of four elements an invocation (record_io_with's Work::Quads) take the first
// 4 floor(E.n / 4) elements as whole quads; a second dispatch compiled with TAIL takes the
// last E.n % 4 one by one (where the two were one kernel, a CPU adapter ran the one-by-one
// code in every invocation).
override TAIL: bool = false;

// The elements an invocation at i (a multiple of 4) takes one by one: with TAIL the last
// E.n % 4 (past the end for every invocation but the first), else its own four where the
// kernel does not take them as a quad, within the whole quads (the grid's spare
// invocations take none).
fn one_by_one(i: u32) -> vec2<u32> {
    let quads_end = 4u * (E.n / 4u);
    if (TAIL) {
        return vec2(quads_end + i, E.n);
    }
    return vec2(i, min(i + 4u, quads_end));
}
