// Column sums of a rows x cols x inner array, in a fixed order (the bias gradient: inner =
// 1 for a Linear layer, the channel's pixels for a convolution; batch-norm statistics),
// soft-float adds: each column's values in (row, inner) order are cut into chunks of
// CHUNK; `partial` sums each chunk in order (one invocation per column and chunk), then
// `finish` sums a column's chunk sums in order (`whole` does both where a column is one
// chunk). (No invocation loops more than CHUNK times: CPU adapters such as llvmpipe stop
// loops after 65535 iterations.)
// `partial` decodes the array as it loads it (in0); `partial_sq` and `partial_gxhat` sum
// batch norm's (x - mean)^2 and g xhat computed as they load x and g; `finish` reads the
// chunk sums (g) and stores each column's sum as the fused output (packed_store: rounded
// into a packed tensor as it is stored, or f32 as it is).
// With QUADS (a pipeline constant: inner a multiple of 4, so every chunk starts and ends
// on a whole vector of four pixels of one row), `partial` and its twins load four values
// at a time and add them in the same order.

const CHUNK: u32 = 1024u;

@group(0) @binding(1) var<storage, read> g: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
// Batch-norm statistics ([6][C], see batchnorm.wgsl): the partial sums of (x - mean)^2
// and of g xhat take the mean (and inv) of column j from here.
@group(0) @binding(5) var<storage, read> stat: array<u32>;

// The (row, pixel) after (i, p): (t / inner, t % inner) for the next t, without dividing.
fn next_value(i: ptr<function, u32>, p: ptr<function, u32>) {
    *p += 1u;
    if (*p == E.inner) {
        *p = 0u;
        *i += 1u;
    }
}

override QUADS: bool = false;

// The (row, pixel) four values after (i, p) (QUADS).
fn next_quad(i: ptr<function, u32>, p: ptr<function, u32>) {
    *p += 4u;
    if (*p == E.inner) {
        *p = 0u;
        *i += 1u;
    }
}

// s plus the four values of v, added in order.
fn add4(s: u32, v: vec4<u32>) -> u32 {
    return sf_add(sf_add(sf_add(sf_add(s, v.x), v.y), v.z), v.w);
}

@compute @workgroup_size(256)
fn partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = item_index(gid, E.groups_x);
    if (idx >= E.count) {
        return;
    }
    out[idx] = chunk_sum(idx % E.cols, idx / E.cols);
}

// A column of one chunk: its sum, stored as `finish` would store it (finish's sum of the
// one chunk sum, +0 plus it, is that sum: a chunk's sum starts at +0 so is never -0).
@compute @workgroup_size(256)
fn whole(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = item_index(gid, E.groups_x);
    if (j >= E.count) {
        return;
    }
    store_out(j, chunk_sum(j, 0u));
}

// The sum of chunk q of column j, in order.
fn chunk_sum(j: u32, q: u32) -> u32 {
    let end = min(E.rows * E.inner, (q + 1u) * CHUNK);
    var s = 0u;
    let t0 = q * CHUNK;
    var i = t0 / E.inner;
    var p = t0 % E.inner;
    if (QUADS) {
        for (var t = t0; t < end; t += 4u) {
            s = add4(s, load4_0((i * E.cols + j) * E.inner + p));
            next_quad(&i, &p);
        }
    } else {
        for (var t = t0; t < end; t++) {
            s = sf_add(s, load0((i * E.cols + j) * E.inner + p));
            next_value(&i, &p);
        }
    }
    return s;
}

// The partial sums of (x - mean)^2 (x: in0), as `partial` sums an array.
@compute @workgroup_size(256)
fn partial_sq(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = item_index(gid, E.groups_x);
    if (idx >= E.count) {
        return;
    }
    let j = idx % E.cols;
    let q = idx / E.cols;
    let end = min(E.rows * E.inner, (q + 1u) * CHUNK);
    var s = 0u;
    let t0 = q * CHUNK;
    var i = t0 / E.inner;
    var p = t0 % E.inner;
    let neg_mean = stat[j] ^ 0x80000000u;
    if (QUADS) {
        for (var t = t0; t < end; t += 4u) {
            let x = load4_0((i * E.cols + j) * E.inner + p);
            var sq = vec4(0u);
            for (var c = 0u; c < 4u; c++) {
                let d = sf_add(x[c], neg_mean);
                sq[c] = sf_mul(d, d);
            }
            s = add4(s, sq);
            next_quad(&i, &p);
        }
    } else {
        for (var t = t0; t < end; t++) {
            let d = sf_add(load0((i * E.cols + j) * E.inner + p), neg_mean);
            s = sf_add(s, sf_mul(d, d));
            next_value(&i, &p);
        }
    }
    out[q * E.cols + j] = s;
}

// The partial sums of g xhat, xhat = (x - mean) inv (x: in0, g: in1).
@compute @workgroup_size(256)
fn partial_gxhat(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = item_index(gid, E.groups_x);
    if (idx >= E.count) {
        return;
    }
    let j = idx % E.cols;
    let q = idx / E.cols;
    let end = min(E.rows * E.inner, (q + 1u) * CHUNK);
    var s = 0u;
    let t0 = q * CHUNK;
    var i = t0 / E.inner;
    var p = t0 % E.inner;
    let neg_mean = stat[j] ^ 0x80000000u;
    let inv = stat[E.cols + j];
    if (QUADS) {
        for (var t = t0; t < end; t += 4u) {
            let k = (i * E.cols + j) * E.inner + p;
            let x = load4_0(k);
            let g = load4_1(k);
            var gx = vec4(0u);
            for (var c = 0u; c < 4u; c++) {
                gx[c] = sf_mul(g[c], sf_mul(sf_add(x[c], neg_mean), inv));
            }
            s = add4(s, gx);
            next_quad(&i, &p);
        }
    } else {
        for (var t = t0; t < end; t++) {
            let k = (i * E.cols + j) * E.inner + p;
            let xhat = sf_mul(sf_add(load0(k), neg_mean), inv);
            s = sf_add(s, sf_mul(load1(k), xhat));
            next_value(&i, &p);
        }
    }
    out[q * E.cols + j] = s;
}

@compute @workgroup_size(256)
fn finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = item_index(gid, E.groups_x);
    if (j >= E.count) {
        return;
    }
    let chunks = (E.rows * E.inner + CHUNK - 1u) / CHUNK;
    var s = 0u;
    for (var q = 0u; q < chunks; q++) {
        s = sf_add(s, g[q * E.cols + j]);
    }
    store_out(j, s);
}
