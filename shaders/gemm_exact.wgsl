// GEMM with bit-exact accumulation, one output element per invocation:
// mode 1 sums fixed-point integer products exactly in 64 bits; mode 2 is the emulated
// accumulator (f32 soft-float within a chunk, rounded to the accumulator format after it).

fn fixed_int(f: Fmt, code: u32) -> i32 {
    let shift = 32u - f.bits;
    return bitcast<i32>(code << shift) >> shift;
}

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
            let ka = fixed_int(G.fa, code_a(flat_a(i, kk)));
            let kb = fixed_int(G.fb, code_b(flat_b(kk, j)));
            acc = i64_add(acc, i32_mul_wide(ka, kb));
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
        c = sf_add(c, bias[j]);
    }
    c_out[idx] = c;
}
