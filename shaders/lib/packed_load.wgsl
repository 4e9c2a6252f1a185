// Decode on load: element i of a fused kernel's input $K (in$K), as f32 bits, from its
// packed codes and scales (or its f32 words when the input is raw). A template: the shader
// assembly writes one copy per input, $K its index and $W, $S its bindings.

@group(0) @binding($W) var<storage, read> in$K_words: array<u32>;
@group(0) @binding($S) var<storage, read> in$K_scales: array<u32>;

fn load$K(i: u32) -> u32 {
    let f = in$K_fmt();
    if (f.raw != 0u) {
        return in$K_words[i];
    }
    let w = f.fmt.bits;
    let start = i * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = in$K_words[wi + 1u];
    }
    var sw = 0u;
    var tw = 0u;
    if (f.scaling != 0u) {
        sw = in$K_scales[scale_word_index(f.scaling, i)];
        tw = in$K_scales[0];
    }
    let code = extract_code(in$K_words[wi], hi, off, w);
    return decode_scaled(f.fmt, code, element_scale(f.scaling, sw, tw, i));
}
