// Average pooling over non-overlapping pool x pool windows of each plane, in soft-float:
// forward sums each window in row order and multiplies by 1 / pool^2 (E.scale); backward
// gives each input its window's gradient times 1 / pool^2. The input (in0: x forward, g
// backward) is decoded as it is loaded, the output rounded as it is stored.

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = item_index(gid, E.groups_x);
    if (o >= E.count) {
        return;
    }
    let per = E.out_h * E.out_w;
    let plane = o / per;
    let oh = (o % per) / E.out_w;
    let ow = o % E.out_w;
    let base = plane * E.in_h * E.in_w;
    var s = 0u;
    for (var a = 0u; a < E.pool; a++) {
        for (var b = 0u; b < E.pool; b++) {
            s = sf_add(s, load0(base + (oh * E.pool + a) * E.in_w + ow * E.pool + b));
        }
    }
    store_out(o, sf_mul(s, E.scale));
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let plane_in = E.in_h * E.in_w;
    let plane = i / plane_in;
    let ih = (i % plane_in) / E.in_w;
    let iw = i % E.in_w;
    let oh = ih / E.pool;
    let ow = iw / E.pool;
    var v = 0u;
    if (oh < E.out_h && ow < E.out_w) {
        v = sf_mul(load0((plane * E.out_h + oh) * E.out_w + ow), E.scale);
    }
    store_out(i, v);
}
