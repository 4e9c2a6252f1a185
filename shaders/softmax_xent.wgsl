// Softmax cross-entropy, one row per invocation: the gradient (p - onehot) / B with
// deterministic soft-float exp and division (bit-exact with the CPU reference), the row's
// loss ln(sum e) + max - z_label (native f32 log: reported only), and whether the row's
// first maximum is its label. The logits (in0) are decoded as they are loaded; the
// gradient, times the loss scale S, is rounded as it is stored.

@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read> scale_state: array<u32>; // [S, ...]: the loss scale
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;
@group(0) @binding(5) var<storage, read_write> correct: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = item_index(gid, E.groups_x);
    if (i >= E.count) {
        return;
    }
    let c = E.cols;
    let base = i * c;
    var m = load0(base);
    var arg = 0u;
    for (var j = 1u; j < c; j++) {
        let z = load0(base + j);
        if (order_key(z) > order_key(m)) {
            m = z;
            arg = j;
        }
    }
    var s = 0u;
    for (var j = 0u; j < c; j++) {
        s = sf_add(s, sf_exp(sf_add(load0(base + j), m ^ 0x80000000u)));
    }
    let label = labels[i];
    for (var j = 0u; j < c; j++) {
        let p = sf_div(sf_exp(sf_add(load0(base + j), m ^ 0x80000000u)), s);
        let t = select(p, sf_add(p, 0xbf800000u), j == label);
        store_out(base + j, sf_mul(sf_mul(t, E.scale), scale_state[0]));
    }
    loss[i] = log(bitcast<f32>(s)) + bitcast<f32>(m) - bitcast<f32>(load0(base + label));
    correct[i] = select(0u, 1u, arg == label);
}
