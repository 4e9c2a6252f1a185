// SGD with momentum, weight decay and optional Nesterov, in soft-float (bit-exact):
//   ge = g + wd w;  v' = mu v + ge;  u = nesterov ? ge + mu v' : v';  w' = w - lr u.

@group(0) @binding(1) var<storage, read> g: array<u32>;
@group(0) @binding(2) var<storage, read_write> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> v: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let wi = w[i];
    let ge = sf_add(g[i], sf_mul(E.wd, wi));
    let vn = sf_add(sf_mul(E.mu, v[i]), ge);
    var u = vn;
    if (E.nesterov != 0u) {
        u = sf_add(ge, sf_mul(E.mu, vn));
    }
    w[i] = sf_add(wi, sf_mul(E.lr, u) ^ 0x80000000u);
    v[i] = vn;
}
