// Column sums of a rows x cols x inner array, in (row, inner) order (the bias gradient:
// inner = 1 for a Linear layer, the channel's pixels for a convolution), soft-float adds.

@group(0) @binding(1) var<storage, read> g: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = item_index(gid, E.groups_x);
    if (j >= E.count) {
        return;
    }
    var s = 0u;
    for (var i = 0u; i < E.rows; i++) {
        for (var p = 0u; p < E.inner; p++) {
            s = sf_add(s, g[(i * E.cols + j) * E.inner + p]);
        }
    }
    out[j] = s;
}
