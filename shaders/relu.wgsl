// ReLU on f32 bits: forward y = max(x, 0) (NaN stays NaN, -0 becomes +0); backward passes
// the gradient where the forward input was positive.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> g: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

fn positive(b: u32) -> bool {
    return (b >> 31u) == 0u && b != 0u && b <= 0x7f800000u;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let v = x[i];
    if ((v & 0x7fffffffu) > 0x7f800000u) {
        y[i] = CANONICAL_NAN;
    } else {
        y[i] = select(0u, v, positive(v));
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    y[i] = select(0u, g[i], positive(x[i]));
}
