// SGD with momentum, weight decay and optional Nesterov, in soft-float (bit-exact), on the
// gradient unscaled by the loss-scale state (skipped entirely when that state says so):
//   ge = g / S + wd w;  v' = mu v + ge;  u = nesterov ? ge + mu v' : v';  w' = w - lr u.

@group(0) @binding(1) var<storage, read> g: array<u32>;
@group(0) @binding(2) var<storage, read_write> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> v: array<u32>;
// Loss-scale state: [scale, skip, 1 / scale of this step, good steps] (loss_scale.wgsl).
@group(0) @binding(4) var<storage, read> ls: array<u32, 8>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count || ls[1] != 0u) {
        return;
    }
    let wi = w[i];
    let ge = sf_add(sf_mul(g[i], ls[2]), sf_mul(E.wd, wi));
    let vn = sf_add(sf_mul(E.mu, v[i]), ge);
    var u = vn;
    if (E.nesterov != 0u) {
        u = sf_add(ge, sf_mul(E.mu, vn));
    }
    w[i] = sf_add(wi, sf_mul(E.lr, u) ^ 0x80000000u);
    v[i] = vn;
}
