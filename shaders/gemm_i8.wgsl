// Exact integer GEMM (or convolution view) for fixed-point operands of at most 8 bits:
// four k-values of A and of B are packed into one word each and multiplied with
// dot4I8Packed, summing exactly in i32 (the host uses this kernel only when
// K * 2^(wl_a - 1) * 2^(wl_b - 1) < 2^31). Same tiling and overrides as gemm_f32.wgsl, with
// TK a multiple of 4, TILE_A = TK / 4 * TM and TILE_B = TK / 4 * TN packed words.
// The products [G.k_begin, G.k_end) (k_begin a multiple of TK) run in this pass; a pass that
// does not reach K keeps its i32 sums in `state` (one word per output) for the next, since
// CPU adapters (llvmpipe) stop a loop after 65,535 iterations, counting those of the loops
// nested in it. The sum is the same as in one pass.

@group(0) @binding(9) var<storage, read_write> state: array<i32>;

override TM: u32 = 64u;
override TN: u32 = 64u;
override TK: u32 = 16u;
override RM: u32 = 4u;
override RN: u32 = 4u;
override WX: u32 = 16u;
override WY: u32 = 16u;
override TILE_A: u32 = 256u;
override TILE_B: u32 = 256u;

const RMAX: u32 = 64u;

var<workgroup> tile_a: array<u32, TILE_A>; // [TK / 4][TM]
var<workgroup> tile_b: array<u32, TILE_B>; // [TK / 4][TN]

fn packed_a(i: u32, k0: u32) -> u32 {
    var v = vec4<i32>(0);
    for (var t = 0u; t < 4u; t++) {
        if (i < G.m && k0 + t < G.k) {
            v[t] = int_a(i, k0 + t);
        }
    }
    return pack4xI8(v);
}

fn packed_b(k0: u32, j: u32) -> u32 {
    var v = vec4<i32>(0);
    for (var t = 0u; t < 4u; t++) {
        if (j < G.n && k0 + t < G.k) {
            v[t] = int_b(k0 + t, j);
        }
    }
    return pack4xI8(v);
}

@compute @workgroup_size(WX, WY)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let threads = WX * WY;
    let kq = TK / 4u;
    var acc: array<i32, RMAX>;
    if (G.k_begin > 0u) {
        for (var r = 0u; r < RM; r++) {
            for (var q = 0u; q < RN; q++) {
                let gi = row0 + lid.y * RM + r;
                let gj = col0 + lid.x * RN + q;
                if (gi < G.m && gj < G.n) {
                    acc[r * RN + q] = state[gi * G.n + gj];
                }
            }
        }
    }
    for (var k0 = G.k_begin; k0 < G.k_end; k0 += TK) {
        for (var e = li; e < TILE_A; e += threads) {
            tile_a[e] = packed_a(row0 + e % TM, k0 + 4u * (e / TM));
        }
        for (var e = li; e < TILE_B; e += threads) {
            tile_b[e] = packed_b(k0 + 4u * (e / TN), col0 + e % TN);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < kq; kk++) {
            var a: array<u32, 8>;
            var b: array<u32, 8>;
            for (var r = 0u; r < RM; r++) {
                a[r] = tile_a[kk * TM + lid.y * RM + r];
            }
            for (var q = 0u; q < RN; q++) {
                b[q] = tile_b[kk * TN + lid.x * RN + q];
            }
            for (var r = 0u; r < RM; r++) {
                for (var q = 0u; q < RN; q++) {
                    acc[r * RN + q] += dot4I8Packed(a[r], b[q]);
                }
            }
        }
        workgroupBarrier();
    }
    if (G.k_end < G.k) {
        for (var r = 0u; r < RM; r++) {
            for (var q = 0u; q < RN; q++) {
                let gi = row0 + lid.y * RM + r;
                let gj = col0 + lid.x * RN + q;
                if (gi < G.m && gj < G.n) {
                    state[gi * G.n + gj] = acc[r * RN + q];
                }
            }
        }
        return;
    }
    let exp2 = scale_a(0u).exp + scale_b(0u).exp - i32(fmt_a().fl) - i32(fmt_b().fl);
    for (var r = 0u; r < RM; r++) {
        let gi = row0 + lid.y * RM + r;
        for (var q = 0u; q < RN; q++) {
            let gj = col0 + lid.x * RN + q;
            if (gi < G.m && gj < G.n) {
                let s = acc[r * RN + q];
                var c = i64_to_f32_bits(vec2<u32>(bitcast<u32>(s), select(0u, 0xffffffffu, s < 0)), exp2);
                if (G.has_bias != 0u) {
                    c = sf_add(c, bias_at(gi, gj));
                }
                store_out(out_index(gi, gj), c);
            }
        }
    }
}
