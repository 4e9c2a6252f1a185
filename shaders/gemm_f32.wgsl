// GEMM (or a convolution's GEMM view) with f32 accumulation: 64x64 output tiles per workgroup of 16x16 invocations, each
// computing a 4x4 register tile; operands are decoded from their packed codes as the
// 16-deep K tiles are staged in workgroup memory.

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [TK][TM]
var<workgroup> tile_b: array<f32, 1024>; // [TK][TN]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = wid.y * TM;
    let col0 = wid.x * TN;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < G.k; k0 += TK) {
        for (var t = 0u; t < 4u; t++) {
            let e = li + t * 256u;
            let kk = e / TM;
            let r = e % TM;
            let gk = k0 + kk;
            var va = 0.0;
            if (row0 + r < G.m && gk < G.k) {
                va = bitcast<f32>(value_a(row0 + r, gk));
            }
            tile_a[e] = va;
            var vb = 0.0;
            if (col0 + r < G.n && gk < G.k) {
                vb = bitcast<f32>(value_b(gk, col0 + r));
            }
            tile_b[e] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var r = 0u; r < 4u; r++) {
                a[r] = tile_a[kk * TM + lid.y * 4u + r];
                b[r] = tile_b[kk * TN + lid.x * 4u + r];
            }
            for (var r = 0u; r < 4u; r++) {
                for (var q = 0u; q < 4u; q++) {
                    acc[r * 4u + q] = fma(a[r], b[q], acc[r * 4u + q]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let gi = row0 + lid.y * 4u + r;
        for (var q = 0u; q < 4u; q++) {
            let gj = col0 + lid.x * 4u + q;
            if (gi < G.m && gj < G.n) {
                var v = acc[r * 4u + q];
                if (G.has_bias != 0u) {
                    v = v + bitcast<f32>(bias_at(gi, gj));
                }
                c_out[out_index(gi, gj)] = bitcast<u32>(v);
            }
        }
    }
}
