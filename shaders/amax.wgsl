// Absolute maximum of a tensor (into stats[3]), and the per-tensor scale computed from it.

@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> scale_out: array<u32>;

@compute @workgroup_size(256)
fn amax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = item_index(gid, P.groups_x);
    var st = vec4<u32>(0u);
    if (j < P.count) {
        for (var t = 0u; t < 4u; t++) {
            let i = 4u * j + t;
            if (i < P.n) {
                note(&st, 0u, x[i]);
            }
        }
    }
    flush_stats(st, lid);
}

@compute @workgroup_size(1)
fn tensor_scale() {
    scale_out[0] = bitcast<u32>(tensor_scale_exp(atomicLoad(&stats[3]), P.fmt));
}
