// GEMM (or a convolution's GEMM view) with bit-exact accumulation, one output element
// per invocation:
// mode 1 sums fixed-point integer products exactly in 64 bits; mode 2 is the emulated
// accumulator (f32 soft-float within a chunk, rounded to the accumulator format after it).
// The products [G.k_begin, G.k_end) run in this pass; a pass that does not reach K keeps
// its running state in `state` (two words per output) for the next, so that no
// invocation loops too long (CPU adapters such as llvmpipe stop a loop after 65,535
// iterations) and the sum is the same as in one pass.

@group(0) @binding(9) var<storage, read_write> state: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = item_index(gid, G.groups_x);
    if (idx >= G.count) {
        return;
    }
    let i = idx / G.n;
    let j = idx % G.n;
    let first = G.k_begin == 0u;
    let last = G.k_end >= G.k;
    var c = 0u;
    if (G.mode == 1u) {
        var acc = vec2<u32>(0u, 0u);
        if (!first) {
            acc = vec2<u32>(state[2u * idx], state[2u * idx + 1u]);
        }
        for (var kk = G.k_begin; kk < G.k_end; kk++) {
            acc = i64_add(acc, i32_mul_wide(int_a(i, kk), int_b(kk, j)));
        }
        if (!last) {
            state[2u * idx] = acc.x;
            state[2u * idx + 1u] = acc.y;
            return;
        }
        let exp2 = scale_a(0u).exp + scale_b(0u).exp - i32(fmt_a().fl) - i32(fmt_b().fl);
        c = i64_to_f32_bits(acc, exp2);
    } else {
        // c: the sum rounded after the last whole chunk; s: the running sum within a chunk.
        var s = 0u;
        if (!first) {
            c = state[2u * idx];
            s = state[2u * idx + 1u];
        }
        for (var kk = G.k_begin; kk < G.k_end; kk++) {
            if (kk % G.chunk == 0u) {
                s = c;
            }
            s = sf_add(s, sf_mul(value_a(i, kk), value_b(kk, j)));
            if ((kk + 1u) % G.chunk == 0u || kk + 1u == G.k) {
                let r = round_element(G.facc, s, 0, 0u, 0u, false, 0u);
                c = decode_code(G.facc, r.x, 0);
            }
        }
        if (!last) {
            state[2u * idx] = c;
            state[2u * idx + 1u] = s;
            return;
        }
    }
    if (G.has_bias != 0u) {
        c = sf_add(c, bias_at(i, j));
    }
    store_out(out_index(i, j), c);
}
