// Split-K: adds the partial sums of the K slices in slice order, then the bias, into the
// output's layout, rounded into the output as it is stored. One output element per invocation.

fn main_item(item: u32) {
    let idx = item;
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

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let run = item_run(gid, G.groups_x, nwg, G.count);
    for (var item = run.x; item < run.y; item += RUN_LANES) {
        main_item(item);
    }
}
