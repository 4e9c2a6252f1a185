// Residual connections and channel concatenation (NCHW) in soft-float. A map takes a source
// of Cs channels and Hs x Ws pixels into a C x H x W output: every stride-th pixel (stride =
// Hs / H), channels placed from E.offset, zeros around them. A residual shortcut is one
// (identity, or "option A" of He et al. (2016): offset (C - Cs) / 2), and so is each part of
// a concatenation (its channel window, stride 1).
//   forward (per output element): y = a + shortcut(s).
//   place (per source element): y at the output it maps to = s (a concatenation's part).
//   skip_backward (per source element): ds = the gradient at the output it feeds, or 0.
//   accumulate (per element): y = y + g (adds a skip gradient into a layer's gradient).
// E.cols = C, E.rows = Cs, E.out_h/out_w = H, W, E.in_h/in_w = Hs, Ws, E.pool = stride.
// forward decodes a (in0) and s (in1) as it loads them and rounds y as it stores it;
// skip_backward decodes g (in0) and stores ds (an f32 output); accumulate is on f32 words.

@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

fn offset() -> u32 {
    return E.offset;
}

// The map's shape as pipeline constants (src/ops/elementwise.rs shortcut_constants): with
// RS set, the pipeline is specialised to one map, so that an element's indices are found by
// multiplications instead of divisions (a CPU adapter divides lane by lane).
override RS: bool = false;
override RS_COLS: u32 = 1u;
override RS_ROWS: u32 = 1u;
override RS_OUT_H: u32 = 1u;
override RS_OUT_W: u32 = 1u;
override RS_IN_H: u32 = 1u;
override RS_IN_W: u32 = 1u;
override RS_POOL: u32 = 1u;
fn rs_cols() -> u32 {
    return select(E.cols, RS_COLS, RS);
}
fn rs_rows() -> u32 {
    return select(E.rows, RS_ROWS, RS);
}
fn rs_out_h() -> u32 {
    return select(E.out_h, RS_OUT_H, RS);
}
fn rs_out_w() -> u32 {
    return select(E.out_w, RS_OUT_W, RS);
}
fn rs_in_h() -> u32 {
    return select(E.in_h, RS_IN_H, RS);
}
fn rs_in_w() -> u32 {
    return select(E.in_w, RS_IN_W, RS);
}
fn rs_pool() -> u32 {
    return select(E.pool, RS_POOL, RS);
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let hw = rs_out_h() * rs_out_w();
    let n = i / (rs_cols() * hw);
    let c = (i / hw) % rs_cols();
    let p = i % hw;
    var v = 0u;
    let off = offset();
    if (c >= off && c - off < rs_rows()) {
        let h = (p / rs_out_w()) * rs_pool();
        let w = (p % rs_out_w()) * rs_pool();
        v = load1(((n * rs_rows() + c - off) * rs_in_h() + h) * rs_in_w() + w);
    }
    store_out(i, sf_add(load0(i), v));
}

// The output element source element i maps to, or NONE (fmt.wgsl) where the map drops it.

fn mapped(i: u32) -> u32 {
    let shw = rs_in_h() * rs_in_w();
    let n = i / (rs_rows() * shw);
    let cs = (i / shw) % rs_rows();
    let h = (i % shw) / rs_in_w();
    let w = i % rs_in_w();
    let pool = rs_pool();
    if (h % pool != 0u || w % pool != 0u || h / pool >= rs_out_h() || w / pool >= rs_out_w()) {
        return NONE;
    }
    return ((n * rs_cols() + cs + offset()) * rs_out_h() + h / pool) * rs_out_w() + w / pool;
}

@compute @workgroup_size(256)
fn place(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let o = mapped(i);
    if (o != NONE) {
        store_out(o, load0(i));
    }
}

@compute @workgroup_size(256)
fn skip_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let o = mapped(i);
    var v = 0u;
    if (o != NONE) {
        v = load0(o);
    }
    store_out(i, v);
}

@compute @workgroup_size(256)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    y[i] = sf_add(y[i], a[i]);
}
