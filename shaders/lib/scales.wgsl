// The scales a tensor's elements are divided by: MX E8M0 bytes or one per-tensor exponent.

@group(0) @binding(3) var<storage, read> scales: array<u32>;

// The scale exponent element i of the tensor described by P is divided by.
fn scale_exp_of(i: u32) -> i32 {
    var word = 0u;
    if (P.scaling == 2u) {
        word = scales[i / 128u];
    } else if (P.scaling == 1u) {
        word = scales[0];
    }
    return element_scale_exp(P.scaling, word, i);
}
