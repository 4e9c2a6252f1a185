// GEMM (or a convolution's GEMM view) with bit-exact accumulation, one output element
// per invocation:
// mode 1 sums fixed-point integer products exactly in 64 bits; mode 2 is the emulated
// accumulator (f32 soft-float within a chunk, rounded to the accumulator format after it).

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = item_index(gid, G.groups_x);
    if (idx >= G.count) {
        return;
    }
    let i = idx / G.n;
    let j = idx % G.n;
    var c = 0u;
    if (G.mode == 1u) {
        var acc = vec2<u32>(0u, 0u);
        for (var kk = 0u; kk < G.k; kk++) {
            acc = i64_add(acc, i32_mul_wide(int_a(i, kk), int_b(kk, j)));
        }
        let exp2 = scale_a(0u) + scale_b(0u) - i32(G.fa.fl) - i32(G.fb.fl);
        c = i64_to_f32_bits(acc, exp2);
    } else {
        var kk = 0u;
        loop {
            if (kk >= G.k) {
                break;
            }
            var s = c;
            let end = min(G.k, kk + G.chunk);
            for (; kk < end; kk++) {
                s = sf_add(s, sf_mul(value_a(i, kk), value_b(kk, j)));
            }
            let r = round_element(G.facc, s, 0, 0u, 0u, false, 0u);
            c = decode_code(G.facc, r.x, 0);
        }
    }
    if (G.has_bias != 0u) {
        c = sf_add(c, bias_at(i, j));
    }
    c_out[out_index(i, j)] = c;
}
