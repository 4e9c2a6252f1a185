// 2-D batch normalization (NCHW) in soft-float, bit-exact with the CPU reference. Per
// channel c over its M = N H W values (E.rows = N, E.cols = C, E.inner = H W), with the
// per-channel sums taken by the chunked column sum (col_sum.wgsl):
//   training statistics: mean = sum x / M (set_mean), var = sum (x - mean)^2 / M
//     (col_sum.wgsl's partial_sq, then set_var, which also moves the running statistics, momentum E.mu,
//     the running variance taking the unbiased var M / (M - 1)); in evaluation, the
//     running statistics (set_running). inv = 1 / sqrt(var + eps).
//   forward (per element): y = gamma (x - mean) inv + beta.
//   backward sums: dbeta = sum g, dgamma = sum g xhat (col_sum.wgsl's partial_gxhat),
//     xhat = (x - mean) inv.
//   backward (per element): dx = (gamma inv / M) (M g - dbeta - xhat dgamma).
// stat layout per channel: [mean, inv, running mean, running var, dbeta, dgamma].

// x (in0) and g (in1) are decoded as they are loaded and y rounded as it is stored (see
// packed_load, packed_store); `g` holds column sums for the per-channel entries.
@group(0) @binding(2) var<storage, read> g: array<u32>;
@group(0) @binding(4) var<storage, read> gamma_beta: array<u32>; // [gamma C][beta C]
@group(0) @binding(5) var<storage, read_write> stat: array<u32>; // [6][C]

fn neg(v: u32) -> u32 {
    return v ^ 0x80000000u;
}

// Per channel, from the column sums in `g` (the batch's sum of x): the mean.
@compute @workgroup_size(256)
fn set_mean(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, E.groups_x);
    if (c >= E.count) {
        return;
    }
    stat[c] = sf_mul(g[c], E.scale); // scale = 1 / M
}

// Per channel, from the column sums in `g` (of (x - mean)^2): inv, and the running
// statistics r' = (1 - mu) r + mu v (beta1c holds 1 - mu; lr holds M / (M - 1), making the
// running variance unbiased).
@compute @workgroup_size(256)
fn set_var(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, E.groups_x);
    if (c >= E.count) {
        return;
    }
    let cs = E.cols;
    let var_b = sf_mul(g[c], E.scale);
    stat[cs + c] = sf_div(0x3f800000u, sf_sqrt(sf_add(var_b, E.eps)));
    // Momentum 0 leaves the running statistics as they are (a gradient-only pass).
    if (E.mu == 0u) {
        return;
    }
    stat[2u * cs + c] = sf_add(sf_mul(E.bn_keep, stat[2u * cs + c]), sf_mul(E.mu, stat[c]));
    let unbiased = sf_mul(var_b, E.bn_unbias);
    stat[3u * cs + c] = sf_add(sf_mul(E.bn_keep, stat[3u * cs + c]), sf_mul(E.mu, unbiased));
}

// Per channel, in evaluation: mean and inv from the running statistics.
@compute @workgroup_size(256)
fn set_running(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, E.groups_x);
    if (c >= E.count) {
        return;
    }
    let cs = E.cols;
    stat[c] = stat[2u * cs + c];
    stat[cs + c] = sf_div(0x3f800000u, sf_sqrt(sf_add(stat[3u * cs + c], E.eps)));
}

// Channel c's per-element constants; `coef` = (gamma inv) / M, backward's factor, the same
// rounded products for every element of the channel, so taken once per channel and quad.
struct BnChannel {
    mean: u32,
    inv: u32,
    gamma: u32,
    beta: u32,
    dbeta: u32,
    dgamma: u32,
    coef: u32,
}

// The shape as pipeline constants (src/ops/batchnorm.rs shape_constants): with BN set, the
// pipeline is specialised to one layer's channels and pixels, so that an element's channel
// is found by multiplications instead of two divisions.
override BN: bool = false;
override BN_COLS: u32 = 1u;
override BN_INNER: u32 = 1u;
fn bn_cols() -> u32 {
    if (BN) {
        return BN_COLS;
    }
    return E.cols;
}
fn bn_inner() -> u32 {
    if (BN) {
        return BN_INNER;
    }
    return E.inner;
}

fn channel(c: u32) -> BnChannel {
    let cs = bn_cols();
    let gamma = gamma_beta[c];
    let inv = stat[cs + c];
    let coef = sf_mul(sf_mul(gamma, inv), E.scale);
    return BnChannel(stat[c], inv, gamma, gamma_beta[cs + c], stat[4u * cs + c], stat[5u * cs + c], coef);
}

// The channel of element i.
fn channel_of(i: u32) -> u32 {
    return (i / bn_inner()) % bn_cols();
}

fn bn_forward(k: BnChannel, x: u32) -> u32 {
    let xhat = sf_mul(sf_add(x, neg(k.mean)), k.inv);
    return sf_add(sf_mul(k.gamma, xhat), k.beta);
}

// E.bn_m holds M as f32; E.scale holds 1 / M.
fn bn_backward(k: BnChannel, x: u32, g: u32) -> u32 {
    let xhat = sf_mul(sf_add(x, neg(k.mean)), k.inv);
    var t = sf_add(sf_mul(E.bn_m, g), neg(k.dbeta));
    t = sf_add(t, neg(sf_mul(xhat, k.dgamma)));
    return sf_mul(k.coef, t);
}

// Each invocation takes elements 4q to 4q + 3 (one channel's when a channel's pixels are a
// multiple of 4, else one by one), in a loop (not four inlined copies to compile); the last
// E.n % 4 are a TAIL dispatch's (elem_params.wgsl).
fn forward_item(item: u32) {
    let i = 4u * item;
    if (!TAIL && bn_inner() % 4u == 0u) {
        if (i + 4u <= E.n) {
            let k = channel(channel_of(i));
            let x = load4_0(i);
            var y = vec4(0u);
            for (var t = 0u; t < 4u; t++) {
                y[t] = bn_forward(k, x[t]);
            }
            store_out4(i, y);
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, bn_forward(channel(channel_of(t)), load0(t)));
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
    if (!TAIL && bn_inner() % 4u == 0u) {
        if (i + 4u <= E.n) {
            let k = channel(channel_of(i));
            let x = load4_0(i);
            let g = load4_1(i);
            var dx = vec4(0u);
            for (var t = 0u; t < 4u; t++) {
                dx[t] = bn_backward(k, x[t], g[t]);
            }
            store_out4(i, dx);
        }
        return;
    }
    let part = one_by_one(i);
    for (var t = part.x; t < part.y; t++) {
        store_out(t, bn_backward(channel(channel_of(t)), load0(t), load1(t)));
    }
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, E.groups_x, nwg, E.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        backward_item(item);
    }
}
