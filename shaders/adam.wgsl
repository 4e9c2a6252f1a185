// Adam (L2 weight decay added to the gradient, as torch.optim.Adam), in soft-float
// (bit-exact), on the gradient unscaled by the loss-scale state (skipped when it says so):
//   ge = g / S + wd w;  m' = b1 m + (1 - b1) ge;  v' = b2 v + (1 - b2) ge^2;
//   w' = w - lr_t m' / (sqrt(v') bc2 + eps),  lr_t = lr / (1 - b1^t),  bc2 = 1 / sqrt(1 - b2^t),
// t counting the updates applied: the step state (ls) holds 1 / (1 - b1^t) and bc2.

@group(0) @binding(1) var<storage, read> g: array<u32>;
@group(0) @binding(2) var<storage, read_write> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> m: array<u32>;
@group(0) @binding(4) var<storage, read> ls: array<u32, 8>;
@group(0) @binding(5) var<storage, read_write> v: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count || ls[1] != 0u) {
        return;
    }
    let wi = w[i];
    let ge = sf_add(sf_mul(g[i], ls[2]), sf_mul(E.wd, wi));
    let mn = sf_add(sf_mul(E.mu, m[i]), sf_mul(E.beta1c, ge));
    let vn = sf_add(sf_mul(E.beta2, v[i]), sf_mul(E.beta2c, sf_mul(ge, ge)));
    let denom = sf_add(sf_mul(sf_sqrt(vn), ls[6]), E.eps);
    let lr_t = sf_mul(E.lr, ls[5]);
    w[i] = sf_add(wi, sf_mul(lr_t, sf_div(mn, denom)) ^ 0x80000000u);
    m[i] = mn;
    v[i] = vn;
}
