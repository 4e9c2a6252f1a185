// Mean squared error against one-hot targets, one row per invocation, in soft-float
// (bit-exact with the CPU reference): d = z - onehot, the row's loss sum(d^2) / C, the
// gradient d * 2 / (B C), and whether the row's first maximum is its label. The outputs
// (in0) are decoded as they are loaded; the gradient, times the loss scale S, is rounded
// as it is stored.

@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read> scale_state: array<u32>; // [S, ...]: the loss scale
@group(0) @binding(4) var<storage, read_write> loss: array<u32>;
@group(0) @binding(5) var<storage, read_write> correct: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let c = E.cols;
    let base = i * c;
    let label = labels[i];
    var m = load0(base);
    var arg = 0u;
    var s = 0u;
    for (var j = 0u; j < c; j++) {
        let z = load0(base + j);
        if (j > 0u && order_key(z) > order_key(m)) {
            m = z;
            arg = j;
        }
        let d = select(z, sf_add(z, 0xbf800000u), j == label);
        s = sf_add(s, sf_mul(d, d));
        store_out(base + j, sf_mul(sf_mul(d, E.scale), scale_state[0]));
    }
    loss[i] = sf_mul(s, E.mu);
    correct[i] = select(0u, 1u, arg == label);
}
