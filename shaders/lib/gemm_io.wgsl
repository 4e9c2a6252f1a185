// GEMM parameters and operand access: decode element (i, k) of op(A) and (k, j) of op(B)
// straight from their packed codes and scales. Mirrors src/gpu/params.rs GemmParams.

struct GemmParams {
    fa: Fmt,
    fb: Fmt,
    facc: Fmt,
    m: u32,
    n: u32,
    k: u32,
    trans_a: u32,
    trans_b: u32,
    a_scaling: u32,  // 0 none, 1 per tensor, 2 MX blocks
    b_scaling: u32,
    mode: u32,       // 0 fp32, 1 exact integer, 2 emulated accumulator
    chunk: u32,
    has_bias: u32,
    groups_x: u32,
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> G: GemmParams;
@group(0) @binding(1) var<storage, read> a_words: array<u32>;
@group(0) @binding(2) var<storage, read> a_scales: array<u32>;
@group(0) @binding(3) var<storage, read> b_words: array<u32>;
@group(0) @binding(4) var<storage, read> b_scales: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<u32>;
@group(0) @binding(6) var<storage, read_write> c_out: array<u32>;

fn flat_a(i: u32, kk: u32) -> u32 {
    if (G.trans_a != 0u) {
        return kk * G.m + i;
    }
    return i * G.k + kk;
}

fn flat_b(kk: u32, j: u32) -> u32 {
    if (G.trans_b != 0u) {
        return j * G.k + kk;
    }
    return kk * G.n + j;
}

fn code_a(flat: u32) -> u32 {
    let w = G.fa.bits;
    let start = flat * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = a_words[wi + 1u];
    }
    return extract_code(a_words[wi], hi, off, w);
}

fn code_b(flat: u32) -> u32 {
    let w = G.fb.bits;
    let start = flat * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = b_words[wi + 1u];
    }
    return extract_code(b_words[wi], hi, off, w);
}

fn scale_a(flat: u32) -> i32 {
    var word = 0u;
    if (G.a_scaling == 2u) {
        word = a_scales[flat / 128u];
    } else if (G.a_scaling == 1u) {
        word = a_scales[0];
    }
    return element_scale_exp(G.a_scaling, word, flat);
}

fn scale_b(flat: u32) -> i32 {
    var word = 0u;
    if (G.b_scaling == 2u) {
        word = b_scales[flat / 128u];
    } else if (G.b_scaling == 1u) {
        word = b_scales[0];
    }
    return element_scale_exp(G.b_scaling, word, flat);
}

// f32 bits of op(A)[i, kk] and op(B)[kk, j].
fn value_a(i: u32, kk: u32) -> u32 {
    let f = flat_a(i, kk);
    return decode_code(G.fa, code_a(f), scale_a(f));
}

fn value_b(kk: u32, j: u32) -> u32 {
    let f = flat_b(kk, j);
    return decode_code(G.fb, code_b(f), scale_b(f));
}
