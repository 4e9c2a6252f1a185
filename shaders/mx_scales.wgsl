// E8M0 scales of MX blocks: one invocation computes the four scale bytes of one word.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> scales_out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = item_index(gid, P.groups_x);
    if (t >= P.count) {
        return;
    }
    var word = 0u;
    for (var b = 0u; b < 4u; b++) {
        let first = (4u * t + b) * 32u;
        if (first < P.n) {
            let end = min(first + 32u, P.n);
            var amax = 0u;
            for (var i = first; i < end; i++) {
                let mag = x[i] & 0x7fffffffu;
                if (mag < 0x7f800000u) {
                    amax = max(amax, mag);
                }
            }
            word |= u32(mx_scale_exp(amax, P.fmt.emax) + 127) << (8u * b);
        }
    }
    scales_out[t] = word;
}
