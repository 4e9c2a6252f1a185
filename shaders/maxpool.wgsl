// Max pooling over non-overlapping pool x pool windows of each plane: forward takes each
// window's first maximum (integer-ordered comparison, so every device agrees); backward
// routes each output's gradient to that position. x (in0) and g (in1) are decoded as they
// are loaded, the output rounded as it is stored.

// Flat input index of the first maximum of output o's window.
fn window_argmax(o: u32) -> u32 {
    let per = E.out_h * E.out_w;
    let plane = o / per;
    let oh = (o % per) / E.out_w;
    let ow = o % E.out_w;
    let base = plane * E.in_h * E.in_w;
    var best = base + oh * E.pool * E.in_w + ow * E.pool;
    var top = order_key(load0(best));
    for (var a = 0u; a < E.pool; a++) {
        for (var b = 0u; b < E.pool; b++) {
            let idx = base + (oh * E.pool + a) * E.in_w + ow * E.pool + b;
            let key = order_key(load0(idx));
            if (key > top) {
                best = idx;
                top = key;
            }
        }
    }
    return best;
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = item_index(gid, E.groups_x);
    if (o >= E.count) {
        return;
    }
    store_out(o, load0(window_argmax(o)));
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
        let o = (plane * E.out_h + oh) * E.out_w + ow;
        if (window_argmax(o) == i) {
            v = load1(o);
        }
    }
    store_out(i, v);
}
