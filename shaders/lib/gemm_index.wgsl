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
    blk: PanelBlock, // panel kernels: the block this dispatch covers (operands.wgsl)
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
    return decode_scaled(fmt_a(), code_a(f), scale_a(f));
}

fn value_b(kk: u32, j: u32) -> u32 {
    let f = flat_b(kk, j);
    return decode_scaled(fmt_b(), code_b(f), scale_b(f));
}

// The four w-bit codes of a group from bit `first` of its 16-byte vector q.
fn group_codes(q: vec4<u32>, first: u32, w: u32) -> vec4<u32> {
    var c = vec4<u32>(0u);
    for (var t = 0u; t < 4u; t++) {
        let bit = first + t * w;
        c[t] = extract_code(q[bit / 32u], 0u, bit % 32u, w);
    }
    return c;
}

// f32 bits of four codes of format fm that share the scale s.
fn decode_group(fm: Fmt, c: vec4<u32>, s: ElemScale) -> vec4<u32> {
    return vec4<u32>(decode_scaled(fm, c.x, s), decode_scaled(fm, c.y, s), decode_scaled(fm, c.z, s), decode_scaled(fm, c.w, s));
}

// f32 bits of the four values stored consecutively from flat index f (a multiple of four,
// with codes of 4, 8, 16 or 32 bits: the four lie in one scale block and one aligned vec4 of
// words), read with one vector load; value by value where the buffer ends inside that vec4.
fn group_a(i: u32, kk: u32) -> vec4<u32> {
    let f = flat_a(i, kk);
    let bit = f * fmt_a().bits;
    var c: vec4<u32>;
    if (bit / 128u < arrayLength(&a_vec)) {
        c = group_codes(a_vec[bit / 128u], bit % 128u, fmt_a().bits);
    } else {
        c = vec4<u32>(code_a(f), code_a(f + 1u), code_a(f + 2u), code_a(f + 3u));
    }
    return decode_group(fmt_a(), c, scale_a(f));
}

fn group_b(kk: u32, j: u32) -> vec4<u32> {
    let f = flat_b(kk, j);
    let bit = f * fmt_b().bits;
    var c: vec4<u32>;
    if (bit / 128u < arrayLength(&b_vec)) {
        c = group_codes(b_vec[bit / 128u], bit % 128u, fmt_b().bits);
    } else {
        c = vec4<u32>(code_b(f), code_b(f + 1u), code_b(f + 2u), code_b(f + 3u));
    }
    return decode_group(fmt_b(), c, scale_b(f));
}

// Integer values of fixed-point operands (exact integer GEMM).
fn int_a(i: u32, kk: u32) -> i32 {
    return fixed_int(fmt_a(), code_a(flat_a(i, kk)));
}

fn int_b(kk: u32, j: u32) -> i32 {
    return fixed_int(fmt_b(), code_b(flat_b(kk, j)));
}

fn out_index(i: u32, j: u32) -> u32 {
    return i * G.n + j;
}

fn bias_at(i: u32, j: u32) -> u32 {
    return bias[j];
}
