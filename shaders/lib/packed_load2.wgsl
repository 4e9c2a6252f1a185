// Decode on load for a fused kernel's second input (in1); see packed_load.

@group(0) @binding(23) var<storage, read> in1_words: array<u32>;
@group(0) @binding(24) var<storage, read> in1_scales: array<u32>;

fn load1(i: u32) -> u32 {
    let f = IO.in1;
    if (f.raw != 0u) {
        return in1_words[i];
    }
    let w = f.fmt.bits;
    let start = i * w;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + w > 32u) {
        hi = in1_words[wi + 1u];
    }
    var sw = 0u;
    if (f.scaling == 2u) {
        sw = in1_scales[i / 128u];
    } else if (f.scaling == 1u) {
        sw = in1_scales[0];
    }
    let code = extract_code(in1_words[wi], hi, off, w);
    return decode_code(f.fmt, code, element_scale_exp(f.scaling, sw, i));
}
