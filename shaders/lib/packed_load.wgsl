// Decode on load: element i of a fused kernel's input $K (in$K), as f32 bits, from its
// packed codes and scales (or its f32 words when the input is raw). A template: the shader
// assembly writes one copy per input, $K its index and $W, $S its bindings, after the
// declaration of in$K_words and its accessors in$K_word and in$K_quad.

@group(0) @binding($S) var<storage, read> in$K_scales: array<u32>;

fn load$K(i: u32) -> u32 {
    let f = in$K_fmt();
    if (f.raw != 0u) {
        return in$K_word(i);
    }
    let w = f.fmt.bits;
    let start = i * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = in$K_word(wi + 1u);
    }
    var sw = 0u;
    var tw = 0u;
    if (f.scaling != 0u) {
        sw = in$K_scales[scale_word_index(f.scaling, i)];
        tw = in$K_scales[0];
    }
    let code = extract_code(in$K_word(wi), hi, off, w);
    return decode_scaled(f.fmt, code, element_scale(f.scaling, sw, tw, i));
}

// Elements i to i + 3 of input $K (i a multiple of 4, i + 3 within the tensor), as f32 bits:
// one 16-byte load where each element owns a word; without scales, four codes from two
// words (16 bits), one (8 bits) or half of one (4 bits); else element by element.
fn load4_$K(i: u32) -> vec4<u32> {
    let f = in$K_fmt();
    if (f.raw != 0u) {
        return in$K_quad(i / 4u);
    }
    let w = f.fmt.bits;
    if (f.scaling == 0u && (w == 32u || w == 16u || w == 8u || w == 4u)) {
        let s = element_scale(0u, 0u, 0u, i);
        var c = vec4(0u);
        if (w == 32u) {
            c = in$K_quad(i / 4u);
        } else if (w == 16u) {
            let lo = in$K_word(i / 2u);
            let hi = in$K_word(i / 2u + 1u);
            c = vec4(lo & 0xffffu, lo >> 16u, hi & 0xffffu, hi >> 16u);
        } else if (w == 8u) {
            let word = in$K_word(i / 4u);
            c = vec4(word & 0xffu, (word >> 8u) & 0xffu, (word >> 16u) & 0xffu, word >> 24u);
        } else {
            // Half a word: elements i to i + 3 from bit 16 (i / 4 % 2).
            let half = in$K_word(i / 8u) >> (16u * ((i / 4u) % 2u));
            c = vec4(half & 0xfu, (half >> 4u) & 0xfu, (half >> 8u) & 0xfu, (half >> 12u) & 0xfu);
        }
        // Loops over the four (not four inlined copies to compile).
        var v = vec4(0u);
        for (var t = 0u; t < 4u; t++) {
            v[t] = decode_scaled(f.fmt, c[t], s);
        }
        return v;
    }
    var v = vec4(0u);
    for (var t = 0u; t < 4u; t++) {
        v[t] = load$K(i + t);
    }
    return v;
}
