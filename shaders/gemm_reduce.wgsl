// Split-K: adds the partial sums of the K slices in slice order, then the bias, into the
// output's layout, rounded into the output as it is stored. One output element per invocation.

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let idx = item_index(gid, G.groups_x);
    if (idx >= G.count) {
        return;
    }
    let i = idx / G.n;
    let j = idx % G.n;
    var s = 0.0;
    for (var z = 0u; z < G.splits; z++) {
        s = s + bitcast<f32>(c_out[(z * G.m + i) * G.n + j]);
    }
    if (G.has_bias != 0u) {
        s = s + bitcast<f32>(bias_at(i, j));
    }
    store_out(out_index(i, j), bitcast<u32>(s));
}
