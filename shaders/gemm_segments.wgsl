// A GEMM view has no input rows: `thin`'s SEGMENTS is for convolutions only
// (conv_segments.wgsl), and this stands in for it, never called.
fn segment_sums(j: u32, q: u32) -> Tile {
    return Tile();
}
