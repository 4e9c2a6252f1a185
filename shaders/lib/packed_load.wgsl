// Decode on load: element i of a fused kernel's first (in0) and second (in1) input, as f32
// bits, from its packed codes and scales (or its f32 words when the input is raw).

@group(0) @binding(21) var<storage, read> in0_words: array<u32>;
@group(0) @binding(22) var<storage, read> in0_scales: array<u32>;

fn load0(i: u32) -> u32 {
    let f = IO.in0;
    if (f.raw != 0u) {
        return in0_words[i];
    }
    let w = f.fmt.bits;
    let start = i * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = in0_words[wi + 1u];
    }
    var sw = 0u;
    if (f.scaling == 2u) {
        sw = in0_scales[i / 128u];
    } else if (f.scaling == 1u) {
        sw = in0_scales[0];
    }
    let code = extract_code(in0_words[wi], hi, off, w);
    return decode_code(f.fmt, code, element_scale_exp(f.scaling, sw, i));
}
