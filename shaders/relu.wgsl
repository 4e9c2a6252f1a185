// ReLU: forward y = max(x, 0) (NaN stays NaN, -0 becomes +0); backward passes the
// gradient where the forward input was positive. Inputs are decoded as they are loaded
// (in0 = x, in1 = g) and the output rounded as it is stored (see packed_load, packed_store).

fn positive(b: u32) -> bool {
    return (b >> 31u) == 0u && b != 0u && b <= 0x7f800000u;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let v = load0(i);
    if ((v & 0x7fffffffu) > 0x7f800000u) {
        store_out(i, CANONICAL_NAN);
    } else {
        store_out(i, select(0u, v, positive(v)));
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    store_out(i, select(0u, load1(i), positive(load0(i))));
}

// A tensor in another format: y = x, decoded and rounded again (Flatten).
@compute @workgroup_size(256)
fn convert(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    store_out(i, load0(i));
}
