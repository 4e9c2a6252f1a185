// Max pooling over non-overlapping pool x pool windows of each plane: forward takes each
// window's first maximum (integer-ordered comparison, so every device agrees); backward
// routes each output's gradient to that position. x (in0) and g (in1) are decoded as they
// are loaded, the output rounded as it is stored.

// Flat input index of the first maximum of output o's window (each value loaded once).
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
            if (a + b == 0u) {
                continue;
            }
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

// One invocation per pool x pool cell of the input (windows, and the partial cells of
// the rows and columns no window covers): the window's maximum gets its output's gradient,
// every other value of the cell 0. Each x is loaded once, where one invocation per input
// would find its window's maximum again for every value of the window.
@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, E.groups_x);
    if (c >= E.count) {
        return;
    }
    let cells_h = (E.in_h + E.pool - 1u) / E.pool;
    let cells_w = (E.in_w + E.pool - 1u) / E.pool;
    let plane = c / (cells_h * cells_w);
    let r = (c % (cells_h * cells_w)) / cells_w;
    let q = c % cells_w;
    var best = 0xffffffffu;
    var v = 0u;
    if (r < E.out_h && q < E.out_w) {
        let o = (plane * E.out_h + r) * E.out_w + q;
        best = window_argmax(o);
        v = load1(o);
    }
    let base = plane * E.in_h * E.in_w;
    for (var a = 0u; a < E.pool; a++) {
        for (var b = 0u; b < E.pool; b++) {
            let ih = r * E.pool + a;
            let iw = q * E.pool + b;
            if (ih < E.in_h && iw < E.in_w) {
                let i = base + ih * E.in_w + iw;
                store_out(i, select(0u, v, i == best));
            }
        }
    }
}
