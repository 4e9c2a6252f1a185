// GEMM (or a convolution's GEMM view) with f32 accumulation. A workgroup of WX x WY
// invocations computes a TM x TN tile of C, each invocation an RM x RN register tile;
// operands are decoded from their packed codes as TK-deep slices of A and B are staged in
// workgroup memory (split-K: workgroup z takes one slice of K and writes a partial sum).
// The tile sizes are pipeline-overridable, chosen per adapter
// (src/gpu/tiles.rs), with WX = TN / RN, WY = TM / RM, TILE_A = TK * TM, TILE_B = TK * TN;
// 8 x 8 register tiles (a GPU's) keep their sums in vec4 registers (register_tile.wgsl).
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
    // 8 x 8 register tiles (RM = RN = 8, a constant) hold their sums in a `Tile`: rows
    // ra..ra+3 and TM / 2 + ra.., columns cb..cb+3 and TN / 2 + cb.., so that a subgroup's
    // reads of one k's staged row are consecutive words (no bank conflicts) and every sum
    // stays in a register (an array indexed in loops may live in memory). Each sum runs over
    // K in the same order with fma as the general path's: the same bits.
    let quads = RM == 8u && RN == 8u;
    let ra = lid.y * 4u;
    let cb = lid.x * 4u;
    var tile = Tile();
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
        if (quads) {
            for (var kk = 0u; kk < TK; kk++) {
                let a = kk * TM + ra;
                let b = kk * TN + cb;
                tile = rank1(tile, staged_a(a), staged_a(a + TM / 2u), staged_b(b), staged_b(b + TN / 2u));
            }
        } else {
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
        }
        workgroupBarrier();
    }
    if (quads) {
        // Field pair r holds row ra + r (r < 4) or TM / 2 + ra + r - 4, columns cb.. and
        // TN / 2 + cb..; the pairs move up one a step (two inlined copies of the
        // output's rounding, not sixteen).
        var t = tile;
        for (var r = 0u; r < 8u; r++) {
            let gi = row0 + ra + r % 4u + select(0u, TM / 2u, r >= 4u);
            put4(gi, col0 + cb, wid.z, t.c00);
            put4(gi, col0 + cb + TN / 2u, wid.z, t.c01);
            t.c00 = t.c10; t.c01 = t.c11; t.c10 = t.c20; t.c11 = t.c21;
            t.c20 = t.c30; t.c21 = t.c31; t.c30 = t.c40; t.c31 = t.c41;
            t.c40 = t.c50; t.c41 = t.c51; t.c50 = t.c60; t.c51 = t.c61;
            t.c60 = t.c70; t.c61 = t.c71;
        }
        return;
    }
    for (var r = 0u; r < RM; r++) {
        let gi = row0 + lid.y * RM + r;
        for (var q = 0u; q < RN; q++) {
            put(gi, col0 + lid.x * RN + q, wid.z, acc[r * RN + q]);
        }
    }
}

// Stores sum `v` of row gi, column gj: slice z's partial sum (split K), or the output
// (bias added) rounded into its format; nothing outside the view.
fn put(gi: u32, gj: u32, z: u32, sum: f32) {
    if (gi >= G.m || gj >= G.n) {
        return;
    }
    let v = plus_zero(sum);
    if (G.splits > 1u) {
        // A partial sum, row-major per slice; gemm_reduce adds the slices.
        c_out[(z * G.m + gi) * G.n + gj] = bitcast<u32>(v);
        return;
    }
    var s = v;
    if (G.has_bias != 0u) {
        s = s + bitcast<f32>(bias_at(gi, gj));
    }
    store_out(out_index(gi, gj), bitcast<u32>(s));
}

// Stores the sums `v` of row gi, columns gj..gj+3, as `put`.
fn put4(gi: u32, gj: u32, z: u32, v: vec4<f32>) {
    for (var q = 0u; q < 4u; q++) {
        put(gi, gj + q, z, v[q]);
    }
}

// Four staged values of A from tile_a[i] (i a multiple of 4), as f32.
fn staged_a(i: u32) -> vec4<f32> {
    return vec4(f32(tile_a[i]), f32(tile_a[i + 1u]), f32(tile_a[i + 2u]), f32(tile_a[i + 3u]));
}

// Four staged values of B from tile_b[i] (i a multiple of 4), as f32.
fn staged_b(i: u32) -> vec4<f32> {
    return vec4(f32(tile_b[i]), f32(tile_b[i + 1u]), f32(tile_b[i + 2u]), f32(tile_b[i + 3u]));
}
