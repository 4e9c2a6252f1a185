// Packed codes -> f32, one element per invocation.

@group(0) @binding(0) var<uniform> P: QuantParams;
@group(0) @binding(1) var<storage, read> words: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read> scales: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, P.groups_x);
    if (i >= P.count) {
        return;
    }
    let w = P.fmt.bits;
    let start = i * w;
    let wi = start / 32u;
    let off = start % 32u;
    var code = words[wi] >> off;
    if (off + w > 32u) {
        code |= words[wi + 1u] << (32u - off);
    }
    code &= low_mask(w);
    var sw = 0u;
    if (P.scaling == 2u) {
        sw = scales[i / 128u];
    } else if (P.scaling == 1u) {
        sw = scales[0];
    }
    out[i] = decode_code(P.fmt, code, element_scale_exp(P.scaling, sw, i));
}
