// The scales a tensor's elements are divided by: block scales or one per-tensor exponent.

@group(0) @binding(3) var<storage, read> scales: array<u32>;

// The scale of element i of the tensor described by P.
fn scale_of(i: u32) -> ElemScale {
    var word = 0u;
    var tw = 0u;
    if (P.scaling != 0u) {
        word = scales[scale_word_index(P.scaling, i)];
        tw = scales[0];
    }
    return element_scale(P.scaling, word, tw, i);
}
