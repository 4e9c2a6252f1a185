// Max pooling over non-overlapping pool x pool windows of each plane: forward takes each
// window's first maximum (integer-ordered comparison, so every device agrees); backward
// routes each output's gradient to that position. x (in0) and g (in1) are decoded as they
// are loaded, the output rounded as it is stored.

// The pooling's shape again as pipeline constants (src/ops/elementwise.rs pool_constants),
// as conv_index.wgsl has a layer's geometry: with MP set, the pipeline is specialised to
// one layer's shape, so its divisions are by constants and the window loops unroll.
override MP: bool = false;
override MP_POOL: u32 = 1u;
override MP_IN_H: u32 = 1u;
override MP_IN_W: u32 = 1u;
override MP_OUT_H: u32 = 1u;
override MP_OUT_W: u32 = 1u;
fn mp_pool() -> u32 {
    if (MP) {
        return MP_POOL;
    }
    return E.pool;
}
fn mp_in_h() -> u32 {
    if (MP) {
        return MP_IN_H;
    }
    return E.in_h;
}
fn mp_in_w() -> u32 {
    if (MP) {
        return MP_IN_W;
    }
    return E.in_w;
}
fn mp_out_h() -> u32 {
    if (MP) {
        return MP_OUT_H;
    }
    return E.out_h;
}
fn mp_out_w() -> u32 {
    if (MP) {
        return MP_OUT_W;
    }
    return E.out_w;
}

// Flat input index of the first maximum of output o's window (each value loaded once).
fn window_argmax(o: u32) -> u32 {
    let per = mp_out_h() * mp_out_w();
    let plane = o / per;
    let oh = (o % per) / mp_out_w();
    let ow = o % mp_out_w();
    let base = plane * mp_in_h() * mp_in_w();
    var best = base + oh * mp_pool() * mp_in_w() + ow * mp_pool();
    var top = order_key(load0(best));
    for (var a = 0u; a < mp_pool(); a++) {
        for (var b = 0u; b < mp_pool(); b++) {
            if (a + b == 0u) {
                continue;
            }
            let idx = base + (oh * mp_pool() + a) * mp_in_w() + ow * mp_pool() + b;
            let key = order_key(load0(idx));
            if (key > top) {
                best = idx;
                top = key;
            }
        }
    }
    return best;
}

fn forward_item(item: u32) {
    let o = item;
    store_out(o, load0(window_argmax(o)));
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        forward_item(item);
    }
}

// One invocation per pool x pool cell of the input (windows, and the partial cells of
// the rows and columns no window covers): the window's maximum gets its output's gradient,
// every other value of the cell 0. Each x is loaded once, where one invocation per input
// would find its window's maximum again for every value of the window.
fn backward_item(item: u32) {
    let c = item;
    let cells_h = (mp_in_h() + mp_pool() - 1u) / mp_pool();
    let cells_w = (mp_in_w() + mp_pool() - 1u) / mp_pool();
    let plane = c / (cells_h * cells_w);
    let r = (c % (cells_h * cells_w)) / cells_w;
    let q = c % cells_w;
    var best = 0xffffffffu;
    var v = 0u;
    if (r < mp_out_h() && q < mp_out_w()) {
        let o = (plane * mp_out_h() + r) * mp_out_w() + q;
        best = window_argmax(o);
        v = load1(o);
    }
    let base = plane * mp_in_h() * mp_in_w();
    for (var a = 0u; a < mp_pool(); a++) {
        for (var b = 0u; b < mp_pool(); b++) {
            let ih = r * mp_pool() + a;
            let iw = q * mp_pool() + b;
            if (ih < mp_in_h() && iw < mp_in_w()) {
                let i = base + ih * mp_in_w() + iw;
                store_out(i, select(0u, v, i == best));
            }
        }
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        backward_item(item);
    }
}

// `backward` for 2 x 2 windows that tile planes whose width is a multiple of 4
// (src/ops/elementwise.rs record_maxpool_backward): one invocation per two neighbouring
// cells, storing their two rows of four values as two vectors.
fn backward_pairs_item(item: u32) {
    let c = item;
    // Cell pairs a plane: out_h rows of out_w / 2.
    let pairs_w = mp_out_w() / 2u;
    let per = mp_out_h() * pairs_w;
    let plane = c / per;
    let r = (c % per) / pairs_w;
    let q = 2u * (c % pairs_w);
    let o = (plane * mp_out_h() + r) * mp_out_w() + q;
    let best0 = window_argmax(o);
    let best1 = window_argmax(o + 1u);
    let g0 = load1(o);
    let g1 = load1(o + 1u);
    let top = (plane * mp_in_h() + 2u * r) * mp_in_w() + 2u * q;
    for (var a = 0u; a < 2u; a++) {
        let i = top + a * mp_in_w();
        store_out4(i, vec4(
            select(0u, g0, i == best0),
            select(0u, g0, i + 1u == best0),
            select(0u, g1, i + 2u == best1),
            select(0u, g1, i + 3u == best1),
        ));
    }
}

@compute @workgroup_size(256)
fn backward_pairs(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        backward_pairs_item(item);
    }
}
