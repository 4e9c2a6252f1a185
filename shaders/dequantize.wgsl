// Packed codes -> f32, one element per invocation.

@group(0) @binding(1) var<storage, read> words: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

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
    var hi = 0u;
    if (off + w > 32u) {
        hi = words[wi + 1u];
    }
    let code = extract_code(words[wi], hi, off, w);
    out[i] = decode_scaled(P.fmt, code, scale_of(i));
}
