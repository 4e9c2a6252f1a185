// Linear-model SGD on samples read at low precision (ZipML), the twin of
// src/reference/linear.rs in soft-float: `residual` computes each batch row's gradient
// factor r_t (least squares: Q(a_i)^T w - b_i; logistic: -y sigma(-y Q(a_i)^T w), or -y P
// with the polynomial's powers from independent samples), one invocation per row, columns
// in order; then `update` sums g_c = sum_t Q0(a_ic) r_t over the batch in order (one
// invocation per column), scales it by 1/B, adds l2 w_c, and steps w_c <- w_c - lr g_c.
// A sample is read as f32 (mode 0), or from its level index (`bits` wide, packed in
// `lower`) and its up bits (`samples` wide, packed in `up`) through the column's levels
// (`levels`, `per_col` a column): mode 1 reads sample 0 everywhere, mode 2 sample s, mode
// 3 sample 0 with the f32 rows beside it, which the hinge reads again (refetches) where
// the margin lies within its error band of 1 (`fetched`: the count, then a flag per row).

struct LinearParams {
    cols: u32,
    batch_start: u32, // first position of this batch in `order`
    batch_len: u32,
    mode: u32,        // 0 fp32, 1 naive, 2 independent samples (double, Chebyshev), 3 refetch
    bits: u32,
    samples: u32,
    per_col: u32,     // levels stored per column
    lr: u32,          // f32 bits
    inv: u32,         // f32 bits of 1 / batch_len
    groups_x: u32,
    count: u32,
    task: u32,        // 0 least squares, 1 logistic, 2 logistic through the polynomial, 3 hinge
    degree: u32,      // the polynomial's degree
    l2: u32,          // f32 bits of the L2 coefficient, 0 for none
    rounded: u32,     // 1: `update` writes g to gout, and `apply` steps (the gradient or
                      // the model rounded through a format between them)
}

@group(0) @binding(0) var<uniform> L: LinearParams;
@group(0) @binding(1) var<storage, read> features: array<u32>; // f32 bits (mode 0)
@group(0) @binding(2) var<storage, read> lower: array<u32>;
@group(0) @binding(3) var<storage, read> up: array<u32>;
@group(0) @binding(4) var<storage, read> levels: array<u32>;
@group(0) @binding(5) var<storage, read> targets: array<u32>;
@group(0) @binding(6) var<storage, read> order: array<u32>;
@group(0) @binding(7) var<storage, read_write> w: array<u32>;
@group(0) @binding(8) var<storage, read_write> res: array<u32>;
@group(0) @binding(9) var<storage, read> poly: array<u32>; // f32 bits, z^0 first
@group(0) @binding(10) var<storage, read_write> fetched: array<atomic<u32>>;
@group(0) @binding(11) var<storage, read_write> gout: array<u32>;
@group(0) @binding(12) var<storage, read> gin: array<u32>;

fn packed_code(words_index: u32, width: u32, which: u32) -> u32 {
    let start = words_index * width;
    let wi = start / 32u;
    let off = start % 32u;
    var hi = 0u;
    if (off + width > 32u) {
        if (which == 0u) {
            hi = lower[wi + 1u];
        } else {
            hi = up[wi + 1u];
        }
    }
    var lo = 0u;
    if (which == 0u) {
        lo = lower[wi];
    } else {
        lo = up[wi];
    }
    return extract_code(lo, hi, off, width);
}

// f32 bits of sample s of value (i, c).
fn sample(i: u32, c: u32, s: u32) -> u32 {
    let e = i * L.cols + c;
    if (L.mode == 0u) {
        return features[e];
    }
    var which = 0u;
    if (L.mode == 2u) {
        which = min(s, L.samples - 1u);
    }
    let j = packed_code(e, L.bits, 0u) + ((packed_code(e, L.samples, 1u) >> which) & 1u);
    return levels[c * L.per_col + j];
}

// Sample s of row i times w, columns in order.
fn dot_w(i: u32, s: u32) -> u32 {
    var r = 0u;
    for (var c = 0u; c < L.cols; c++) {
        r = sf_add(r, sf_mul(sample(i, c, s), w[c]));
    }
    return r;
}

const ONE: u32 = 0x3f800000u;

// Row i at full precision times w, columns in order.
fn dot_full(i: u32) -> u32 {
    var r = 0u;
    for (var c = 0u; c < L.cols; c++) {
        r = sf_add(r, sf_mul(features[i * L.cols + c], w[c]));
    }
    return r;
}

// reference::linear::refetch_band: sum_c |w_c| (l_j+1 - l_j), plus (d + 2) 2^-23 of
// sum_c |w_c Q(a_c)|, times 1 + (d + 2) 2^-23; a value on a level (up bit 1 clear) adds no
// gap.
fn refetch_band(i: u32) -> u32 {
    var band = 0u;
    var size = 0u;
    for (var c = 0u; c < L.cols; c++) {
        let base = c * L.per_col;
        let e = i * L.cols + c;
        let j = packed_code(e, L.bits, 0u);
        var gap = 0u;
        if (((packed_code(e, L.samples, 1u) >> 1u) & 1u) == 1u) {
            gap = sf_add(levels[base + min(j + 1u, L.per_col - 1u)], levels[base + j] ^ 0x80000000u);
        }
        band = sf_add(band, sf_mul(w[c] & 0x7fffffffu, gap));
        size = sf_add(size, sf_mul(w[c], sample(i, c, 0u)) & 0x7fffffffu);
    }
    let eps = sf_mul(bitcast<u32>(f32(L.cols + 2u)), 0x34000000u);
    return sf_mul(sf_add(band, sf_mul(size, eps)), sf_add(ONE, eps));
}

// a <= b (or a < b with `strict`) for f32 bits, false where either is NaN.
fn sf_le(a: u32, b: u32, strict: bool) -> bool {
    if (sf_is_nan(a) || sf_is_nan(b)) {
        return false;
    }
    if (strict) {
        return order_key(a) < order_key(b);
    }
    return order_key(a) <= order_key(b);
}

// The hinge's factor of row t (reference::linear::hinge_factor): -y where the margin is
// below 1, else 0; the margin read again at full precision where mode 3 calls for it.
fn hinge(t: u32, i: u32, y: u32) {
    var m = sf_mul(y, dot_w(i, 1u));
    var full = 0u;
    if (L.mode == 3u && sf_le(sf_add(m, 0xbf800000u) & 0x7fffffffu, refetch_band(i), false)) {
        m = sf_mul(y, dot_full(i));
        full = 1u;
        atomicAdd(&fetched[0], 1u);
    }
    atomicStore(&fetched[1u + t], full);
    res[t] = select(0u, y ^ 0x80000000u, sf_le(m, ONE, true));
}

// The factor of row t's gradient (reference::linear::row_factor): Q(a)^T w - b; or
// -y sigma(-y Q(a)^T w); or -y P(z) with z^k estimated by prod_t<=k y Q_t(a)^T w.
@compute @workgroup_size(256)
fn residual(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = item_index(gid, L.groups_x);
    if (t >= L.count) {
        return;
    }
    let i = order[L.batch_start + t];
    let y = targets[i];
    if (L.task == 0u) {
        res[t] = sf_add(dot_w(i, 1u), y ^ 0x80000000u);
        return;
    }
    if (L.task == 3u) {
        hinge(t, i, y);
        return;
    }
    var p = 0u;
    if (L.task == 1u) {
        let z = sf_mul(y, dot_w(i, 1u));
        p = sf_div(ONE, sf_add(ONE, sf_exp(z)));
    } else {
        p = poly[0];
        var prod = ONE;
        for (var k = 1u; k <= L.degree; k++) {
            prod = sf_mul(prod, sf_mul(y, dot_w(i, k)));
            p = sf_add(p, sf_mul(poly[k], prod));
        }
    }
    res[t] = sf_mul(y ^ 0x80000000u, p);
}

@compute @workgroup_size(256)
fn update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, L.groups_x);
    if (c >= L.count) {
        return;
    }
    var g = 0u;
    for (var t = 0u; t < L.batch_len; t++) {
        let i = order[L.batch_start + t];
        var a = 0u;
        if (L.mode == 3u && atomicLoad(&fetched[1u + t]) == 1u) {
            a = features[i * L.cols + c];
        } else {
            a = sample(i, c, 0u);
        }
        g = sf_add(g, sf_mul(a, res[t]));
    }
    g = sf_mul(g, L.inv);
    if (L.l2 != 0u) {
        g = sf_add(g, sf_mul(L.l2, w[c]));
    }
    if (L.rounded == 1u) {
        gout[c] = g;
        return;
    }
    w[c] = sf_add(w[c], sf_mul(L.lr, g) ^ 0x80000000u);
}

// The step from a gradient rounded through its format: gout_c = w_c - lr gin_c (the model
// rounded from gout into w after, or copied).
@compute @workgroup_size(256)
fn apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, L.groups_x);
    if (c >= L.count) {
        return;
    }
    gout[c] = sf_add(w[c], sf_mul(L.lr, gin[c]) ^ 0x80000000u);
}
