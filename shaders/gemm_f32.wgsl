// GEMM (or a convolution's GEMM view) with f32 accumulation. A workgroup of WX x WY
// invocations computes a TM x TN tile of C, each invocation an RM x RN register tile;
// operands are decoded from their packed codes as TK-deep slices of A and B are staged in
// workgroup memory (split-K: workgroup z takes one slice of K and writes a partial sum).
// The tile sizes are pipeline-overridable, chosen per adapter
// (src/gpu/tiles.rs), with WX = TN / RN, WY = TM / RM, TILE_A = TK * TM, TILE_B = TK * TN.
// `Stage` (declared by the assembler) is the staged values' type: f32, or f16 for operands
// whose every value f16 holds exactly (src/ops/gemm.rs), halving workgroup memory; the
// products and sums stay f32, so both give the same bits.

override TM: u32 = 64u;
override TN: u32 = 64u;
override TK: u32 = 16u;
override RM: u32 = 4u;
override RN: u32 = 4u;
override WX: u32 = 16u;
override WY: u32 = 16u;
override TILE_A: u32 = 1024u;
override TILE_B: u32 = 1024u;
// How A and B are staged: 0 value by value; 1 in groups of four stored consecutively
// along K, 2 along M (A) or N (B), each group read with one 16-byte load (group_a/group_b).
// src/ops/gemm.rs sets them only where every group lies whole in one row, in one MX block
// and in one aligned vec4 of words, and the tile's extent along it is a multiple of four.
override VEC_A: u32 = 0u;
override VEC_B: u32 = 0u;

// Register tiles hold up to 8 x 8 values.
const RMAX: u32 = 64u;

var<workgroup> tile_a: array<Stage, TILE_A>; // [TK][TM]
var<workgroup> tile_b: array<Stage, TILE_B>; // [TK][TN]

@compute @workgroup_size(WX, WY)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    let threads = WX * WY;
    var acc: array<f32, RMAX>;
    // Split-K: workgroup z sums products [k_begin, k_end) only.
    let k_begin = wid.z * G.k_split;
    let k_end = min(G.k, k_begin + G.k_split);
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        if (VEC_A == 0u) {
            for (var e = li; e < TILE_A; e += threads) {
                let kk = e / TM;
                let r = e % TM;
                var v = 0.0;
                if (row0 + r < G.m && k0 + kk < k_end) {
                    v = bitcast<f32>(value_a(row0 + r, k0 + kk));
                }
                tile_a[e] = Stage(v);
            }
        } else {
            // Groups of four stored values, one vector load each: along K (VEC_A = 1) or M.
            for (var e = li; e < TILE_A / 4u; e += threads) {
                var kk = (e / TM) * 4u;
                var r = e % TM;
                var step = TM;
                if (VEC_A == 2u) {
                    kk = e / (TM / 4u);
                    r = (e % (TM / 4u)) * 4u;
                    step = 1u;
                }
                var v = vec4<u32>(0u);
                if (row0 + r < G.m && k0 + kk < k_end) {
                    v = group_a(row0 + r, k0 + kk);
                }
                for (var t = 0u; t < 4u; t++) {
                    tile_a[kk * TM + r + t * step] = Stage(bitcast<f32>(v[t]));
                }
            }
        }
        if (VEC_B == 0u) {
            for (var e = li; e < TILE_B; e += threads) {
                let kk = e / TN;
                let q = e % TN;
                var v = 0.0;
                if (col0 + q < G.n && k0 + kk < k_end) {
                    v = bitcast<f32>(value_b(k0 + kk, col0 + q));
                }
                tile_b[e] = Stage(v);
            }
        } else {
            // Groups of four stored values, one vector load each: along K (VEC_B = 1) or N.
            for (var e = li; e < TILE_B / 4u; e += threads) {
                var kk = (e / TN) * 4u;
                var q = e % TN;
                var step = TN;
                if (VEC_B == 2u) {
                    kk = e / (TN / 4u);
                    q = (e % (TN / 4u)) * 4u;
                    step = 1u;
                }
                var v = vec4<u32>(0u);
                if (col0 + q < G.n && k0 + kk < k_end) {
                    v = group_b(k0 + kk, col0 + q);
                }
                for (var t = 0u; t < 4u; t++) {
                    tile_b[kk * TN + q + t * step] = Stage(bitcast<f32>(v[t]));
                }
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var a: array<f32, 8>;
            var b: array<f32, 8>;
            for (var r = 0u; r < RM; r++) {
                a[r] = f32(tile_a[kk * TM + lid.y * RM + r]);
            }
            for (var q = 0u; q < RN; q++) {
                b[q] = f32(tile_b[kk * TN + lid.x * RN + q]);
            }
            for (var r = 0u; r < RM; r++) {
                for (var q = 0u; q < RN; q++) {
                    acc[r * RN + q] = fma(a[r], b[q], acc[r * RN + q]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < RM; r++) {
        let gi = row0 + lid.y * RM + r;
        for (var q = 0u; q < RN; q++) {
            let gj = col0 + lid.x * RN + q;
            if (gi < G.m && gj < G.n && G.splits > 1u) {
                // A partial sum, row-major per slice; gemm_reduce adds the slices.
                c_out[(wid.z * G.m + gi) * G.n + gj] = bitcast<u32>(acc[r * RN + q]);
            } else if (gi < G.m && gj < G.n) {
                var v = acc[r * RN + q];
                if (G.has_bias != 0u) {
                    v = v + bitcast<f32>(bias_at(gi, gj));
                }
                store_out(out_index(gi, gj), bitcast<u32>(v));
            }
        }
    }
}
