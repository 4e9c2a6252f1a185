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

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let hw = E.out_h * E.out_w;
    let n = i / (E.cols * hw);
    let c = (i / hw) % E.cols;
    let p = i % hw;
    var v = 0u;
    let off = offset();
    if (c >= off && c - off < E.rows) {
        let h = (p / E.out_w) * E.pool;
        let w = (p % E.out_w) * E.pool;
        v = load1(((n * E.rows + c - off) * E.in_h + h) * E.in_w + w);
    }
    store_out(i, sf_add(load0(i), v));
}

// The output element source element i maps to, or NONE (fmt.wgsl) where the map drops it.

fn mapped(i: u32) -> u32 {
    let shw = E.in_h * E.in_w;
    let n = i / (E.rows * shw);
    let cs = (i / shw) % E.rows;
    let h = (i % shw) / E.in_w;
    let w = i % E.in_w;
    if (h % E.pool != 0u || w % E.pool != 0u || h / E.pool >= E.out_h || w / E.pool >= E.out_w) {
        return NONE;
    }
    return ((n * E.cols + cs + offset()) * E.out_h + h / E.pool) * E.out_w + w / E.pool;
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
