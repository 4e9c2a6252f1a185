// Column sums of a rows x cols x inner array, in a fixed order (the bias gradient: inner =
// 1 for a Linear layer, the channel's pixels for a convolution; batch-norm statistics),
// soft-float adds: each column's values in (row, inner) order are cut into chunks of
// CHUNK; `partial` sums each chunk in order (one invocation per column and chunk), then
// `finish` sums a column's chunk sums in order. (No invocation loops more than CHUNK
// times: CPU adapters such as llvmpipe stop loops after 65535 iterations.)
// `partial` decodes the array as it loads it (in0); `finish` reads the chunk sums (g).

const CHUNK: u32 = 16384u;

@group(0) @binding(1) var<storage, read> g: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = item_index(gid, E.groups_x);
    if (idx >= E.count) {
        return;
    }
    let j = idx % E.cols;
    let q = idx / E.cols;
    let end = min(E.rows * E.inner, (q + 1u) * CHUNK);
    var s = 0u;
    for (var t = q * CHUNK; t < end; t++) {
        let i = t / E.inner;
        let p = t % E.inner;
        s = sf_add(s, load0((i * E.cols + j) * E.inner + p));
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
    out[j] = s;
}
