// A GEMM view has no input rows: `thin`'s SEGMENTS and WINDOW are for convolutions only
// (conv_segments.wgsl), and these stand in for them, never called.
fn segment_sums(j: u32, q: u32, ia: u32) -> Tile {
    return Tile();
}

fn segment_column(j: u32) -> vec2<u32> {
    return vec2(j, NONE);
}

fn window_tile(g: u32, q: u32, block: u32, k_begin: u32, k_end: u32, slice: u32) {
    // Reads A's words as the convolutions' does, so that `thin` binds them in both.
    _ = value_a(0u, 0u);
}
