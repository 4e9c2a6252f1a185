// Per-tensor exception counts and amax: [overflow, underflow, nan, amax bits].

@group(0) @binding(7) var<storage, read_write> stats: array<atomic<u32>, 4>;
var<workgroup> wg_stats: array<atomic<u32>, 4>;

// Adds one element's flags and |x| to an invocation's running counts.
fn note(st: ptr<function, vec4<u32>>, flags: u32, bits: u32) {
    (*st).x += flags & 1u;
    (*st).y += (flags >> 1u) & 1u;
    (*st).z += (flags >> 2u) & 1u;
    let mag = bits & 0x7fffffffu;
    if (mag <= 0x7f800000u) {
        (*st).w = max((*st).w, mag);
    }
}

// Sums the invocations' counts into the workgroup, then into the tensor's stats.
// Every invocation of the workgroup must call it.
fn flush_stats(st: vec4<u32>, lid: u32) {
    if (st.x != 0u) {
        atomicAdd(&wg_stats[0], st.x);
    }
    if (st.y != 0u) {
        atomicAdd(&wg_stats[1], st.y);
    }
    if (st.z != 0u) {
        atomicAdd(&wg_stats[2], st.z);
    }
    if (st.w != 0u) {
        atomicMax(&wg_stats[3], st.w);
    }
    workgroupBarrier();
    if (lid == 0u) {
        for (var c = 0u; c < 3u; c++) {
            let v = atomicLoad(&wg_stats[c]);
            if (v != 0u) {
                atomicAdd(&stats[c], v);
            }
        }
        let a = atomicLoad(&wg_stats[3]);
        if (a != 0u) {
            atomicMax(&stats[3], a);
        }
    }
}
