// An invocation's 8 x 8 register tile of sums as sixteen vec4s, shared by the GEMM kernels
// that hold their sums in fixed registers (gemm_panel.wgsl for CPU adapters, gemm_f32.wgsl's
// 8 x 8 tiles for GPUs): no array to index, so no sum is ever spilled to memory for it.

// An invocation's 8 x 8 sums: row r's first four columns in cR0, its other four in cR1
// (which rows and columns those are is the kernel's: gemm_panel's j..j+3 and j+4..j+7).
struct Tile {
    c00: vec4<f32>, c01: vec4<f32>, c10: vec4<f32>, c11: vec4<f32>,
    c20: vec4<f32>, c21: vec4<f32>, c30: vec4<f32>, c31: vec4<f32>,
    c40: vec4<f32>, c41: vec4<f32>, c50: vec4<f32>, c51: vec4<f32>,
    c60: vec4<f32>, c61: vec4<f32>, c70: vec4<f32>, c71: vec4<f32>,
}

// The sums after one k: row r's sums plus A's value r (a0's four, then a1's) times B's
// eight values b0, b1, each with one fma.
fn rank1(t: Tile, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>) -> Tile {
    return Tile(
        fma(vec4(a0.x), b0, t.c00), fma(vec4(a0.x), b1, t.c01),
        fma(vec4(a0.y), b0, t.c10), fma(vec4(a0.y), b1, t.c11),
        fma(vec4(a0.z), b0, t.c20), fma(vec4(a0.z), b1, t.c21),
        fma(vec4(a0.w), b0, t.c30), fma(vec4(a0.w), b1, t.c31),
        fma(vec4(a1.x), b0, t.c40), fma(vec4(a1.x), b1, t.c41),
        fma(vec4(a1.y), b0, t.c50), fma(vec4(a1.y), b1, t.c51),
        fma(vec4(a1.z), b0, t.c60), fma(vec4(a1.z), b1, t.c61),
        fma(vec4(a1.w), b0, t.c70), fma(vec4(a1.w), b1, t.c71),
    );
}

// A sum of products taken from +0 in order (round to nearest) is never -0, but a compiler
// that need not keep zeros' signs may fold an unrolled sum's first fma(a, b, 0) into the
// product a b, -0 where a or b is -0 (lavapipe does, on a segment path whose K loop is a
// constant): the sums' -0 bits are +0's before they are stored (integer operations, which
// no such folding touches).
fn plus_zero(v: f32) -> f32 {
    let b = bitcast<u32>(v);
    return bitcast<f32>(select(b, 0u, b == 0x80000000u));
}

fn plus_zero4(v: vec4<f32>) -> vec4<f32> {
    let b = bitcast<vec4<u32>>(v);
    return bitcast<vec4<f32>>(select(b, vec4(0u), b == vec4(0x80000000u)));
}
