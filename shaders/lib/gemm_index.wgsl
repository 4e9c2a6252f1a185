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
// The operands' code words again, as 16-byte vectors (the same buffers as bindings 1 and 3).
@group(0) @binding(10) var<storage, read> a_vec: array<vec4<u32>>;
@group(0) @binding(11) var<storage, read> b_vec: array<vec4<u32>>;

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

// f32 bits of the four values stored consecutively from flat index f (a multiple of four,
// with codes of 4, 8, 16 or 32 bits: the four lie in one MX block and one aligned vec4 of
// words), read with one vector load; value by value where the buffer ends inside that vec4.
fn group_a(i: u32, kk: u32) -> vec4<u32> {
    let f = flat_a(i, kk);
    let w = G.fa.bits;
    let s = scale_a(f);
    var out = vec4<u32>(0u);
    if (f * w / 128u < arrayLength(&a_vec)) {
        let q = a_vec[f * w / 128u];
        for (var t = 0u; t < 4u; t++) {
            let bit = (f * w) % 128u + t * w;
            out[t] = decode_code(G.fa, extract_code(q[bit / 32u], 0u, bit % 32u, w), s);
        }
    } else {
        for (var t = 0u; t < 4u; t++) {
            out[t] = decode_code(G.fa, code_a(f + t), s);
        }
    }
    return out;
}

fn group_b(kk: u32, j: u32) -> vec4<u32> {
    let f = flat_b(kk, j);
    let w = G.fb.bits;
    let s = scale_b(f);
    var out = vec4<u32>(0u);
    if (f * w / 128u < arrayLength(&b_vec)) {
        let q = b_vec[f * w / 128u];
        for (var t = 0u; t < 4u; t++) {
            let bit = (f * w) % 128u + t * w;
            out[t] = decode_code(G.fb, extract_code(q[bit / 32u], 0u, bit % 32u, w), s);
        }
    } else {
        for (var t = 0u; t < 4u; t++) {
            out[t] = decode_code(G.fb, code_b(f + t), s);
        }
    }
    return out;
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
