// ReLU: forward y = max(x, 0) (NaN stays NaN, -0 becomes +0); backward passes the
// gradient where the forward input was positive. Inputs are decoded as they are loaded
// (in0 = x, in1 = g) and the output rounded as it is stored (see packed_load, packed_store).

fn positive(b: u32) -> bool {
    return (b >> 31u) == 0u && b != 0u && b <= 0x7f800000u;
}

// y of one element: NaN canonical, else max(x, 0).
fn relu(v: u32) -> u32 {
    if ((v & 0x7fffffffu) > 0x7f800000u) {
        return CANONICAL_NAN;
    }
    return select(0u, v, positive(v));
}

// dx of one element: g where x was positive.
fn relu_grad(x: u32, g: u32) -> u32 {
    return select(0u, g, positive(x));
}

// Each invocation takes elements 4q to 4q + 3; the last E.n % 4 are a TAIL dispatch's,
// one by one (elem_params.wgsl).
fn forward_item(item: u32) {
    let i = 4u * item;
    if (!TAIL) {
        if (i + 4u <= E.n) {
            let v = load4_0(i);
            store_out4(i, vec4(relu(v.x), relu(v.y), relu(v.z), relu(v.w)));
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, relu(load0(t)));
    }
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        forward_item(item);
    }
}

fn backward_item(item: u32) {
    let i = 4u * item;
    if (!TAIL) {
        if (i + 4u <= E.n) {
            let x = load4_0(i);
            let g = load4_1(i);
            store_out4(i, vec4(relu_grad(x.x, g.x), relu_grad(x.y, g.y), relu_grad(x.z, g.z), relu_grad(x.w, g.w)));
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, relu_grad(load0(t), load1(t)));
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        backward_item(item);
    }
}

// A tensor in another format: y = x, decoded and rounded again (Flatten).
fn convert_item(item: u32) {
    let i = 4u * item;
    if (!TAIL) {
        if (i + 4u <= E.n) {
            store_out4(i, load4_0(i));
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, load0(t));
    }
}

@compute @workgroup_size(256)
fn convert(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        convert_item(item);
    }
}
