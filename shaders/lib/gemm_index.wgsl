// Plain matrix addressing for the GEMM kernels: op(A)[i, k], op(B)[k, j], C[i, j] row-major,
// bias per column. Mirrors src/gpu/params.rs GemmParams.

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
    splits: u32,     // K slices summed by separate workgroups (split-K)
    k_split: u32,    // products per slice
    k_begin: u32,   // per-element kernels: the first product of this pass
    k_end: u32,     // one past its last
}

@group(0) @binding(0) var<uniform> G: GemmParams;

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

// f32 bits of op(A)[i, kk] and op(B)[kk, j].
fn value_a(i: u32, kk: u32) -> u32 {
    let f = flat_a(i, kk);
    return decode_code(G.fa, code_a(f), scale_a(f));
}

fn value_b(kk: u32, j: u32) -> u32 {
    let f = flat_b(kk, j);
    return decode_code(G.fb, code_b(f), scale_b(f));
}

// Integer values of fixed-point operands (exact integer GEMM).
fn int_a(i: u32, kk: u32) -> i32 {
    return fixed_int(G.fa, code_a(flat_a(i, kk)));
}

fn int_b(kk: u32, j: u32) -> i32 {
    return fixed_int(G.fb, code_b(flat_b(kk, j)));
}

fn out_index(i: u32, j: u32) -> u32 {
    return i * G.n + j;
}

fn bias_at(i: u32, j: u32) -> u32 {
    return bias[j];
}
