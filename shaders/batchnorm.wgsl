// 2-D batch normalization (NCHW) in soft-float, bit-exact with the CPU reference. Per
// channel c over its M = N H W values (E.rows = N, E.cols = C, E.inner = H W):
//   stats (one invocation per channel): in training, mean = sum x / M and
//     var = sum (x - mean)^2 / M in (n, pixel) order, and the running statistics move
//     toward them (momentum E.mu; the running variance takes the unbiased var M / (M - 1));
//     in evaluation, the running statistics are used. Writes mean and inv = 1 / sqrt(var + eps).
//   forward (per element): y = gamma (x - mean) inv + beta.
//   grad_sums (per channel): dbeta = sum g, dgamma = sum g xhat, xhat = (x - mean) inv.
//   backward (per element): dx = (gamma inv / M) (M g - dbeta - xhat dgamma).
// stat layout per channel: [mean, inv, running mean, running var, dbeta, dgamma].

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> g: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;
@group(0) @binding(4) var<storage, read> gamma_beta: array<u32>; // [gamma C][beta C]
@group(0) @binding(5) var<storage, read_write> stat: array<u32>; // [6][C]

fn neg(v: u32) -> u32 {
    return v ^ 0x80000000u;
}

@compute @workgroup_size(64)
fn stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, E.groups_x);
    if (c >= E.count) {
        return;
    }
    let cs = E.cols;
    if (E.nesterov != 0u) { // training
        var s = 0u;
        for (var n = 0u; n < E.rows; n++) {
            for (var p = 0u; p < E.inner; p++) {
                s = sf_add(s, x[(n * cs + c) * E.inner + p]);
            }
        }
        let mean = sf_mul(s, E.scale); // scale = 1 / M
        var q = 0u;
        for (var n = 0u; n < E.rows; n++) {
            for (var p = 0u; p < E.inner; p++) {
                let d = sf_add(x[(n * cs + c) * E.inner + p], neg(mean));
                q = sf_add(q, sf_mul(d, d));
            }
        }
        let var_b = sf_mul(q, E.scale);
        stat[c] = mean;
        stat[cs + c] = sf_div(0x3f800000u, sf_sqrt(sf_add(var_b, E.eps)));
        // Running statistics: r' = (1 - mu) r + mu v (beta1c holds 1 - mu, lr holds M / (M - 1)).
        stat[2u * cs + c] = sf_add(sf_mul(E.beta1c, stat[2u * cs + c]), sf_mul(E.mu, mean));
        let unbiased = sf_mul(var_b, E.lr);
        stat[3u * cs + c] = sf_add(sf_mul(E.beta1c, stat[3u * cs + c]), sf_mul(E.mu, unbiased));
    } else {
        stat[c] = stat[2u * cs + c];
        stat[cs + c] = sf_div(0x3f800000u, sf_sqrt(sf_add(stat[3u * cs + c], E.eps)));
    }
}

@compute @workgroup_size(256)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let c = (i / E.inner) % E.cols;
    let xhat = sf_mul(sf_add(x[i], neg(stat[c])), stat[E.cols + c]);
    y[i] = sf_add(sf_mul(gamma_beta[c], xhat), gamma_beta[E.cols + c]);
}

@compute @workgroup_size(64)
fn grad_sums(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = item_index(gid, E.groups_x);
    if (c >= E.count) {
        return;
    }
    let cs = E.cols;
    var db = 0u;
    var dg = 0u;
    for (var n = 0u; n < E.rows; n++) {
        for (var p = 0u; p < E.inner; p++) {
            let i = (n * cs + c) * E.inner + p;
            let xhat = sf_mul(sf_add(x[i], neg(stat[c])), stat[cs + c]);
            db = sf_add(db, g[i]);
            dg = sf_add(dg, sf_mul(g[i], xhat));
        }
    }
    stat[4u * cs + c] = db;
    stat[5u * cs + c] = dg;
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let cs = E.cols;
    let c = (i / E.inner) % cs;
    let inv = stat[cs + c];
    let xhat = sf_mul(sf_add(x[i], neg(stat[c])), inv);
    // E.wd holds M as f32; E.scale holds 1 / M.
    var t = sf_add(sf_mul(E.wd, g[i]), neg(stat[4u * cs + c]));
    t = sf_add(t, neg(sf_mul(xhat, stat[5u * cs + c])));
    let k = sf_mul(sf_mul(gamma_beta[c], inv), E.scale);
    y[i] = sf_mul(k, t);
}
