// Operand access shared by GEMM and convolution: packed codes and scales of A and B,
// the bias, and the f32 output. G (the index piece's parameters) says their formats.

// The block of a view one panel-kernel dispatch covers (src/gpu/params.rs PanelBlock).
struct PanelBlock {
    i0: u32,     // first row, column and product
    j0: u32,
    k0: u32,
    k: u32,      // products in the block
    pan_m: u32,  // rows of the A panel, columns of the B panel
    pan_n: u32,
    slice0: u32, // K slice of the block's first
}

@group(0) @binding(1) var<storage, read> a_words: array<u32>;
@group(0) @binding(2) var<storage, read> a_scales: array<u32>;
@group(0) @binding(3) var<storage, read> b_words: array<u32>;
@group(0) @binding(4) var<storage, read> b_scales: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<u32>;
@group(0) @binding(6) var<storage, read_write> c_out: array<u32>;

fn code_a(flat: u32) -> u32 {
    let w = fmt_a().bits;
    let start = flat * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = a_words[wi + 1u];
    }
    return extract_code(a_words[wi], hi, off, w);
}

fn code_b(flat: u32) -> u32 {
    let w = fmt_b().bits;
    let start = flat * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = b_words[wi + 1u];
    }
    return extract_code(b_words[wi], hi, off, w);
}

fn scale_a(flat: u32) -> ElemScale {
    var word = 0u;
    var tw = 0u;
    if (scaling_a() != 0u) {
        word = a_scales[scale_word_index(scaling_a(), flat)];
        tw = a_scales[0];
    }
    return element_scale(scaling_a(), word, tw, flat);
}

fn scale_b(flat: u32) -> ElemScale {
    var word = 0u;
    var tw = 0u;
    if (scaling_b() != 0u) {
        word = b_scales[scale_word_index(scaling_b(), flat)];
        tw = b_scales[0];
    }
    return element_scale(scaling_b(), word, tw, flat);
}

